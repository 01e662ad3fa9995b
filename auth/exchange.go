package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/telemetry"
)

// ExchangeOptions configure an Exchanger.
type ExchangeOptions struct {
	// Issuer is the authorization server; its metadata names the token
	// endpoint.
	Issuer string
	// ClientID and ClientSecret authenticate the exchange (HTTP Basic, as
	// PingFederate's token exchange processor expects).
	ClientID     string
	ClientSecret string
	// ActorToken also sends, as actor_token, a token the client obtains for
	// itself (client_credentials), so that the issued token's act claim is
	// vouched for by the issuer rather than inferred from client auth.
	ActorToken bool
	HTTPClient *http.Client
}

// Exchanger swaps a user's access token for one meant for a downstream API
// (RFC 8693), the way PingFederate takes it.
type Exchanger struct {
	opts ExchangeOptions

	mu         sync.Mutex
	te         *tokenexchange.OAuthTokenExchange // discovered on first use
	endpoint   string
	revocation string // the issuer's revocation endpoint, if it has one
	actor      string // the client's own token, for ActorToken
	actorExp   time.Time
}

// NewExchanger returns an exchanger; it contacts the issuer on first use.
func NewExchanger(opts ExchangeOptions) *Exchanger {
	// No redirect is followed (a 307 would post the subject_token on), and
	// each call to the authorization server is a client span.
	opts.HTTPClient = outbound.Client(opts.HTTPClient, "oauth")
	return &Exchanger{opts: opts}
}

// Exchanged is a token obtained by exchange.
type Exchanged struct {
	// Token is the access token, for the downstream call's Authorization
	// header only: never log it, never show it.
	Token  string
	Scopes []string
	Expiry time.Time
	// Claims are the token's claims when it is a JWT, read without
	// verification (the token came straight from the issuer over its token
	// endpoint): for display only.
	Claims map[string]any
}

// ExchangeError is the authorization server's refusal of an exchange.
type ExchangeError struct {
	Code        string
	Description string
}

func (e *ExchangeError) Error() string {
	if e.Description == "" {
		return "token exchange refused: " + e.Code
	}
	return "token exchange refused: " + e.Code + ": " + e.Description
}

// Exchange swaps subjectToken for an access token for resource with scopes.
func (x *Exchanger) Exchange(ctx context.Context, subjectToken, resource string, scopes []string) (*Exchanged, error) {
	te, err := x.client(ctx)
	if err != nil {
		return nil, err
	}
	var actorToken string
	var actorType oidc.TokenType
	if x.opts.ActorToken {
		if actorToken, err = x.actorToken(ctx); err != nil {
			return nil, err
		}
		actorType = oidc.AccessTokenType
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, subjectToken, oidc.AccessTokenType, actorToken, actorType,
		[]string{resource}, nil, scopes, oidc.AccessTokenType)
	if err != nil {
		return nil, x.exchangeFailed(resource, err, subjectToken, actorToken)
	}
	if resp.AccessToken == "" {
		return nil, fmt.Errorf("token exchange for %s: no access token in the response", resource)
	}
	// The token goes to the API as a bearer access token: not one the
	// server says is none (token_type N_A, RFC 8693 §2.2.1), is bound to a
	// key (DPoP), or is of another type than the access token asked for.
	// An answer that names neither is taken as one.
	if tt := resp.TokenType; tt != "" && !strings.EqualFold(tt, oidc.BearerToken) {
		return nil, fmt.Errorf("token exchange for %s: the token endpoint issued a token of token_type %q, not a bearer token", resource, telemetry.ClipTo(tt, 64))
	}
	if it := resp.IssuedTokenType; it != "" && it != oidc.AccessTokenType && it != oidc.JWTTokenType {
		return nil, fmt.Errorf("token exchange for %s: the token endpoint issued a token of issued_token_type %q, not the access token asked for", resource, telemetry.ClipTo(string(it), 64))
	}
	out := &Exchanged{Token: resp.AccessToken, Scopes: []string(resp.Scopes), Claims: unverifiedClaims(resp.AccessToken)}
	if len(out.Scopes) == 0 && out.Claims != nil {
		out.Scopes, _ = scopesOf(out.Claims["scope"])
	}
	out.Expiry = expiryOf(time.Now(), resp.ExpiresIn, out.Claims)
	return out, nil
}

