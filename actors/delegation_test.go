package actors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/cluster/envelope"
)

const (
	mcpURI  = "http://127.0.0.1:8080/mcp"
	todoURI = "http://127.0.0.1:8081"
)

// actorTokens counts exchanges that carried an actor_token.
var actorTokens atomic.Int32

// exchangeServer is the development authorization server, counting the
// token exchanges it answers.
func exchangeServer(t *testing.T) (*devidp.Server, *atomic.Int32) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	idp, err := devidp.New(&devidp.Options{
		Issuer:  "http://" + ts.Listener.Addr().String(),
		Clients: []devidp.Client{{ID: "pingmcp", Secret: "s3cret"}},
		Resources: []devidp.Resource{
			{URI: mcpURI, Scopes: []string{"todo_api:read", "todo_api:write"}},
			{URI: todoURI, Scopes: []string{"todo_api:read", "todo_api:write"}},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var exchanges atomic.Int32
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == devidp.PathToken && r.Method == http.MethodPost {
			r.ParseForm()
			if strings.HasSuffix(r.PostForm.Get("grant_type"), "token-exchange") {
				exchanges.Add(1)
				if r.PostForm.Get("actor_token") != "" {
					actorTokens.Add(1)
				}
			}
		}
		idp.ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return idp, &exchanges
}

func userCredentials(t *testing.T, idp *devidp.Server, secret string, scopes ...string) *credentials {
	t.Helper()
	tok, err := idp.AccessToken("alice", "claude", mcpURI, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	c := newCredentials(auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: secret}), slog.New(slog.DiscardHandler))
	c.set(&envelope.Principal{Subject: "alice", Token: tok, Scopes: scopes})
	return c
}

// Concurrent tool calls share one exchange; later calls use the cache.
func TestDelegateSharesOneExchange(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	c := userCredentials(t, idp, "s3cret", "todo_api:read", "todo_api:write")
	var wg sync.WaitGroup
	tokens := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			d, err := c.Delegate(asUser(c), todoURI, []string{"todo_api:write", "todo_api:read"})
			if err != nil {
				t.Error(err)
				return
			}
			tokens <- d.Token
		})
	}
	wg.Wait()
	close(tokens)
	first := ""
	for tok := range tokens {
		if first == "" {
			first = tok
		} else if tok != first {
			t.Fatal("concurrent callers got different tokens")
		}
	}
	if n := exchanges.Load(); n != 1 {
		t.Fatalf("%d exchanges for 20 concurrent calls, want 1", n)
	}
	d, _ := c.Delegate(asUser(c), todoURI, []string{"todo_api:read", "todo_api:write"})
	if exchanges.Load() != 1 || d.Token != first {
		t.Error("a cached token was exchanged again")
	}
	act, _ := d.Claims["act"].(map[string]any)
	if act["sub"] != "pingmcp" || d.Claims["aud"] != todoURI {
		t.Errorf("exchanged claims = %v", d.Claims)
	}
}

// Scopes are narrowed to what the user holds; with none left, no exchange.
func TestDelegateNarrowsScopes(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	c := userCredentials(t, idp, "s3cret", "todo_api:read")
	d, err := c.Delegate(asUser(c), todoURI, []string{"todo_api:read", "todo_api:write"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Scopes, " ") != "todo_api:read" {
		t.Errorf("scopes = %v, want only todo_api:read", d.Scopes)
	}
	if _, err := c.Delegate(asUser(c), todoURI, []string{"admin"}); err == nil || exchanges.Load() != 1 {
		t.Errorf("a scope the user lacks: err %v, %d exchanges", err, exchanges.Load())
	}
}

// A refused exchange is a clear error without the token, and is not cached.
func TestDelegateFailure(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	c := userCredentials(t, idp, "wrong-secret", "todo_api:read")
	for range 2 {
		_, err := c.Delegate(asUser(c), todoURI, []string{"todo_api:read"})
		var xerr *auth.ExchangeError
		if !errors.As(err, &xerr) || xerr.Code != "invalid_client" {
			t.Fatalf("err = %v, want invalid_client", err)
		}
		if strings.Contains(err.Error(), c.current.Token) {
			t.Error("the error contains the user's token")
		}
	}
	if exchanges.Load() != 2 {
		t.Errorf("%d exchanges, want 2: failures must not be cached", exchanges.Load())
	}
}

func TestFreshUntil(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tt := range []struct {
		life, want time.Duration
	}{
		{10 * time.Minute, 9 * time.Minute},
		{time.Hour, 59 * time.Minute},
		{30 * time.Second, 27 * time.Second},
	} {
		if got := freshUntil(start, start.Add(tt.life)).Sub(start); got != tt.want {
			t.Errorf("life %v: fresh for %v, want %v", tt.life, got, tt.want)
		}
	}
	if got := freshUntil(start, time.Time{}).Sub(start); got != time.Minute {
		t.Errorf("unknown expiry: fresh for %v", got)
	}
}

// In actor-token mode the client's own token rides along, and the issued
// token's act names it.
func TestDelegateWithActorToken(t *testing.T) {
	actorTokens.Store(0)
	idp, _ := exchangeServer(t)
	tok, err := idp.AccessToken("alice", "claude", mcpURI, "todo_api:read")
	if err != nil {
		t.Fatal(err)
	}
	c := newCredentials(auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: "s3cret", ActorToken: true}), slog.New(slog.DiscardHandler))
	c.set(&envelope.Principal{Subject: "alice", Token: tok, Scopes: []string{"todo_api:read"}})
	d, err := c.Delegate(asUser(c), todoURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	if act, _ := d.Claims["act"].(map[string]any); act["sub"] != "pingmcp" {
		t.Errorf("act = %v", d.Claims["act"])
	}
	if actorTokens.Load() != 1 {
		t.Errorf("%d exchanges carried an actor token, want 1", actorTokens.Load())
	}
}

