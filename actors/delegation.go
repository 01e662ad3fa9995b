package actors

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
)

// credentials are the tokens an actor holds for its user: the newest token
// of the client now using the session, and the tokens exchanged, per
// (audience, scopes, client). It is the tools.Caller of the actor's
// toolsets. A tool call acts with the token of the request that made it
// (see requestPrincipal), never with another client's: the calls of two
// clients of the user run at once.
type credentials struct {
	exchanger *auth.Exchanger // nil when no exchange client is configured
	logger    *slog.Logger

	// changed, if set, is called after an exchange put a new token in the
	// cache (so that the snapshot keeps it).
	changed func()

	mu      sync.Mutex
	current *envelope.Principal
	cache   map[string]*delegation
}

// storedDelegation is a cached exchanged token as a snapshot keeps it
// (sealed).
type storedDelegation struct {
	Key    string         `json:"key"`
	Client string         `json:"client_id,omitempty"` // of the token it was exchanged for
	Token  string         `json:"token"`
	Scopes []string       `json:"scopes,omitempty"`
	Expiry time.Time      `json:"expiry"`
	Claims map[string]any `json:"claims,omitempty"`
	Fresh  time.Time      `json:"fresh"`
}

// export returns the exchanged tokens still fresh that were exchanged for
// the token of the client now using the session, and that client: a
// snapshot keeps only those (delegationsChanged).
func (c *credentials) export() (client string, out []state.Delegation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	client = c.client()
	now := time.Now()
	for k, d := range c.cache {
		if d.client != client {
			continue
		}
		select {
		case <-d.ready:
		default:
			continue
		}
		if d.err != nil || d.value == nil || !now.Before(d.fresh) {
			continue
		}
		out = append(out, state.Delegation{Key: k, Client: d.client, Token: d.value.Token, Scopes: d.value.Scopes, Expiry: d.value.Expiry, Claims: d.value.Claims, Fresh: d.fresh})
	}
	slices.SortFunc(out, func(a, b state.Delegation) int { return strings.Compare(a.Key, b.Key) })
	return client, out
}

// restore puts exported tokens back in the cache, but those no longer
// fresh and those exchanged for another client's token than the current
// one's (set first).
func (c *credentials) restore(ds []state.Delegation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, s := range ds {
		if !now.Before(s.Fresh) || s.Client != c.client() {
			continue
		}
		d := &delegation{ready: make(chan struct{}), fresh: s.Fresh, client: s.Client,
			value: &tools.Delegation{Token: s.Token, Scopes: s.Scopes, Expiry: s.Expiry, Claims: s.Claims}}
		close(d.ready)
		c.cache[s.Key] = d
	}
}

// delegation is one exchanged token, or the exchange that will produce it:
// callers that find it in flight wait on ready instead of exchanging again.
type delegation struct {
	client string // the client_id of the token it is exchanged for
	ready  chan struct{}
	value  *tools.Delegation
	err    error
	fresh  time.Time // used until then; refreshed after
}

// exchangeTimeout bounds one exchange; it runs detached from the tool call
// that started it, since others may be waiting on it.
const exchangeTimeout = 15 * time.Second

func newCredentials(x *auth.Exchanger, logger *slog.Logger) *credentials {
	return &credentials{exchanger: x, logger: logger, cache: map[string]*delegation{}}
}

// set holds p, a newer token of the client now using the session.
func (c *credentials) set(p *envelope.Principal) {
	c.mu.Lock()
	c.current = p
	c.mu.Unlock()
}

// replace holds p, the token of a client other than the one the session was
// used through, and drops in the same step the tokens exchanged for other
// clients' tokens (an exchange in flight completes for its waiters only, and
// is not kept): no Delegate sees the new client with the old client's
// tokens, and no export the old client's tokens after the switch.
func (c *credentials) replace(p *envelope.Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = p
	client := c.client()
	maps.DeleteFunc(c.cache, func(_ string, d *delegation) bool { return d.client != client })
}

// client is the client_id of the current token; c.mu is held.
func (c *credentials) client() string {
	if c.current == nil {
		return ""
	}
	return c.current.ClientId
}

// principalKey is the context key of the principal of the request a tool
// call serves (auditToolCalls sets it).
type principalKey struct{}