// unverifiedClaims are the claims of token when it is a JWT, read without
// verification (it came straight from the issuer's token endpoint), nil
// otherwise.
func unverifiedClaims(token string) map[string]any {
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		return nil
	}
	var claims map[string]any
	if tok.UnsafeClaimsWithoutVerification(&claims) != nil {
		return nil
	}
	return claims
}

// expiryOf is when a token issued at now with expiresIn (seconds, 0 for
// none) and claims (a JWT's, nil for another token) expires: the earlier of
// its expires_in and its exp, so that a server's expires_in in
// milliseconds, say, does not have the token reused long after its
// resource server refuses it. An expires_in beyond what a time.Duration
// holds says nothing. Zero when nothing says.
func expiryOf(now time.Time, expiresIn uint64, claims map[string]any) time.Time {
	var at time.Time
	if expiresIn > 0 && expiresIn <= uint64(math.MaxInt64/time.Second) {
		at = now.Add(time.Duration(expiresIn) * time.Second)
	}
	if exp, ok := claims["exp"].(float64); ok && exp > 0 && exp < math.MaxInt64 {
		if e := time.Unix(int64(exp), 0); at.IsZero() || e.Before(at) {
			at = e
		}
	}
	return at
}

// client discovers the token endpoint once. The network calls run unlocked:
// callers racing on the first use may both discover, which is harmless, and
// none waits behind another's slow call beyond its own context.
func (x *Exchanger) client(ctx context.Context) (*tokenexchange.OAuthTokenExchange, error) {
	x.mu.Lock()
	te := x.te
	x.mu.Unlock()
	if te != nil {
		return te, nil
	}
	md, err := DiscoverMetadata(ctx, x.opts.HTTPClient, x.opts.Issuer)
	if err != nil {
		return nil, err
	}
	if md.TokenEndpoint == "" {
		return nil, fmt.Errorf("issuer %s publishes no token_endpoint", x.opts.Issuer)
	}
	made, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, x.opts.Issuer, x.opts.ClientID, x.opts.ClientSecret,
		tokenexchange.WithHTTPClient(x.opts.HTTPClient), tokenexchange.WithStaticTokenEndpoint(x.opts.Issuer, md.TokenEndpoint))
	if err != nil {
		return nil, fmt.Errorf("token exchange client: %w", err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.te == nil {
		x.te, x.endpoint, x.revocation = made.(*tokenexchange.OAuthTokenExchange), md.TokenEndpoint, md.RevocationEndpoint
	}
	return x.te, nil
}

// ErrNoRevocation means the issuer publishes no revocation endpoint.
var ErrNoRevocation = errors.New("the authorization server publishes no revocation_endpoint")

// Revoke revokes an access token this client obtained by exchange, at the
// issuer's revocation endpoint (RFC 7009), authenticating as the client.
// An unknown or expired token counts as revoked (200).
func (x *Exchanger) Revoke(ctx context.Context, token string) error {
	if _, err := x.client(ctx); err != nil {
		return err
	}
	x.mu.Lock()
	endpoint := x.revocation
	x.mu.Unlock()
	if endpoint == "" {
		return ErrNoRevocation
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(x.opts.ClientID), url.QueryEscape(x.opts.ClientSecret))
	resp, err := x.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("revoke at %s: %w", endpoint, outbound.Failed(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var oerr struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oerr)
	// The server's words, without the token should it echo it.
	desc := telemetry.ClipTo(strings.ReplaceAll(oerr.Error+" "+oerr.Description, token, "[token]"), 512)
	return fmt.Errorf("revoke at %s: HTTP %d %s", endpoint, resp.StatusCode, desc)
}

// exchangeFailed is what a failed exchange that sent the credentials sent
// says: the authorization server's OAuth error (refusal), or what kept its
// answer from coming, and never the answer itself. The zitadel client's other errors quote the token
// endpoint's whole body, which holds the issued access token when a field
// of a 200 answer has an unexpected type ("expires_in":"3600"), or a proxy's
// page that may echo the posted subject_token; such an error would be
// logged, audited and shown in a tool's result.
func (x *Exchanger) exchangeFailed(resource string, err error, sent ...string) error {
	var oerr *oidc.Error
	if errors.As(err, &oerr) {
		return x.refusal(string(oerr.ErrorType), oerr.Description, sent...)
	}
	if m := zitadelStatus.FindStringSubmatch(err.Error()); m != nil {
		code, _ := strconv.Atoi(m[1])
		msg := fmt.Sprintf("token exchange for %s: the token endpoint answered %s, not an OAuth error", resource, outbound.Status(code))
		if code >= 300 && code < 400 {
			msg += " (redirects are not followed)"
		}
		return errors.New(msg)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("token exchange for %s: %w", resource, outbound.Failed(err))
	}
	return fmt.Errorf("token exchange for %s: the token endpoint's answer could not be read (not a token response)", resource)
}

// refusal is the authorization server's OAuth error as an error may say
// it: its code and description clipped (the server decides their length,
// up to the megabyte read of its answer), and without the credentials the
// request sent (the tokens of its form, the client's Basic credentials)
// should the server echo them.
func (x *Exchanger) refusal(code, desc string, sent ...string) *ExchangeError {
	sent = append(sent, x.opts.ClientSecret, url.QueryEscape(x.opts.ClientSecret), // posted in the form
		base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(x.opts.ClientID)+":"+url.QueryEscape(x.opts.ClientSecret))))
	blank := func(s string) string {
		for _, c := range sent {
			// (One of a few characters, no real secret, would blank
			// every place its letters occur.)
			if len(c) >= 8 {
				s = strings.ReplaceAll(s, c, "[credentials]")
			}
		}
		return s
	}
	return &ExchangeError{Code: telemetry.ClipTo(blank(code), 64), Description: telemetry.ClipTo(blank(desc), 512)}
}

