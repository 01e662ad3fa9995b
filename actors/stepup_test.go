package actors

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// A tool call whose token lacks the tool's scope is refused 403 with a
// challenge naming the scopes the token holds plus those needed: a client
// re-authorizing with exactly that scope can still do what it did before.
func TestInsufficientScopeNamesGrantedAndNeeded(t *testing.T) {
	a := &core{scopes: map[string][]string{"add": {"todo_api:write"}, "list": {"todo_api:read"}}}
	const resource, metadata = "https://mcp.example/mcp", "https://mcp.example/.well-known/oauth-protected-resource/mcp"
	for _, c := range []struct {
		name, tool string
		granted    []string
		want       string // the challenge's scope; "" means admitted
	}{
		{"read token, write tool", "add", []string{"openid", "todo_api:read"}, "openid todo_api:read todo_api:write"},
		{"write token, read tool", "list", []string{"todo_api:write"}, "todo_api:read todo_api:write"},
		{"no scope at all", "add", nil, "todo_api:write"},
		{"enough", "add", []string{"todo_api:write"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := &envelope.Request{Id: "r", Method: http.MethodPost, Resource: resource,
				Body:      []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + c.tool + `","arguments":{}}}`),
				Principal: &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c1", Scopes: c.granted}}
			rb, err := reading(req)
			if err != nil {
				t.Fatal(err)
			}
			got := a.checkScopes(req, rb)
			if c.want == "" {
				if got != nil {
					t.Fatalf("refused: %d %s", got.Status, got.Body)
				}
				return
			}
			h := http.Header{}
			envelope.ToHTTP(got.Headers, h)
			chal := h.Get("WWW-Authenticate")
			if got.Status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) ||
				!strings.Contains(chal, `scope="`+c.want+`"`) || !strings.Contains(chal, `resource_metadata="`+metadata+`"`) {
				t.Errorf("refusal: %d %q, want 403 insufficient_scope with scope %q", got.Status, chal, c.want)
			}
		})
	}
}

// A session belongs to its user: the same user through another client (one
// re-registered to step up) is admitted, and the session then acts with that
// client's token, even one expiring earlier, and drops what it exchanged for
// the other. Another user, or the same subject at another issuer, is refused
// as before, and changes nothing.
func TestSessionFollowsItsUserAcrossClients(t *testing.T) {
	a := newSessionActor(Config{Scopes: []string{"todo_api:read", "todo_api:write"}})
	a.server = mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	a.logger = slog.New(slog.DiscardHandler)
	a.creds = newCredentials(nil, slog.New(slog.DiscardHandler))
	a.life = lifeServing
	token := func(iss, sub, client string, expires int64, scopes ...string) *envelope.Request {
		return &envelope.Request{Id: "r", Method: http.MethodPost, Principal: &envelope.Principal{
			Issuer: iss, Subject: sub, ClientId: client, ExpiresUnix: expires, Scopes: scopes, Token: client + "-token"}}
	}
	admit := func(req *envelope.Request) bool {
		t.Helper()
		ok, refusal, sw := a.admit(req)
		if refusal != nil {
			t.Fatalf("refusal: %d %s", refusal.Status, refusal.Body)
		}
		if sw != nil {
			// The request accepted (see serveFrom).
			a.commitSwitch(sw)
		}
		return ok
	}
	first := token("https://idp", "alice", "c1", 2000, "todo_api:read")
	if !admit(first) {
		t.Fatal("the first request refused")
	}
	a.creds.cache["x"] = &delegation{ready: make(chan struct{})}

	for _, req := range []*envelope.Request{
		token("https://idp", "bob", "c1", 3000, "todo_api:read", "todo_api:write"),
		token("https://idp", "bob", "c2", 3000, "todo_api:read", "todo_api:write"),
		token("https://other-idp", "alice", "c1", 3000, "todo_api:read", "todo_api:write"),
		token("https://other-idp", "alice", "c2", 3000, "todo_api:read", "todo_api:write"),
		{Id: "r", Method: http.MethodPost},
	} {
		if admit(req) {
			t.Errorf("%+v admitted on alice's session", req.Principal)
		}
	}
	if a.credential != first.Principal || *a.owner != (auth.Principal{Issuer: "https://idp", Subject: "alice", ClientID: "c1"}) || len(a.creds.cache) != 1 {
		t.Fatalf("a refused request changed the session: owner %+v", a.owner)
	}

	// alice through c2, with a token expiring before c1's.
	stepped := token("https://idp", "alice", "c2", 1500, "todo_api:read", "todo_api:write")
	if !admit(stepped) {
		t.Fatal("alice through another client refused")
	}
	if a.credential != stepped.Principal || a.creds.current != stepped.Principal {
		t.Error("the session does not act with the token of the client now using it")
	}
	if a.owner.ClientID != "c2" {
		t.Errorf("owner %+v, want client c2", a.owner)
	}
	if len(a.creds.cache) != 0 {
		t.Error("tokens exchanged for c1's token kept after the switch to c2")
	}
	// c1's older token, after c2's: c2's newer one stays held... until c1
	// is used again, whose token then is the one acted with.
	again := token("https://idp", "alice", "c1", 1800, "todo_api:read")
	if !admit(again) || a.credential != again.Principal {
		t.Error("back on c1: its token is not the one acted with")
	}
	older := token("https://idp", "alice", "c1", 1000, "todo_api:read")
	if !admit(older) || a.credential != again.Principal {
		t.Error("an older token of the same client replaced a newer one")
	}
}

// A session used through a second client of its user keeps that client
// when it moves: the snapshot names the client its sealed token is of (so
// that the restore, which checks the two agree, accepts it), and the moved
// session still admits its user through either client and nobody else.
func TestClientSwitchSurvivesAMove(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	system, props := testSessions(t, Config{Stores: d, Authenticated: true, Scopes: []string{"mcp:tools"}})
	spawn := func() *actor.PID {
		return system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	}
	alice := func(client string) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: client, ExpiresUnix: time.Now().Add(time.Hour).Unix(),
			Token: "alice-token-of-" + client, Scopes: []string{"mcp:tools"}}
	}
	pid := spawn()
	if body := postInitialize(t, system.Root, pid, alice("c1"), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, system.Root, pid, alice("c1"), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	if status := fuzzForward(t, system.Root, pid, alice("c2"), ping); status != http.StatusOK {
		t.Fatalf("alice through c2: %d", status)
	}
	if got := awaitSnapshotClient(t, d, fuzzSession, "c2"); got != "c2" {
		t.Fatalf("snapshot after the switch names client %q, want c2", got)
	}
	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	pid = spawn()
	for i, c := range []struct {
		who  string
		p    *envelope.Principal
		want int32
	}{
		{"mallory", fuzzMallory, http.StatusNotFound},
		{"alice at another issuer", &envelope.Principal{Issuer: "https://other-idp", Subject: "alice", ClientId: "c2", Token: "t", ExpiresUnix: time.Now().Add(time.Hour).Unix()}, http.StatusNotFound},
		{"alice through c2", alice("c2"), http.StatusOK},
		{"alice through c1", alice("c1"), http.StatusOK},
	} {
		// An id of its own per request: the SDK refuses one still in flight.
		ping := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, 2+i)
		if status := fuzzForward(t, system.Root, pid, c.p, ping); status != c.want {
			t.Errorf("%s on the moved session: %d, want %d", c.who, status, c.want)
		}
	}
}
