package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
)

// credentials are the tokens an actor holds for its user: the newest token
// they presented, and the tokens exchanged for it, per (audience, scopes). It
// is the tools.Caller of the actor's toolsets.
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
	Token  string         `json:"token"`
	Scopes []string       `json:"scopes,omitempty"`
	Expiry time.Time      `json:"expiry"`
	Claims map[string]any `json:"claims,omitempty"`
	Fresh  time.Time      `json:"fresh"`
}

// export returns the exchanged tokens still fresh.
func (c *credentials) export() []storedDelegation {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var out []storedDelegation
	for k, d := range c.cache {
		select {
		case <-d.ready:
		default:
			continue
		}
		if d.err != nil || d.value == nil || !now.Before(d.fresh) {
			continue
		}
		out = append(out, storedDelegation{Key: k, Token: d.value.Token, Scopes: d.value.Scopes, Expiry: d.value.Expiry, Claims: d.value.Claims, Fresh: d.fresh})
	}
	slices.SortFunc(out, func(a, b storedDelegation) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// restore puts exported tokens back in the cache, but those no longer fresh.
func (c *credentials) restore(ds []storedDelegation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, s := range ds {
		if !now.Before(s.Fresh) {
			continue
		}
		d := &delegation{ready: make(chan struct{}), fresh: s.Fresh,
			value: &tools.Delegation{Token: s.Token, Scopes: s.Scopes, Expiry: s.Expiry, Claims: s.Claims}}
		close(d.ready)
		c.cache[s.Key] = d
	}
}

// delegation is one exchanged token, or the exchange that will produce it:
// callers that find it in flight wait on ready instead of exchanging again.
type delegation struct {
	ready chan struct{}
	value *tools.Delegation
	err   error
	fresh time.Time // used until then; refreshed after
}

// exchangeTimeout bounds one exchange; it runs detached from the tool call
// that started it, since others may be waiting on it.
const exchangeTimeout = 15 * time.Second

func newCredentials(x *auth.Exchanger, logger *slog.Logger) *credentials {
	return &credentials{exchanger: x, logger: logger, cache: map[string]*delegation{}}
}

func (c *credentials) set(p *envelope.Principal) {
	c.mu.Lock()
	c.current = p
	c.mu.Unlock()
}

// forget drops the exchanged tokens: they were obtained for another
// client's token (an exchange in flight completes for its waiters only).
func (c *credentials) forget() {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
}

// Claims are the verified claims of the user's current token.
func (c *credentials) Claims() map[string]any {
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	var claims map[string]any
	if cur != nil {
		json.Unmarshal(cur.ClaimsJson, &claims)
	}
	return claims
}

// Delegate returns a token for audience with the requested scopes that the
// user holds, exchanging the user's token once per (audience, scopes) and
// reusing the result until shortly before it expires.
func (c *credentials) Delegate(ctx context.Context, audience string, scopes []string) (out *tools.Delegation, err error) {
	ctx, span := telemetry.Start(ctx, "token exchange", trace.WithAttributes(
		attribute.String("pingmcp.exchange.audience", audience),
		attribute.StringSlice("pingmcp.exchange.scopes", scopes)))
	var how string // "cached", "exchanged" or "shared" (waited for another call's exchange)
	defer func() { delegated(ctx, span, audience, scopes, how, out, err) }()
	c.mu.Lock()
	cur := c.current
	if cur == nil || cur.Token == "" {
		c.mu.Unlock()
		return nil, errors.New("this session has no user token to act with")
	}
	if c.exchanger == nil {
		c.mu.Unlock()
		return nil, errors.New("token exchange is not configured on this server (--client-id, --client-secret)")
	}
	held := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return !slices.Contains(cur.Scopes, s) })
	if len(held) == 0 {
		c.mu.Unlock()
		return nil, fmt.Errorf("your token carries none of the scopes %v this needs", scopes)
	}
	key := audience + "\x00" + auth.ScopeKey(held)
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
		d = &delegation{ready: make(chan struct{})}
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
	if err != nil {
		d.err = err
		if c.cache[key] == d {
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
	if err == nil && c.changed != nil {
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
