// Package auth is pingmcp's OAuth client side towards the authorization
// server (PingFederate; auth/devidp is a development stand-in). It verifies
// bearer tokens (JWTs by discovered JWKS, reference tokens by
// introspection), answers with the OAuth error semantics of a resource
// server (RFC 6750 WWW-Authenticate), and names the caller identity
// ([Principal]) that sessions are bound to. It exchanges a user's token for
// one meant for a downstream API (RFC 8693, [Exchanger]) and revokes a
// user's persistent grants ([GrantRevoker]). Where a token is presented (the
// edge, the Todo API) and when one is exchanged (the actor, per tool call)
// is left to those packages.
//
// A token's value never leaves this package in an error or a log line: errors
// describe what was wrong with a token, never what it was.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Principal is who a token speaks for: the user (subject) at an issuer, via
// a client. Sessions are bound to their principal at initialize.
type Principal struct {
	Issuer   string
	Subject  string
	ClientID string
}

// Key names the principal without revealing it: a hash of the three fields,
// used as the identity of the principal's actor.
func (p Principal) Key() string {
	sum := sha256.Sum256([]byte(p.Issuer + "\x00" + p.Subject + "\x00" + p.ClientID))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// SameUser says whether p and q are the same user at the same issuer,
// through whichever clients.
func (p Principal) SameUser(q Principal) bool {
	return p.Issuer == q.Issuer && p.Subject == q.Subject
}

// UserKey names the user (issuer, subject) without revealing it, whatever
// client the token came through: limits that must not multiply with the
// clients a user registers are counted under it.
func (p Principal) UserKey() string {
	sum := sha256.Sum256([]byte("user\x00" + p.Issuer + "\x00" + p.Subject))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Token is what verifying a bearer token established. It holds the verified
// claims, never the token itself.
type Token struct {
	Principal
	Audience []string
	Scopes   []string
	Expiry   time.Time
	// ValidUntil is the last instant at which the verifier accepts the
	// token: its expiry plus the clock skew the verifier allows. A stream
	// the token opened ends then: a client that reconnects with it is
	// refused, and refreshes.
	ValidUntil time.Time
	NotBefore  time.Time
	IssuedAt   time.Time
	ID         string // jti
	// Actor is the RFC 8693 "act" claim of a delegated token, nil otherwise.
	Actor map[string]any
	// Claims are all the verified claims, for display (who_am_I).
	Claims map[string]any
}

// HasScopes reports whether the token carries every one of scopes.
func (t *Token) HasScopes(scopes ...string) bool {
	for _, s := range scopes {
		if !slices.Contains(t.Scopes, s) {
			return false
		}
	}
	return true
}

// For checks that the token was issued for resource (RFC 8707), the one the
// request it came with was made to: a verifier accepts a token for any of
// the resources it serves, but a token for one is refused on another, since
// each URL's metadata names its own resource and a client asks for a token
// for exactly that one.
//
// An aud names resource however it spells the scheme, the host and a
// default port (CanonicalResource): MCP's canonical server URI is in lower
// case, but "implementations SHOULD accept uppercase scheme and host
// components for robustness" (2025-11-25, Canonical Server URI), and the
// TypeScript SDK asks for the metadata's resource as its URL class spells
// it.
func (t *Token) For(resource string) error {
	if slices.Contains(t.Audience, resource) {
		return nil
	}
	want := CanonicalResource(resource)
	for _, aud := range t.Audience {
		if CanonicalResource(aud) == want {
			return nil
		}
	}
	return invalid("the token is for another resource (aud does not name %s)", resource)
}

// CanonicalResource spells an http(s) URI as MCP's canonical server URI
// does: scheme and host in lower case, no default port (RFC 3986 §6.2.2.1,
// §6.2.3); its path and query as given, since they are case-sensitive. Any
// other string is returned as is.
func CanonicalResource(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return uri
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case port != "" && port != map[string]string{"http": "80", "https": "443"}[u.Scheme]:
		u.Host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		u.Host = "[" + host + "]"
	default:
		u.Host = host
	}
	return u.String()
}

// Verifier checks a bearer token and says what it establishes. Errors are
// *Error values (or wrap one) whose Code is "invalid_token" for a token that
// must be refused; any other error means verification could not be done (the
// authorization server was unreachable, say) and is answered 503, not 401.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Token, error)
}

// Cost is what verifying a token takes, as far as a verifier can tell by
// looking at it, at no cost.
type Cost int

const (
	// CostUnknown: the verifier cannot tell.
	CostUnknown Cost = iota
	// CostNone: the token cannot verify (it is not even shaped like one).
	CostNone
	// CostLocal: checked in this process; any call to the authorization
	// server it causes is paced by the verifier whatever tokens arrive.
	CostLocal
	// CostRemote: a call to the authorization server.
	CostRemote
)