func withRequestPrincipal(ctx context.Context, p *envelope.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// requestPrincipal is the principal of the request the tool call of ctx
// serves, nil if none.
func requestPrincipal(ctx context.Context) *envelope.Principal {
	p, _ := ctx.Value(principalKey{}).(*envelope.Principal)
	return p
}

// cacheKey is the key of the token exchanged for the token of client, for
// audience and scopes (sorted, see auth.ScopeKey). It names the client, not
// the token: keys are not secret.
func cacheKey(client, audience, scopes string) string {
	return audience + "\x00" + scopes + "\x00" + client
}

// actedBy names the act claim (RFC 8693) of p's token, "" when it has none:
// a token of the user delegated to another party is not the user's own,
// even through the same client, and what is exchanged for one is not
// handed to a call made with the other (its act chain would be another's).
func actedBy(p *envelope.Principal) string {
	var c struct {
		Act map[string]any `json:"act"`
	}
	if json.Unmarshal(p.ClaimsJson, &c) != nil || len(c.Act) == 0 {
		return ""
	}
	b, _ := json.Marshal(c.Act) // members sorted: the same chain, the same name
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Claims are the verified claims of the token of the request the tool call
// of ctx serves.
func (c *credentials) Claims(ctx context.Context) map[string]any {
	cur := requestPrincipal(ctx)
	var claims map[string]any
	if cur != nil {
		json.Unmarshal(cur.ClaimsJson, &claims)
	}
	return claims
}

// Delegate returns a token for audience with the requested scopes that the
// token of the request the tool call of ctx serves holds, exchanging that
// token once per (audience, scopes, client, act chain of the token, see
// actedBy) and reusing the result until shortly before it expires.
func (c *credentials) Delegate(ctx context.Context, audience string, scopes []string) (out *tools.Delegation, err error) {
	ctx, span := telemetry.Start(ctx, "token exchange", trace.WithAttributes(
		attribute.String("pingmcp.exchange.audience", audience),
		attribute.StringSlice("pingmcp.exchange.scopes", scopes)))
	var how string // "cached", "exchanged" or "shared" (waited for another call's exchange)
	defer func() { delegated(ctx, span, audience, scopes, how, out, err) }()
	cur := requestPrincipal(ctx)
	if cur == nil || cur.Token == "" {
		return nil, errors.New("this tool call has no user token to act with")
	}
	act := actedBy(cur)
	c.mu.Lock()
	if c.exchanger == nil {
		c.mu.Unlock()
		return nil, errors.New("token exchange is not configured on this server (--client-id, --client-secret)")
	}
	held := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return !slices.Contains(cur.Scopes, s) })
	if len(held) == 0 {
		c.mu.Unlock()
		return nil, fmt.Errorf("your token carries none of the scopes %v this needs", scopes)
	}
	key := cacheKey(cur.ClientId, audience, auth.ScopeKey(held))
	if act != "" {
		key += "\x00" + act
	}
	d := c.cache[key]
	if d != nil {
		select {
		case <-d.ready:
			if d.err == nil && time.Now().Before(d.fresh) {
				c.mu.Unlock()
				metrics.Exchanges.WithLabelValues("cached").Inc()
				how = "cached"
				return d.value, nil
			}
			d = nil // stale or failed: exchange again
		default: // in flight: wait for it below
		}
	}
	how = "shared"
	if d == nil {
		d = &delegation{ready: make(chan struct{}), client: cur.ClientId}
		c.cache[key] = d
		// The exchange outlives this call if need be, but its spans are
		// this call's children.
		go c.exchange(trace.ContextWithSpan(context.Background(), span), d, key, cur, audience, held)
		how = "exchanged"
	}
	c.mu.Unlock()
	select {
	case <-d.ready:
		return d.value, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Refused forgets v, a token its API refused (401), if it is still the
// one held for its key: the next Delegate exchanges anew rather than hand
// out, until its expiry, a token revoked at the authorization server. (One
// exchanged since for the same key stays.)
func (c *credentials) Refused(_ context.Context, v *tools.Delegation) {
	if v == nil {
		return
	}
	c.mu.Lock()
	dropped := false
	for key, d := range c.cache {
		select {
		case <-d.ready:
			if d.value == v {
				delete(c.cache, key)
				dropped = true
			}
		default:
		}
	}
	c.mu.Unlock()
	if !dropped {
		return
	}
	jti, _ := v.Claims["jti"].(string)
	c.logger.Info("delegated token refused by its API; exchanged anew at the next call", "scopes", v.Scopes, "jti", jti)
	if c.changed != nil {
		c.changed()
	}
}

func (c *credentials) exchange(parent context.Context, d *delegation, key string, cur *envelope.Principal, audience string, scopes []string) {
	ctx, cancel := context.WithTimeout(parent, exchangeTimeout)
	defer cancel()
	start := time.Now()
	x, err := c.exchanger.Exchange(ctx, cur.Token, audience, scopes)
	if err != nil {
		metrics.Exchanges.WithLabelValues("failed").Inc()
	} else {
		metrics.Exchanges.WithLabelValues("exchanged").Inc()
	}
	c.mu.Lock()
	kept := c.cache[key] == d // not dropped by a switch to another client (replace)
	if err != nil {
		d.err = err
		if kept {
			delete(c.cache, key) // the next call tries again
		}
		c.logger.Warn("token exchange failed", "audience", audience, "scopes", scopes, "err", err)
	} else {
		d.value = &tools.Delegation{Token: x.Token, Scopes: x.Scopes, Expiry: x.Expiry, Claims: x.Claims}
		d.fresh = freshUntil(start, x.Expiry)
		jti, _ := x.Claims["jti"].(string)
		c.logger.Info("delegated token obtained", "audience", audience, "scopes", x.Scopes, "jti", jti,
			"expires", x.Expiry, "duration", time.Since(start))
	}
	close(d.ready)
	c.mu.Unlock()
	if err == nil && kept && c.changed != nil {
		c.changed()
	}
}

// freshUntil is when a token obtained at start and expiring at expiry stops
// being handed out: a tenth of its life before expiry, at most a minute
// before. A token of unknown expiry is reused for a minute.
func freshUntil(start, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return start.Add(time.Minute)
	}
	margin := min(expiry.Sub(start)/10, time.Minute)
	return expiry.Add(-margin)
}
