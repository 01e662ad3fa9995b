package auth

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/pingmcp/pingmcp/internal/outbound"
)

// Algorithms a JWT may be signed with: asymmetric only. "none" and the HMAC
// family are refused, so a token "signed" with a public key as an HMAC secret
// never verifies.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// JWTOptions configure a JWTVerifier.
type JWTOptions struct {
	// Issuer is the exact "iss" tokens must carry; its metadata names the
	// JWKS (OpenID discovery, else RFC 8414).
	Issuer string
	// Audiences are accepted "aud" values (RFC 8707 resource URIs); a token
	// must name at least one.
	Audiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30 s).
	Leeway time.Duration
	// RefetchInterval is the least time between two JWKS fetches caused by an
	// unknown key id (default 10 s), so that tokens naming random kids cannot
	// make the verifier hammer the issuer.
	RefetchInterval time.Duration
	// KeysMaxAge is how long fetched keys are used before they are fetched
	// again (default 10 min), behind the requests: a key the issuer
	// withdrew (retired, or compromised) stops verifying tokens, kept ones
	// included, even if no token names an unknown key id (an issuer that
	// publishes its next key ahead of its use is never asked otherwise).
	KeysMaxAge time.Duration
	// HTTPClient fetches metadata and keys (default: a client with a 10 s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxCacheEntries bounds how many verified tokens are kept (default
	// 10 000): a client sends the same token with each of its requests,
	// and a token verified once is accepted again, until its expiry plus
	// Leeway, without parsing it or checking its signature; the keys
	// fetched again, each is verified anew.
	MaxCacheEntries int
}

// JWTVerifier verifies JWT access tokens by the keys the issuer publishes.
// Keys are fetched once and cached, and fetched again once KeysMaxAge old;
// a token with an unknown kid causes one refetch (concurrent callers share
// it), at most every RefetchInterval.
// Verified tokens are kept (JWTOptions.MaxCacheEntries).
type JWTVerifier struct {
	opts JWTOptions

	mu        sync.Mutex
	jwksURI   string
	keys      *jose.JSONWebKeySet
	keysGen   uint64 // counts the fetches that replaced keys
	fetchedAt time.Time
	inflight  chan struct{} // closed when the running fetch ends
	fetchErr  error
	verified  verdicts // tokens verified, each by keys of generation keys
}

// NewJWTVerifier returns a verifier; it contacts the issuer on first use.
func NewJWTVerifier(opts JWTOptions) *JWTVerifier {
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	if opts.RefetchInterval == 0 {
		opts.RefetchInterval = 10 * time.Second
	}
	if opts.KeysMaxAge == 0 {
		opts.KeysMaxAge = 10 * time.Minute
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxCacheEntries <= 0 {
		opts.MaxCacheEntries = 10_000
	}
	return &JWTVerifier{opts: opts, verified: newVerdicts(opts.MaxCacheEntries)}
}

// claims are the registered and scope claims checked here.
type claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	AZP       string           `json:"azp"`
	Scope     any              `json:"scope"`
	SCP       any              `json:"scp"`
	Act       map[string]any   `json:"act"`
}

// Verify returns the token's claims if it verifies; a token verified before
// by the keys the verifier holds now is taken from the cache, until its
// expiry plus Leeway.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*Token, error) {
	key, now := tokenKey(token), v.opts.Now()
	v.mu.Lock()
	v.refreshIfOld(now)
	hit, ok := v.verified.lookup(key, now)
	ok = ok && hit.keys == v.keysGen
	v.mu.Unlock()
	if ok {
		return hit.token, nil
	}
	tok, gen, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.verified.store(key, verdict{token: tok, until: tok.ValidUntil, keys: gen}, now)
	v.mu.Unlock()
	return tok, nil
}

// verify checks token with the issuer's keys, and returns the keys'
// generation.
func (v *JWTVerifier) verify(ctx context.Context, token string) (*Token, uint64, error) {
	if !canonicalJWS(token) {
		return nil, 0, invalid("not a compact JWS in canonical base64url")
	}
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		return nil, 0, invalid("not a JWS with an allowed algorithm")
	}
	if len(tok.Headers) != 1 {
		return nil, 0, invalid("want exactly one signature")
	}
	kid := tok.Headers[0].KeyID
	keys, gen, err := v.keysFor(ctx, kid)
	if err != nil {
		return nil, 0, err
	}
	// The signature first (Claims with nothing to decode into), then the
	// claims: a well-signed token with a malformed claim is refused for that
	// claim, not for its signature.
	if !slices.ContainsFunc(keys, func(k jose.JSONWebKey) bool { return tok.Claims(k.Key) == nil }) {
		return nil, 0, invalid("signature does not verify")
	}
	// go-jose's decoder refuses a key given twice, at any depth, so that
	// no two readers of the token can see different claims.
	var all map[string]any
	var raw map[string]json.RawMessage
	if err := tok.UnsafeClaimsWithoutVerification(&all, &raw); err != nil || all == nil {
		return nil, 0, invalid("the claims are not a JSON object with each key once")
	}
	var c claims
	if err := decodeClaims(raw, &c); err != nil {
		return nil, 0, invalid("%v", err)
	}
	t, err := v.check(&c, all)
	return t, gen, err
}