// asUser is the context of a tool call made by a request with the token c
// holds.
func asUser(c *credentials) context.Context {
	return withRequestPrincipal(context.Background(), c.current)
}

// aliceThrough is alice's principal through client, holding a token of the
// development server with scopes.
func aliceThrough(t *testing.T, idp *devidp.Server, client string, scopes ...string) *envelope.Principal {
	t.Helper()
	tok, err := idp.AccessToken("alice", client, mcpURI, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return &envelope.Principal{Subject: "alice", ClientId: client, Token: tok, Scopes: scopes,
		ClaimsJson: []byte(`{"sub":"alice","client_id":"` + client + `"}`)}
}

// Each tool call exchanges the token of the request that made it, whatever
// client the session was last used through: two clients of the user run
// calls at once, and neither acts with the other's token (nor gains its
// scopes), nor reuses what was exchanged for the other's.
func TestDelegateActsWithTheRequestsToken(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	desktop := aliceThrough(t, idp, "desktop", "todo_api:read", "todo_api:write")
	cli := aliceThrough(t, idp, "cli", "todo_api:read")
	c := newCredentials(auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: "s3cret"}), slog.New(slog.DiscardHandler))
	c.set(cli) // the session was last used through cli, read-only

	asDesktop, asCLI := withRequestPrincipal(t.Context(), desktop), withRequestPrincipal(t.Context(), cli)
	d, err := c.Delegate(asDesktop, todoURI, []string{"todo_api:write"})
	if err != nil {
		t.Fatalf("desktop's write call, while the session is used through cli: %v", err)
	}
	if d.Claims["client_id"] != "desktop" {
		t.Errorf("desktop's call acted with the token of client %v", d.Claims["client_id"])
	}
	c.set(desktop) // and now through desktop
	if d, err := c.Delegate(asCLI, todoURI, []string{"todo_api:write"}); err == nil {
		t.Errorf("cli's read-only token obtained a write token (of client %v)", d.Claims["client_id"])
	}
	// The same audience and scopes for both clients: one exchange each.
	dd, err := c.Delegate(asDesktop, todoURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := c.Delegate(asCLI, todoURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	if dd.Claims["client_id"] != "desktop" || dc.Claims["client_id"] != "cli" || exchanges.Load() != 3 {
		t.Errorf("read tokens of clients %v and %v after %d exchanges, want desktop's and cli's after 3",
			dd.Claims["client_id"], dc.Claims["client_id"], exchanges.Load())
	}
	// A call without a request's token (none is made so) has nothing to act with.
	if _, err := c.Delegate(t.Context(), todoURI, []string{"todo_api:read"}); err == nil {
		t.Error("a call without a request's token delegated")
	}
	if claims := c.Claims(asCLI); claims["client_id"] != "cli" {
		t.Errorf("cli's call sees the claims of client %v", claims["client_id"])
	}
}

// A switch to another client replaces the token and drops what was
// exchanged for the other client's in one step; a call of the other client
// still running after it exchanges its own token again, and what it obtains
// is not what the session keeps (export, the snapshot's).
func TestReplaceDropsTheOtherClientsTokens(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	desktop := aliceThrough(t, idp, "desktop", "todo_api:read")
	cli := aliceThrough(t, idp, "cli", "todo_api:read")
	c := newCredentials(auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: "s3cret"}), slog.New(slog.DiscardHandler))
	var changes atomic.Int32
	c.changed = func() { changes.Add(1) }
	c.set(desktop)
	asDesktop, asCLI := withRequestPrincipal(t.Context(), desktop), withRequestPrincipal(t.Context(), cli)
	if _, err := c.Delegate(asDesktop, todoURI, []string{"todo_api:read"}); err != nil {
		t.Fatal(err)
	}
	if client, ds := c.export(); client != "desktop" || len(ds) != 1 || ds[0].Client != "desktop" {
		t.Fatalf("export %q %+v, want desktop's one token", client, ds)
	}

	c.replace(cli)
	if client, ds := c.export(); client != "cli" || len(ds) != 0 || len(c.cache) != 0 {
		t.Fatalf("after the switch to cli: export %q with %d tokens, %d cached; want cli's, none", client, len(ds), len(c.cache))
	}
	d, err := c.Delegate(asDesktop, todoURI, []string{"todo_api:read"})
	if err != nil || d.Claims["client_id"] != "desktop" || exchanges.Load() != 2 {
		t.Fatalf("desktop's call after the switch: %v, client %v, %d exchanges", err, d.Claims["client_id"], exchanges.Load())
	}
	if _, ds := c.export(); len(ds) != 0 {
		t.Errorf("desktop's token exchanged after the switch to cli is exported: %+v", ds)
	}
	if _, err := c.Delegate(asCLI, todoURI, []string{"todo_api:read"}); err != nil {
		t.Fatal(err)
	}
	client, ds := c.export()
	if client != "cli" || len(ds) != 1 || ds[0].Client != "cli" || exchanges.Load() != 3 {
		t.Errorf("export %q %+v after %d exchanges, want cli's one token after 3", client, ds, exchanges.Load())
	}
	// Restored into a session used through desktop, cli's tokens stay out.
	r := newCredentials(nil, slog.New(slog.DiscardHandler))
	r.set(desktop)
	r.restore(ds)
	if len(r.cache) != 0 {
		t.Error("tokens exchanged for cli's token restored into a session used through desktop")
	}
	r.replace(cli)
	r.restore(ds)
	if len(r.cache) != 1 {
		t.Error("cli's tokens not restored into a session used through cli")
	}
}