// CostedVerifier is a Verifier that tells the Cost of a token. The edge
// still verifies the tokens of cost CostLocal from an address that has sent
// too many bad ones, so that a flood of bad credentials never locks out a
// valid token, and refuses early only what is worthless or expensive.
type CostedVerifier interface {
	Verifier
	Cost(token string) Cost
}

// OAuth error codes of RFC 6750 §3.1.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
)

// Error is an RFC 6750 error: what the WWW-Authenticate header reports.
type Error struct {
	Code        string
	Description string
	// Scopes needed, for insufficient_scope.
	Scopes []string
}

// Status is the HTTP status RFC 6750 §3.1 gives the error: 400 for
// invalid_request, 403 for insufficient_scope, 401 for invalid_token (and
// anything else). The edge, the admin API and the Todo API all answer so.
func (e *Error) Status() int {
	switch e.Code {
	case CodeInvalidRequest:
		return http.StatusBadRequest
	case CodeInsufficientScope:
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// InsufficientScope is the refusal of a token that lacks some of needed.
// Its Scopes, the challenge's scope, are those the token was granted plus
// those needed, as the MCP authorization spec (2025-11-25, scope challenge
// handling) recommends: a client that re-authorizes with exactly the
// challenge's scope keeps what it could already do, instead of trading one
// scope for another on every step-up.
func InsufficientScope(granted, needed []string, description string) *Error {
	all := slices.Concat(granted, needed)
	return &Error{Code: CodeInsufficientScope, Description: description, Scopes: slices.Compact(slices.Sorted(slices.Values(all)))}
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

func invalid(format string, args ...any) error {
	return &Error{Code: CodeInvalidToken, Description: fmt.Sprintf(format, args...)}
}

// IsInvalidToken reports whether err means the token must be refused (401).
func IsInvalidToken(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeInvalidToken
}

// MetadataPath is the path of resource's RFC 9728 protected-resource
// metadata: the well-known prefix, then the resource's path (§3.1).
func MetadataPath(resource string) string {
	const prefix = "/.well-known/oauth-protected-resource"
	u, err := url.Parse(resource)
	if err != nil || u.Path == "/" {
		return prefix
	}
	return prefix + u.Path
}

// MetadataURL is where resource's protected-resource metadata is published,
// what a challenge's resource_metadata names; empty for an empty resource.
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil || resource == "" {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: MetadataPath(resource), RawQuery: u.RawQuery}).String()
}

// Challenge is the WWW-Authenticate value of a refusal (RFC 6750 §3, RFC
// 9728 §5.1): err nil means no token was sent, so no error is named.
func Challenge(err *Error, resourceMetadata string, scopes []string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(sep + k + `="` + quoteEscape(v) + `"`)
		sep = ", "
	}
	if err != nil {
		param("error", err.Code)
		param("error_description", err.Description)
	}
	param("resource_metadata", resourceMetadata)
	param("scope", strings.Join(scopes, " "))
	return b.String()
}

// quoteEscape makes v what RFC 6750 §3 allows inside an attribute's
// quotes (%x20-21 / %x23-5B / %x5D-7E): no escapes, which a client that
// reads the challenge as RFC 6750 writes it would take for the value's end.
// Descriptions are ours, but never let one break the header: a '"' (a
// claim's name quoted) becomes a "'", anything else outside is dropped.
func quoteEscape(v string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r == '\\' || r > 0x7e:
			return -1
		}
		return r
	}, v)
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header
// (RFC 6750 §2.1; the scheme is case-insensitive). ok is false when the
// request carries no bearer credential: no Authorization header, or one of
// another scheme (RFC 6750 §3.1: a challenge without an error code). err is
// set (invalid_request) for a malformed one: two headers, or a bearer value
// that is not a b64token.
func BearerToken(header []string) (token string, ok bool, err error) {
	if len(header) == 0 {
		return "", false, nil
	}
	if len(header) > 1 {
		return "", true, &Error{Code: CodeInvalidRequest, Description: "more than one Authorization header"}
	}
	scheme, value, _ := strings.Cut(header[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, nil
	}
	value = strings.TrimLeft(value, " ")
	if value == "" || !isToken68(value) {
		return "", true, &Error{Code: CodeInvalidRequest, Description: "malformed bearer token"}
	}
	return value, true, nil
}

// isToken68 checks the b64token syntax of RFC 6750 §2.1.
func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// scopesOf reads a scope claim that is either a space-separated string (RFC
// 8693, RFC 9068) or an array of strings (what some servers send).
func scopesOf(v any) ([]string, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.Fields(s), nil
	case []any:
		out := make([]string, 0, len(s))
		for _, e := range s {
			str, ok := e.(string)
			if !ok {
				return nil, errors.New("scope array holds a non-string")
			}
			out = append(out, strings.Fields(str)...)
		}
		return out, nil
	case []string:
		return s, nil
	}
	return nil, fmt.Errorf("scope is a %T, want a string or an array", v)
}