// Cost is CostLocal for a token shaped like a JWT: its signature is checked
// by a cached key, and the key fetches it may cause are paced by
// RefetchInterval whatever tokens arrive. Anything else cannot verify.
func (v *JWTVerifier) Cost(token string) Cost {
	if canonicalJWS(token) {
		return CostLocal
	}
	return CostNone
}

// canonicalJWS says whether each of the three segments of a compact JWS is
// base64url exactly as a signer writes it (RFC 7515 §2): no padding, no line
// breaks, no stray bits in its last character. go-jose decodes more loosely
// and verifies the bytes it decoded: this check makes each signed token
// valid in one spelling only, where go-jose alone accepts several (up to 16
// for an RS256 signature).
func canonicalJWS(token string) bool {
	n := 0
	for seg := range strings.SplitSeq(token, ".") {
		if n++; n > 3 {
			return false
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != seg {
			return false
		}
	}
	return n == 3
}

func (v *JWTVerifier) check(c *claims, all map[string]any) (*Token, error) {
	now := v.opts.Now()
	leeway := v.opts.Leeway
	switch {
	case c.Issuer != v.opts.Issuer:
		return nil, invalid("wrong issuer")
	case c.Subject == "":
		return nil, invalid("no subject")
	case c.Expiry == nil:
		return nil, invalid("no expiry")
	case now.After(c.Expiry.Time().Add(leeway)):
		return nil, invalid("token expired")
	case c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()):
		return nil, invalid("token not valid yet")
	case c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time()):
		return nil, invalid("token issued in the future")
	case !slices.ContainsFunc(v.opts.Audiences, c.Audience.Contains):
		return nil, invalid("token is not meant for this resource")
	}
	scopeClaim := c.Scope
	if scopeClaim == nil {
		scopeClaim = c.SCP
	}
	scopes, err := scopesOf(scopeClaim)
	if err != nil {
		return nil, invalid("%v", err)
	}
	client := c.ClientID
	if client == "" {
		client = c.AZP
	}
	t := &Token{
		Principal:  Principal{Issuer: c.Issuer, Subject: c.Subject, ClientID: client},
		Audience:   c.Audience,
		Scopes:     scopes,
		Expiry:     c.Expiry.Time(),
		ValidUntil: c.Expiry.Time().Add(leeway),
		ID:         c.ID,
		Actor:      c.Act,
		Claims:     all,
	}
	if c.NotBefore != nil {
		t.NotBefore = c.NotBefore.Time()
	}
	if c.IssuedAt != nil {
		t.IssuedAt = c.IssuedAt.Time()
	}
	return t, nil
}

// keysFor returns the signing keys that may have signed a token with kid,
// fetching the JWKS when it was never fetched or does not know kid.
func (v *JWTVerifier) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, uint64, error) {
	refetched := false
	for {
		v.mu.Lock()
		set, gen, fetchedAt, fetchErr := v.keys, v.keysGen, v.fetchedAt, v.fetchErr
		v.mu.Unlock()
		sinceFetch := v.opts.Now().Sub(fetchedAt)
		if set != nil {
			if ks := signingKeys(set, kid); len(ks) > 0 {
				return ks, gen, nil
			}
			if refetched || sinceFetch < v.opts.RefetchInterval {
				return nil, 0, invalid("unknown signing key")
			}
		} else if refetched || (fetchErr != nil && sinceFetch < time.Second) {
			return nil, 0, v.lastFetchErr()
		}
		if err := v.refresh(ctx); err != nil {
			return nil, 0, err
		}
		refetched = true
	}
}