// A token of the user delegated to another party (its act claim, RFC 8693)
// through the same client is not the user's own token: what was exchanged
// for one is not handed to a call made with the other, whose exchanged
// token would then say that pingmcp acts for the user alone (the other
// party's act dropped from the chain the API sees), or the reverse. An
// authorization server that keeps the subject token's client_id in the
// token it issues by exchange (the development one does) gives both the
// same principal, so the same stateless actor and cache.
func TestDelegateKeepsTheActorsApart(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	own := aliceThrough(t, idp, "claude", "todo_api:read")
	// alice's token for the MCP resource, obtained by another party (an
	// agent platform, here the exchange client itself) by exchange.
	x := auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: "s3cret"})
	agent, err := x.Exchange(t.Context(), own.Token, mcpURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(agent.Claims)
	delegated := &envelope.Principal{Subject: "alice", ClientId: "claude", Token: agent.Token, Scopes: agent.Scopes, ClaimsJson: claims}
	if agent.Claims["client_id"] != "claude" || agent.Claims["act"] == nil {
		t.Fatalf("the delegated token's claims: %v", agent.Claims)
	}
	exchanges.Store(0)

	c := newCredentials(x, slog.New(slog.DiscardHandler))
	c.set(own)
	mine, err := c.Delegate(withRequestPrincipal(t.Context(), own), todoURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := c.Delegate(withRequestPrincipal(t.Context(), delegated), todoURI, []string{"todo_api:read"})
	if err != nil {
		t.Fatal(err)
	}
	if theirs.Token == mine.Token || exchanges.Load() != 2 {
		t.Fatalf("the delegated token's call got the user's own exchanged token (%d exchanges)", exchanges.Load())
	}
	if act, _ := theirs.Claims["act"].(map[string]any); act["act"] == nil {
		t.Errorf("the delegated call's token has act %v, want the other party's act within it", theirs.Claims["act"])
	}
	// Each is still reused for calls made with its own kind of token.
	again, err := c.Delegate(withRequestPrincipal(t.Context(), delegated), todoURI, []string{"todo_api:read"})
	if err != nil || again.Token != theirs.Token || exchanges.Load() != 2 {
		t.Errorf("the delegated token's exchanged token was not reused: %v, %d exchanges", err, exchanges.Load())
	}
}

// A token its API refused (Refused) is not handed out again: the next
// Delegate exchanges anew. A refusal of a token already replaced drops
// nothing: the newer one stays.
func TestRefusedDelegationExchangedAnew(t *testing.T) {
	idp, exchanges := exchangeServer(t)
	c := userCredentials(t, idp, "s3cret", "todo_api:read")
	changed := make(chan struct{}, 8)
	c.changed = func() { changed <- struct{}{} }
	scopes := []string{"todo_api:read"}
	first, err := c.Delegate(asUser(c), todoURI, scopes)
	if err != nil {
		t.Fatal(err)
	}
	<-changed // the exchange's
	c.Refused(asUser(c), first)
	select {
	case <-changed:
	default:
		t.Error("the refusal did not change the session's delegations (its snapshot)")
	}
	second, err := c.Delegate(asUser(c), todoURI, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if n := exchanges.Load(); n != 2 || second.Token == first.Token {
		t.Fatalf("%d exchanges, the same token again %v: want the refused token exchanged anew", n, second.Token == first.Token)
	}
	c.Refused(asUser(c), first) // a late refusal of the first, by a call that had it
	if third, err := c.Delegate(asUser(c), todoURI, scopes); err != nil || third.Token != second.Token || exchanges.Load() != 2 {
		t.Errorf("after a late refusal of a replaced token: %v, the newer token kept %v, %d exchanges", err, third != nil && third.Token == second.Token, exchanges.Load())
	}
}
