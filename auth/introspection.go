package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/internal/outbound"
)

// IntrospectionOptions configure an IntrospectionVerifier.
type IntrospectionOptions struct {
	// Issuer is the authorization server; its metadata names the
	// introspection endpoint unless Endpoint is set.
	Issuer   string
	Endpoint string
	// ClientID and ClientSecret authenticate the introspection call (HTTP
	// Basic, RFC 6749 §2.3.1).
	ClientID     string
	ClientSecret string
	// Audiences are accepted "aud" values; a token must name one.
	Audiences []string
	// MaxCacheTTL bounds how long an answer is reused (default 60 s); an
	// active answer is never reused past the token's expiry.
	MaxCacheTTL time.Duration
	// MaxCacheEntries bounds the cache (default 10 000).
	MaxCacheEntries int
	HTTPClient      *http.Client
	Now             func() time.Time
}

// IntrospectionVerifier verifies reference tokens by asking the
// authorization server (RFC 7662), caching its answers.
type IntrospectionVerifier struct {
	opts IntrospectionOptions

	mu       sync.Mutex
	endpoint string
	cache    verdicts
	inflight map[[32]byte]chan struct{} // introspections under way, shared by callers
	// The server's trouble (unreachable, a 5xx, an answer that is not
	// one), seen by the last introspection: until troubleUntil, a token
	// not cached is refused with it at once, and after, one introspection
	// at a time (probing) asks whether the server is back. Every token
	// not cached is an introspection, and anyone may send one: during an
	// outage, a flood of them was a call each to the server (and a
	// goroutine waiting on it, up to the client's timeout).
	trouble      error
	troubleUntil time.Time
	probing      bool
}

// troublePause is how long a token not cached is refused with the server's
// trouble before it is asked again: as long as a JWT verifier waits before
// fetching keys it could not fetch again.
const troublePause = time.Second

// NewIntrospectionVerifier returns a verifier; it contacts the server on
// first use.
func NewIntrospectionVerifier(opts IntrospectionOptions) *IntrospectionVerifier {
	if opts.MaxCacheTTL == 0 {
		opts.MaxCacheTTL = time.Minute
	}
	if opts.MaxCacheEntries == 0 {
		opts.MaxCacheEntries = 10_000
	}
	// No redirect is followed (a 307 would post the token on).
	opts.HTTPClient = outbound.Client(opts.HTTPClient, "oauth")
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &IntrospectionVerifier{opts: opts, endpoint: opts.Endpoint, cache: newVerdicts(opts.MaxCacheEntries), inflight: map[[32]byte]chan struct{}{}}
}

// introspection is an RFC 7662 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     any      `json:"scope"`
	ClientID  string   `json:"client_id"`
	Username  string   `json:"username"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Issuer    string   `json:"iss"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	Act       map[string]any
}

// audience is a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud: want a string or an array of strings")
	}
	*a = many
	return nil
}

func (v *IntrospectionVerifier) Verify(ctx context.Context, token string) (*Token, error) {
	if token == "" {
		return nil, invalid("empty token")
	}
	key := tokenKey(token)
	for {
		now := v.opts.Now()
		v.mu.Lock()
		if c, ok := v.cache.lookup(key, now); ok {
			v.mu.Unlock()
			return c.token, c.err
		}
		wait, busy := v.inflight[key]
		if !busy {
			done := make(chan struct{})
			v.inflight[key] = done
			v.mu.Unlock()
			tok, err := v.ask(ctx, key, token, now)
			v.mu.Lock()
			delete(v.inflight, key)
			v.mu.Unlock()
			close(done)
			return tok, err
		}
		v.mu.Unlock()
		// Another caller is asking about the same token: use its answer.
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if _, ok := v.cachedAnswer(key); !ok {
			// Its answer was not cacheable (the server's trouble, or its
			// caller left): ask ourselves rather than fail without
			// trying, unless the server is known to be in trouble.
			return v.ask(ctx, key, token, v.opts.Now())
		}
	}
}

// ask introspects token unless the server is known to be in trouble
// (mayAsk: then its trouble is the error), and notes what the answer says
// of the server (noteTrouble).
func (v *IntrospectionVerifier) ask(ctx context.Context, key [32]byte, token string, now time.Time) (*Token, error) {
	v.mu.Lock()
	probe, err := v.mayAsk(now)
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	tok, err := v.introspectOnce(ctx, key, token, now)
	v.mu.Lock()
	v.noteTrouble(ctx, err, probe)
	v.mu.Unlock()
	return tok, err
}

// mayAsk says whether a token not cached may be introspected now (v.mu
// held): not while the server's last trouble is recent, nor, after, beside
// the one introspection that probes whether it is back (probe: this one).
func (v *IntrospectionVerifier) mayAsk(now time.Time) (probe bool, err error) {
	if v.trouble == nil {
		return false, nil
	}
	if now.Before(v.troubleUntil) || v.probing {
		return false, fmt.Errorf("%w (not asked again yet)", v.trouble)
	}
	v.probing = true
	return true, nil
}