// refresh fetches the JWKS, or waits for the fetch another caller started.
func (v *JWTVerifier) refresh(ctx context.Context) error {
	v.mu.Lock()
	done := v.inflight
	if done == nil {
		done = make(chan struct{})
		v.inflight = done
		go v.fetchInto(done)
	}
	v.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshIfOld starts fetching the keys again, behind the callers, when
// those held are KeysMaxAge old (a failed fetch counts: the keys held are
// kept, and tried again as late); v.mu is held. Tokens are verified by the
// keys held until the fetch ends.
func (v *JWTVerifier) refreshIfOld(now time.Time) {
	if v.keys == nil || v.inflight != nil || now.Sub(v.fetchedAt) < v.opts.KeysMaxAge {
		return
	}
	v.inflight = make(chan struct{})
	go v.fetchInto(v.inflight)
}

// fetchInto runs one fetch, detached from any caller (a cancelled request
// must not fail the fetch the others wait on), and closes done.
func (v *JWTVerifier) fetchInto(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	set, err := v.fetch(ctx)
	v.mu.Lock()
	if err == nil {
		// Tokens verified by the keys before are verified again, unless
		// every key held is still there as it was (the issuer published
		// another, or nothing changed).
		if !keptAll(v.keys, set) {
			v.keysGen++
		}
		v.keys = set
	}
	v.fetchErr = err
	v.fetchedAt = v.opts.Now()
	v.inflight = nil
	v.mu.Unlock()
	close(done)
}

// keptAll says whether every key of old is in now as it was: the same key
// id, algorithm, use and public key. A nil old keeps nothing.
func keptAll(old, now *jose.JSONWebKeySet) bool {
	if old == nil {
		return false
	}
	for _, k := range old.Keys {
		tk, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return false
		}
		if !slices.ContainsFunc(now.Keys, func(n jose.JSONWebKey) bool {
			tn, err := n.Thumbprint(crypto.SHA256)
			return err == nil && n.KeyID == k.KeyID && n.Algorithm == k.Algorithm && n.Use == k.Use && bytes.Equal(tk, tn)
		}) {
			return false
		}
	}
	return true
}

func (v *JWTVerifier) lastFetchErr() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fetchErr != nil {
		return v.fetchErr
	}
	return errors.New("signing keys unavailable")
}

func (v *JWTVerifier) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	v.mu.Lock()
	uri := v.jwksURI
	v.mu.Unlock()
	if uri == "" {
		md, err := DiscoverMetadata(ctx, v.opts.HTTPClient, v.opts.Issuer)
		if err != nil {
			return nil, err
		}
		if md.JWKSURI == "" {
			return nil, fmt.Errorf("issuer %s publishes no jwks_uri", v.opts.Issuer)
		}
		uri = md.JWKSURI
		v.mu.Lock()
		v.jwksURI = uri
		v.mu.Unlock()
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, v.opts.HTTPClient, uri, &set); err != nil {
		return nil, fmt.Errorf("fetch signing keys: %w", err)
	}
	return &set, nil
}

// signingKeys are the public signature keys of set that match kid (all of
// them when the token names none).
func signingKeys(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range set.Keys {
		if (kid != "" && k.KeyID != kid) || (k.Use != "" && k.Use != "sig") || !k.IsPublic() || !k.Valid() {
			continue
		}
		out = append(out, k)
	}
	return out
}

// Metadata is the part of an authorization server's metadata (OpenID
// discovery or RFC 8414) pingmcp uses.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string   `json:"token_endpoint,omitempty"`
	IntrospectionEndpoint string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint    string   `json:"revocation_endpoint,omitempty"`
	RegistrationEndpoint  string   `json:"registration_endpoint,omitempty"`
	JWKSURI               string   `json:"jwks_uri,omitempty"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
}

// DiscoverMetadata fetches the issuer's metadata, from OpenID discovery or,
// failing that, RFC 8414, and checks that it names the same issuer.
func DiscoverMetadata(ctx context.Context, client *http.Client, issuer string) (*Metadata, error) {
	base := strings.TrimSuffix(issuer, "/")
	var errs []error
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		md := &Metadata{}
		if err := getJSON(ctx, client, base+path, md); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			return nil, fmt.Errorf("metadata of %s names issuer %q", issuer, md.Issuer)
		}
		return md, nil
	}
	return nil, fmt.Errorf("discover issuer %s: %w", issuer, errors.Join(errs...))
}

// maxMetadataBytes bounds what is read of a metadata or JWKS document.
const maxMetadataBytes = 1 << 20

func getJSON(ctx context.Context, client *http.Client, url string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// What failed, not where the network behind the node put it: a
		// failed discovery is a failed token exchange, in a tool's result.
		return fmt.Errorf("GET %s: %w", url, outbound.Failed(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, outbound.Status(resp.StatusCode))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadataBytes)).Decode(dst); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