// zitadelStatus is the start of the zitadel client's error for an answer
// that is neither 200 nor an OAuth error: its code is all that is kept.
var zitadelStatus = regexp.MustCompile(`^http status not ok: (\d{3}) `)

// actorToken is the client's own access token (client_credentials), reused
// until shortly before it expires.
func (x *Exchanger) actorToken(ctx context.Context) (string, error) {
	x.mu.Lock()
	actor, exp, endpoint := x.actor, x.actorExp, x.endpoint
	x.mu.Unlock()
	if actor != "" && time.Now().Before(exp) {
		return actor, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(x.opts.ClientID), url.QueryEscape(x.opts.ClientSecret))
	resp, err := x.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("actor token: %w", outbound.Failed(err))
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("actor token: %s: %w", outbound.Status(resp.StatusCode), err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", x.refusal(body.Error, "actor token (client_credentials): "+body.Description)
	}
	// Reused for 9/10 of its life, a minute's when the server says none
	// (a short-lived one is not used past its expiry).
	now, life := time.Now(), time.Minute
	if exp := expiryOf(now, uint64(max(body.ExpiresIn, 0)), unverifiedClaims(body.AccessToken)); !exp.IsZero() {
		life = exp.Sub(now)
	}
	x.mu.Lock()
	x.actor, x.actorExp = body.AccessToken, now.Add(life*9/10)
	x.mu.Unlock()
	return body.AccessToken, nil
}

// ScopeKey is the canonical form of a scope set, for cache keys.
func ScopeKey(scopes []string) string {
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(scopes))), " ")
}