// noteTrouble notes what an introspection that ended with err says of the
// server (v.mu held): its trouble, or that it answers. An introspection cut
// short by its caller (ctx) says nothing of the server.
func (v *IntrospectionVerifier) noteTrouble(ctx context.Context, err error, probe bool) {
	if probe {
		v.probing = false
	}
	switch {
	case err == nil || IsInvalidToken(err):
		v.trouble = nil
	case ctx.Err() == nil:
		v.trouble, v.troubleUntil = err, v.opts.Now().Add(troublePause)
	}
}

// Cost is CostLocal when the server's answer about token is cached, else
// CostRemote.
func (v *IntrospectionVerifier) Cost(token string) Cost {
	if token == "" {
		return CostNone
	}
	if _, ok := v.cachedAnswer(tokenKey(token)); ok {
		return CostLocal
	}
	return CostRemote
}

func (v *IntrospectionVerifier) cachedAnswer(key [32]byte) (verdict, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cache.lookup(key, v.opts.Now())
}

// introspectOnce asks the server and caches a definite answer: an active
// token until it expires (at most MaxCacheTTL), a refusal for 5 s at most.
func (v *IntrospectionVerifier) introspectOnce(ctx context.Context, key [32]byte, token string, now time.Time) (*Token, error) {
	tok, err := v.introspect(ctx, token)
	if err != nil && !IsInvalidToken(err) {
		return nil, err // the server's trouble: not cached
	}
	until := now.Add(v.opts.MaxCacheTTL)
	if tok != nil && tok.Expiry.Before(until) {
		until = tok.Expiry
	}
	if err != nil {
		until = now.Add(min(v.opts.MaxCacheTTL, 5*time.Second))
	}
	v.mu.Lock()
	v.cache.store(key, verdict{token: tok, err: err, until: until}, now)
	v.mu.Unlock()
	return tok, err
}

func (v *IntrospectionVerifier) introspect(ctx context.Context, token string) (*Token, error) {
	endpoint, err := v.introspectionEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.opts.ClientID), url.QueryEscape(v.opts.ClientSecret))
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect token: %w", outbound.Failed(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspect token: %s", outbound.Status(resp.StatusCode))
	}
	var raw map[string]any
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return nil, fmt.Errorf("introspect token: %w", err)
	}
	obj, err := claimsObject(body)
	if err != nil {
		return nil, fmt.Errorf("introspect token: %w", err)
	}
	// A malformed claim is the token's (401, named), not the server's.
	var in introspection
	if err := decodeClaims(obj, &in); err != nil {
		return nil, invalid("%v", err)
	}
	json.Unmarshal(body, &raw)
	if act, ok := raw["act"].(map[string]any); ok {
		in.Act = act
	}
	return v.check(&in, raw)
}

func (v *IntrospectionVerifier) check(in *introspection, raw map[string]any) (*Token, error) {
	now := v.opts.Now()
	subject := in.Subject
	if subject == "" {
		subject = in.Username
	}
	issuer := in.Issuer
	if issuer == "" {
		issuer = v.opts.Issuer // the server we asked vouches for it
	}
	switch {
	case !in.Active:
		return nil, invalid("token is not active")
	case issuer != v.opts.Issuer:
		return nil, invalid("wrong issuer")
	case subject == "":
		return nil, invalid("no subject")
	case in.Expiry == 0:
		return nil, invalid("no expiry")
	case !now.Before(time.Unix(in.Expiry, 0)):
		return nil, invalid("token expired")
	case in.NotBefore != 0 && now.Before(time.Unix(in.NotBefore, 0)):
		return nil, invalid("token not valid yet")
	case !slices.ContainsFunc(v.opts.Audiences, func(a string) bool { return slices.Contains(in.Audience, a) }):
		return nil, invalid("token is not meant for this resource")
	}
	scopes, err := scopesOf(in.Scope)
	if err != nil {
		return nil, invalid("%v", err)
	}
	t := &Token{
		Principal:  Principal{Issuer: issuer, Subject: subject, ClientID: in.ClientID},
		Audience:   in.Audience,
		Scopes:     scopes,
		Expiry:     time.Unix(in.Expiry, 0),
		ValidUntil: time.Unix(in.Expiry, 0),
		ID:         in.ID,
		Actor:      in.Act,
		Claims:     raw,
	}
	if in.IssuedAt != 0 {
		t.IssuedAt = time.Unix(in.IssuedAt, 0)
	}
	if in.NotBefore != 0 {
		t.NotBefore = time.Unix(in.NotBefore, 0)
	}
	return t, nil
}

func (v *IntrospectionVerifier) introspectionEndpoint(ctx context.Context) (string, error) {
	v.mu.Lock()
	ep := v.endpoint
	v.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	md, err := DiscoverMetadata(ctx, v.opts.HTTPClient, v.opts.Issuer)
	if err != nil {
		return "", err
	}
	if md.IntrospectionEndpoint == "" {
		return "", fmt.Errorf("issuer %s publishes no introspection_endpoint", v.opts.Issuer)
	}
	v.mu.Lock()
	v.endpoint = md.IntrospectionEndpoint
	v.mu.Unlock()
	return md.IntrospectionEndpoint, nil
}
