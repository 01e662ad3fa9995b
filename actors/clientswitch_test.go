package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools"
)

// response is a forwarded request's answer as the edge reads it.
type response struct {
	head  chan *envelope.ResponsePart   // the first part
	body  chan string                   // the whole body, once the last part came
	parts chan []*envelope.ResponsePart // every part, once the last came
}

// forwardOn sends one request of fuzzSession's to the session actor at pid
// as the edge does, acknowledging each part.
func forwardOn(root *actor.RootContext, pid *actor.PID, p *envelope.Principal, method, body string) *response {
	req := &envelope.Request{
		Id: rand.Text(), Method: method, Path: "/mcp", Body: []byte(body), Window: 16, Principal: p,
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		},
	}
	if method == http.MethodPost {
		req.Headers = append(req.Headers, &envelope.Header{Name: "Content-Type", Values: []string{"application/json"}})
	}
	return forwardRequest(root, pid, req)
}

// forwardRequest sends req to the actor at pid as the edge does,
// acknowledging each part.
func forwardRequest(root *actor.RootContext, pid *actor.PID, req *envelope.Request) *response {
	r := &response{head: make(chan *envelope.ResponsePart, 1), body: make(chan string, 1), parts: make(chan []*envelope.ResponsePart, 1)}
	var out []byte
	var parts []*envelope.ResponsePart
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			if part.GetSeq() == 0 {
				r.head <- part
			}
			out = append(out, part.GetBody()...)
			parts = append(parts, part)
			if part.GetFinal() {
				r.body <- string(out)
				r.parts <- parts
				ctx.Stop(ctx.Self())
			} else {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
			}
		}
	}))
	return r
}

func await[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(forwardTimeout):
		t.Fatalf("%s: nothing within %v", what, forwardTimeout)
		var zero T
		return zero
	}
}

// awaitSnapshotClient waits until the session's snapshot names client
// want, and returns the client it names then (another one after
// forwardTimeout): the actor writes its snapshot off its goroutine, and an
// answer may reach the test first.
func awaitSnapshotClient(t *testing.T, d *state.Stores, session, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(forwardTimeout); ; time.Sleep(10 * time.Millisecond) {
		snap, err := d.Snapshots.Get(t.Context(), session)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := state.DecodeSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		if got = rec.ClientID; got == want || time.Now().After(deadline) {
			return got
		}
	}
}

// stillOpen fails t if the response r has ended.
func stillOpen(t *testing.T, r *response, what string) {
	t.Helper()
	select {
	case body := <-r.body:
		t.Fatalf("%s ended: %q", what, body)
	default:
	}
}

// Another client of the session's user uses the session only with a token
// holding one of the resource's scopes: one for sign-in only (openid) is
// refused 403 insufficient_scope and changes nothing. Once the session is
// used through the other client, the GET streams of the one it was used
// through end (with a retry hint: that client reconnects with its own
// token), and streams of the client now using it stay.
func TestClientSwitchNeedsAScopeAndEndsTheOtherClientsStreams(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	system, props := testSessions(t, Config{Stores: d, Authenticated: true, Scopes: []string{"mcp:tools"}})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := func(client string, scopes ...string) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: client, ExpiresUnix: time.Now().Add(time.Hour).Unix(),
			Token: "alice-token-of-" + client, Scopes: scopes}
	}
	root := system.Root
	if body := postInitialize(t, root, pid, alice("c1", "mcp:tools"), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, alice("c1", "mcp:tools"), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	// Each ping has an id of its own: MCP forbids reusing one within a
	// session, and the SDK refuses an id still in flight (its stream is
	// released just after the response is sent) with 400.
	next := 0
	ping := func() string {
		next++
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, next)
	}
	owner := func() string {
		t.Helper()
		snap, err := d.Snapshots.Get(t.Context(), fuzzSession)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := state.DecodeSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		return rec.ClientID
	}

	stream := forwardOn(root, pid, alice("c1", "mcp:tools"), http.MethodGet, "")
	if head := await(t, stream.head, "c1's GET stream"); head.GetStatus() != http.StatusOK {
		t.Fatalf("c1's GET stream: %d %s", head.GetStatus(), head.GetBody())
	}

	// c2 with a sign-in token only: refused, for any method.
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		r := forwardOn(root, pid, alice("c2", "openid"), method, ping())
		head := await(t, r.head, "c2's openid-only "+method)
		h := http.Header{}
		envelope.ToHTTP(head.GetHeaders(), h)
		chal := h.Get("WWW-Authenticate")
		if head.GetStatus() != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="mcp:tools openid"`) {
			t.Errorf("c2's openid-only %s: %d %q, want 403 insufficient_scope naming mcp:tools", method, head.GetStatus(), chal)
		}
		if body := await(t, r.body, "c2's refusal"); !strings.Contains(body, `"error"`) || strings.Contains(body, "alice-token") {
			t.Errorf("refusal body %s", body)
		}
	}
	// The refusals changed nothing: c1 still uses the session, and its
	// stream has not ended (an end is sent from the stream's goroutine: this
	// catches one already delivered, not one still on its way).
	if status := fuzzForward(t, root, pid, alice("c1", "mcp:tools"), ping()); status != http.StatusOK {
		t.Fatalf("c1 after the refusals: %d", status)
	}
	stillOpen(t, stream, "c1's stream, after refused requests of c2")
	if got := owner(); got != "c1" {
		t.Fatalf("snapshot names client %q after refused requests of c2, want c1", got)
	}

	// c2 with one of the scopes: the session is used through c2, and c1's
	// stream ends with a retry hint.
	if status := fuzzForward(t, root, pid, alice("c2", "mcp:tools", "openid"), ping()); status != http.StatusOK {
		t.Fatalf("c2 with mcp:tools: %d", status)
	}
	if body := await(t, stream.body, "the end of c1's stream"); !strings.Contains(body, "retry:") {
		t.Errorf("c1's stream ended without a retry hint: %q", body)
	}
	if got := awaitSnapshotClient(t, d, fuzzSession, "c2"); got != "c2" {
		t.Errorf("snapshot names client %q, want c2", got)
	}
	// c2's own stream stays when c2 goes on.
	own := forwardOn(root, pid, alice("c2", "mcp:tools"), http.MethodGet, "")
	if head := await(t, own.head, "c2's GET stream"); head.GetStatus() != http.StatusOK {
		t.Fatalf("c2's GET stream: %d", head.GetStatus())
	}
	if status := fuzzForward(t, root, pid, alice("c2", "mcp:tools"), ping()); status != http.StatusOK {
		t.Fatalf("c2's ping: %d", status)
	}
	stillOpen(t, own, "c2's stream, while c2 uses the session")
}

// The scopes that let a token take a session to another client are the
// resource's: those clients are told to request, and those its tools need.
func TestResourceScoped(t *testing.T) {
	a := &core{cfg: Config{Scopes: []string{"todo_api:read"}}, scopes: map[string][]string{"add": {"todo_api:write"}}}
	for _, c := range []struct {
		scopes []string
		want   bool
	}{
		{[]string{"openid", "todo_api:read"}, true},
		{[]string{"todo_api:write"}, true},
		{[]string{"openid", "profile", "offline_access"}, false},
		{nil, false},
	} {
		if got := a.resourceScoped(&envelope.Principal{Scopes: c.scopes}); got != c.want {
			t.Errorf("%v: %v, want %v", c.scopes, got, c.want)
		}
	}
	h := http.Header{}
	envelope.ToHTTP(a.switchRefused(&envelope.Request{Principal: &envelope.Principal{Scopes: []string{"openid"}}}).Headers, h)
	if chal := h.Get("WWW-Authenticate"); !strings.Contains(chal, `scope="openid todo_api:read"`) {
		t.Errorf("challenge %q, want the scope to request: openid todo_api:read", chal)
	}
	// OpenID Connect's scopes never speak for the resource, whatever a
	// tool says it needs (an --apis document may list openid).
	oidc := &core{scopes: map[string][]string{"get": {"openid", "api:read"}, "me": {"profile"}}}
	for _, c := range []struct {
		scopes []string
		want   bool
	}{
		{[]string{"openid"}, false},
		{[]string{"openid", "profile", "email", "offline_access"}, false},
		{[]string{"api:read"}, true},
	} {
		if got := oidc.resourceScoped(&envelope.Principal{Scopes: c.scopes}); got != c.want {
			t.Errorf("tools needing openid: %v: %v, want %v", c.scopes, got, c.want)
		}
	}
	// A resource that defines no scope (no --scopes, tools that need none)
	// asks a token for nothing but its audience.
	if none := (&core{scopes: map[string][]string{"ping": nil}}); !none.resourceScoped(&envelope.Principal{}) {
		t.Error("a resource without scopes refused a token holding none")
	}
}

// The snapshot keeps only the tokens exchanged for the token of the client
// it names: an exchange for the previous client that completes between the
// switch's write (which names the new client and empties them) and the
// switch in memory does not put its token back.
func TestSnapshotKeepsTheCurrentClientsDelegations(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	epoch, _, err := d.Snapshots.Activate(t.Context(), "s", true)
	if err != nil {
		t.Fatal(err)
	}
	p := newPersister(d, "s", epoch, newSnapshot(nil), slog.New(slog.DiscardHandler), func() {})
	defer p.close()
	a := newSessionActor(Config{Stores: d})
	a.id, a.creds = "s", newCredentials(nil, slog.New(slog.DiscardHandler))
	a.persist.Store(p)
	desktop := &envelope.Principal{Subject: "alice", ClientId: "desktop", Token: "t-desktop"}
	cli := &envelope.Principal{Subject: "alice", ClientId: "cli", Token: "t-cli"}
	exchanged := func(client string) {
		e := &delegation{client: client, ready: make(chan struct{}), fresh: time.Now().Add(time.Hour),
			value: &tools.Delegation{Token: "x-" + client, Expiry: time.Now().Add(2 * time.Hour)}}
		close(e.ready)
		a.creds.mu.Lock()
		a.creds.cache[cacheKey(client, "https://api", "read")] = e
		a.creds.mu.Unlock()
		a.delegationsChanged()
	}
	kept := func() (clients []string) {
		t.Helper()
		ds, err := d.OpenDelegations("s", p.snapshot().Delegations)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ds {
			if s.Token != "x-"+s.Client {
				t.Errorf("the token kept for %s is not the one exchanged for it", s.Client)
			}
			clients = append(clients, s.Client)
		}
		return clients
	}
	p.update(false, func(r *state.Snapshot) { r.ClientID = "desktop" })
	a.creds.set(desktop)
	exchanged("desktop")
	if got := kept(); !slices.Equal(got, []string{"desktop"}) {
		t.Fatalf("snapshot keeps the tokens of %v, want desktop's", got)
	}

	p.update(false, func(r *state.Snapshot) { r.ClientID, r.Delegations = "cli", "" }) // the switch's write (admit)
	exchanged("desktop")                                                               // desktop's exchange completes
	if got := kept(); len(got) != 0 {
		t.Fatalf("after the switch's write, the snapshot naming cli keeps the tokens of %v", got)
	}
	a.creds.replace(cli) // the switch in memory
	exchanged("desktop") // a call of desktop still running
	exchanged("cli")
	if got := kept(); !slices.Equal(got, []string{"cli"}) {
		t.Errorf("snapshot keeps the tokens of %v, want cli's alone", got)
	}
}

// heldCaller is a toolset whose one tool, who, waits for release and then
// answers the client_id of the token its call acts with.
type heldCaller struct {
	started chan struct{}
	release chan struct{}
}

func (heldCaller) Name() string                 { return "held" }
func (heldCaller) Configure(*mcp.ServerOptions) {}
func (heldCaller) Scopes() map[string][]string  { return nil }
func (h heldCaller) Install(s *mcp.Server, caller tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "who", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.started <- struct{}{}
			<-h.release
			client, _ := caller.Claims(ctx)["client_id"].(string)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "acting for " + client}}}, nil
		})
}

// A tool call acts with the token of the request that made it, even when
// another client's request switched the session while the call ran.
func TestToolCallActsForItsOwnRequest(t *testing.T) {
	held := heldCaller{started: make(chan struct{}, 1), release: make(chan struct{})}
	system, props := testSessions(t, Config{Toolsets: []tools.Toolset{held}, Stores: state.MemoryStores(time.Hour),
		Authenticated: true, Scopes: []string{"mcp:tools"}})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := func(client string) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: client, ExpiresUnix: time.Now().Add(time.Hour).Unix(),
			Token: "alice-token-of-" + client, Scopes: []string{"mcp:tools"}, ClaimsJson: []byte(`{"sub":"alice","client_id":"` + client + `"}`)}
	}
	root := system.Root
	if body := postInitialize(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	call := forwardOn(root, pid, alice("c1"), http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"who","arguments":{}}}`)
	await(t, held.started, "c1's call")
	if status := fuzzForward(t, root, pid, alice("c2"), `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c2's ping: %d", status)
	}
	close(held.release)
	if body := await(t, call.body, "c1's call's answer"); !strings.Contains(body, "acting for c1") {
		t.Errorf("c1's call, while c2 switched the session: %s", body)
	}
}

// The edge's own GET that resumes a request's stream (a JSON answer's,
// Request.Continues) carries that request's token: once the session is
// used through another client of its user, it does not take the session
// back to the first (which would end the other's streams and drop what was
// exchanged for it), nor make its token, which may have expired, the one
// the session holds. Another user's is refused as any request is.
func TestResumingGETKeepsTheSessionsClient(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	var logs logtest.Buffer
	system, props := testSessions(t, Config{Stores: d, Authenticated: true, Scopes: []string{"mcp:tools"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	user := func(subject, client string, expires time.Time) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: subject, ClientId: client, ExpiresUnix: expires.Unix(),
			Token: subject + "-token-of-" + client, Scopes: []string{"mcp:tools"}}
	}
	later := time.Now().Add(time.Hour)
	root := system.Root
	if body := postInitialize(t, root, pid, user("alice", "c1", later), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, user("alice", "c1", later), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	if status := fuzzForward(t, root, pid, user("alice", "c2", later), `{"jsonrpc":"2.0","id":1,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c2's ping: %d", status)
	}
	if got := awaitSnapshotClient(t, d, fuzzSession, "c2"); got != "c2" {
		t.Fatalf("snapshot names client %q, want c2", got)
	}
	// The switch is made in the actor's turn as c2's ping is accepted
	// (commitSwitch), its snapshot written before its log line: a request
	// answered after it was made counts it.
	if status := fuzzForward(t, root, pid, user("alice", "c2", later), `{"jsonrpc":"2.0","id":3,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c2's second ping: %d", status)
	}
	switches := func() int { return strings.Count(logs.String(), "session now used through another client") }
	before := switches()
	resume := func(p *envelope.Principal) *envelope.ResponsePart {
		req := &envelope.Request{
			Id: rand.Text(), Method: http.MethodGet, Path: "/mcp", Window: 16, Principal: p, Continues: true,
			Headers: []*envelope.Header{
				{Name: "Accept", Values: []string{"text/event-stream"}},
				{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
				{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
				{Name: "Last-Event-ID", Values: []string{"0_0"}},
			},
		}
		return await(t, forwardRequest(root, pid, req).head, "a resuming GET")
	}
	// c1's, its token expired meanwhile.
	if head := resume(user("alice", "c1", time.Now().Add(-time.Minute))); head.GetStatus() == http.StatusForbidden || head.GetStatus() == http.StatusNotFound {
		t.Fatalf("c1's resuming GET: %d %s", head.GetStatus(), head.GetBody())
	}
	if n := switches() - before; n != 0 {
		t.Errorf("c1's resuming GET took the session back to c1 (%d switches logged)", n)
	}
	if status := fuzzForward(t, root, pid, user("alice", "c2", later), `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c2's ping after c1's resuming GET: %d", status)
	}
	if n := switches() - before; n != 0 {
		t.Errorf("c2's ping after c1's resuming GET switched the session (%d switches logged): it had been taken to c1", n)
	}
	snap, err := d.Snapshots.Get(t.Context(), fuzzSession)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := state.DecodeSnapshot(snap); err != nil || rec.ClientID != "c2" {
		t.Errorf("snapshot names client %q (%v), want c2", rec.ClientID, err)
	}
	// Another user's: refused, as any request of another user is.
	if head := resume(user("mallory", "c1", later)); head.GetStatus() != http.StatusNotFound && head.GetStatus() != http.StatusForbidden {
		t.Errorf("another user's resuming GET: %d %s, want it refused", head.GetStatus(), head.GetBody())
	}
}

// An activation that removed its session (a DELETE) moved the store's
// epoch on itself: a write of its own still on its way, refused as fenced
// (told here as the removal lands, while the DELETE is still in flight), is
// no newer activation taking the session over, and is neither logged nor
// counted as one.
func TestDeletedSessionIsNotFencedByItsOwnWrites(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	var logs logtest.Buffer
	var pid *actor.PID
	var root *actor.RootContext
	d.Snapshots = deleteTells{d.Snapshots, func() { root.Send(pid, fencedOut{}) }}
	system, props := testSessions(t, Config{Stores: d, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	root = system.Root
	pid = root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	if body := postInitialize(t, root, pid, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	fenced := countOf(t, metrics.Fenced)
	if head := await(t, forwardOn(root, pid, nil, http.MethodDelete, "").head, "the DELETE's answer"); head.GetStatus() != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", head.GetStatus(), head.GetBody())
	}
	// Taken after fencedOut, sent before the DELETE ended: the session
	// ended, not moved.
	if head := await(t, forwardOn(root, pid, nil, http.MethodPost, `{"jsonrpc":"2.0","id":9,"method":"ping"}`).head, "a request after the DELETE"); head.GetStatus() != http.StatusNotFound {
		t.Errorf("a request after the DELETE: %d %s, want 404", head.GetStatus(), head.GetBody())
	}
	if n := countOf(t, metrics.Fenced) - fenced; n != 0 || strings.Contains(logs.String(), "session moved to a newer activation") {
		t.Errorf("the deleted session's own write counted as a newer activation's (%v fenced): %s", n, logs.String())
	}
}

// deleteTells is a snapshot store that calls deleted once a session's
// snapshot is deleted.
type deleteTells struct {
	state.Snapshots
	deleted func()
}

func (d deleteTells) Delete(ctx context.Context, session string, epoch int64) error {
	err := d.Snapshots.Delete(ctx, session, epoch)
	d.deleted()
	return err
}

// watchEnd is closed once the actor at pid stopped.
func watchEnd(root *actor.RootContext, pid *actor.PID) <-chan struct{} {
	ended := make(chan struct{})
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
		case *actor.Terminated:
			close(ended)
		}
	}))
	return ended
}

// failingDelete is a snapshot store whose Delete fails while fail is set,
// as Redis's does when it cannot be reached.
type failingDelete struct {
	state.Snapshots
	fail *atomic.Bool
}

func (d failingDelete) Delete(ctx context.Context, session string, epoch int64) error {
	if d.fail.Load() {
		return fmt.Errorf("delete session %s: %w", session, context.DeadlineExceeded)
	}
	return d.Snapshots.Delete(ctx, session, epoch)
}

// A DELETE whose removal of the snapshot fails (the store cannot be
// reached) is answered 503, not the go-sdk's 204: the session stays as
// stored, its actor stops, and the next request, here the DELETE sent
// again, activates it from its snapshot.
func TestDeleteThatCannotRemoveTheSnapshotAnswers503(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	var fail atomic.Bool
	d.Snapshots = failingDelete{d.Snapshots, &fail}
	system, props := testSessions(t, Config{Stores: d})
	root := system.Root
	spawn := func() *actor.PID {
		return root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	}
	pid := spawn()
	if body := postInitialize(t, root, pid, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	ended := watchEnd(root, pid)
	fail.Store(true)
	r := forwardOn(root, pid, nil, http.MethodDelete, "")
	head := await(t, r.head, "the DELETE's answer")
	body := await(t, r.body, "the DELETE's body")
	if head.GetStatus() != http.StatusServiceUnavailable || !strings.Contains(body, `"code":-32603`) || !slices.ContainsFunc(head.GetHeaders(), func(h *envelope.Header) bool { return h.GetName() == "Retry-After" }) {
		t.Fatalf("DELETE whose snapshot stays: %d %v %s, want 503 with Retry-After and a JSON-RPC error", head.GetStatus(), head.GetHeaders(), body)
	}
	if snap, err := d.Snapshots.Get(t.Context(), fuzzSession); err != nil || snap == nil {
		t.Fatalf("the snapshot after the refused DELETE: %v, %v", snap, err)
	}
	await(t, ended, "the stop of the actor whose DELETE failed")
	fail.Store(false)
	pid = spawn()
	if status := fuzzForward(t, root, pid, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("a ping after the refused DELETE: %d, want the session served", status)
	}
	if head := await(t, forwardOn(root, pid, nil, http.MethodDelete, "").head, "the DELETE sent again"); head.GetStatus() != http.StatusNoContent {
		t.Fatalf("the DELETE sent again: %d %s", head.GetStatus(), head.GetBody())
	}
	if snap, err := d.Snapshots.Get(t.Context(), fuzzSession); err != nil || snap != nil {
		t.Errorf("the snapshot after the DELETE: %q, %v, want none", snap, err)
	}
}

// A request of another client of the session's user that holds one of the
// resource's scopes takes the session to that client only once it is
// accepted: one the session's MCP SDK then refuses changes nothing (no
// switch, the streams of the client the session is used through stay, the
// snapshot still names it). Each of these reached the go-sdk after the
// actor had admitted it, and admission switched the session first: a GET
// resuming a stream the session does not know (400), the GET of a
// standalone stream while one is open (409), a GET resuming the stream of
// another client's call still in flight (409), a POST reusing the id of a
// call in flight (400). Found by a review playing a second client.
func TestRefusedRequestOfAnotherClientChangesNothing(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	var logs logtest.Buffer
	system, props := testSessions(t, Config{Stores: d, Authenticated: true, Scopes: []string{"mcp:tools"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := func(client string) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: client, ExpiresUnix: time.Now().Add(time.Hour).Unix(),
			Token: "alice-token-of-" + client, Scopes: []string{"mcp:tools"}}
	}
	root := system.Root
	if body := postInitialize(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	stream := forwardOn(root, pid, alice("c1"), http.MethodGet, "")
	if head := await(t, stream.head, "c1's GET stream"); head.GetStatus() != http.StatusOK {
		t.Fatalf("c1's GET stream: %d %s", head.GetStatus(), head.GetBody())
	}
	// A call of c1's in flight, waiting for its elicitation's answer: its
	// stream is registered (and its id in flight) before the priming event,
	// whose id names the stream.
	call := forwardOn(root, pid, alice("c1"), http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	head := await(t, call.head, "c1's call")
	if head.GetStatus() != http.StatusOK {
		t.Fatalf("c1's call: %d %s", head.GetStatus(), head.GetBody())
	}
	_, rest, ok := strings.Cut(string(head.GetBody()), "id: ")
	callStream, _, _ := strings.Cut(rest, "_")
	if !ok || callStream == "" {
		t.Fatalf("c1's call's first part names no event: %q", head.GetBody())
	}
	switches := func() int { return strings.Count(logs.String(), "session now used through another client") }

	get := func(lastEventID string) *envelope.Request {
		req := &envelope.Request{
			Id: rand.Text(), Method: http.MethodGet, Path: "/mcp", Window: 16, Principal: alice("c2"),
			Headers: []*envelope.Header{
				{Name: "Accept", Values: []string{"text/event-stream"}},
				{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
				{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
			},
		}
		if lastEventID != "" {
			req.Headers = append(req.Headers, &envelope.Header{Name: "Last-Event-ID", Values: []string{lastEventID}})
		}
		return req
	}
	for _, c := range []struct {
		name   string
		req    *envelope.Request
		status int32
	}{
		{"a GET resuming a stream the session does not know", get("nosuchstream_0"), http.StatusBadRequest},
		{"a GET of the standalone stream while c1's is open", get(""), http.StatusConflict},
		{"a GET resuming c1's call's stream while the call is in flight", get(callStream + "_0"), http.StatusConflict},
	} {
		if head := await(t, forwardRequest(root, pid, c.req).head, c.name); head.GetStatus() != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, head.GetStatus(), head.GetBody(), c.status)
		}
	}
	if status := fuzzForward(t, root, pid, alice("c2"), `{"jsonrpc":"2.0","id":7,"method":"ping"}`); status != http.StatusBadRequest {
		t.Errorf("c2's POST reusing the id of c1's call in flight: %d, want 400", status)
	}
	// A ping of c1's: had any refusal taken the session to c2, this one
	// would take it back, and be logged so too.
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":8,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c1's ping: %d", status)
	}
	if n := switches(); n != 0 {
		t.Errorf("refused requests of c2 switched the session's client (%d switches logged)", n)
	}
	stillOpen(t, stream, "c1's stream, after refused requests of c2")
	if got := awaitSnapshotClient(t, d, fuzzSession, "c1"); got != "c1" {
		t.Errorf("snapshot names client %q after refused requests of c2, want c1", got)
	}

	// An accepted request of c2's still takes the session: c1's GET stream
	// ends, with its retry hint.
	if status := fuzzForward(t, root, pid, alice("c2"), `{"jsonrpc":"2.0","id":9,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c2's ping: %d", status)
	}
	if body := await(t, stream.body, "the end of c1's stream"); !strings.Contains(body, "retry:") {
		t.Errorf("c1's stream ended without a retry hint: %q", body)
	}
	if got := awaitSnapshotClient(t, d, fuzzSession, "c2"); got != "c2" {
		t.Errorf("snapshot names client %q after c2's ping, want c2", got)
	}

	// Back on c1; c2's DELETE ends the session without taking it first.
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":10,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c1's ping: %d", status)
	}
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":11,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("c1's second ping: %d", status)
	}
	before := switches()
	if head := await(t, forwardOn(root, pid, alice("c2"), http.MethodDelete, "").head, "c2's DELETE"); head.GetStatus() != http.StatusNoContent {
		t.Fatalf("c2's DELETE: %d %s", head.GetStatus(), head.GetBody())
	}
	if status := fuzzForward(t, root, pid, alice("c1"), `{"jsonrpc":"2.0","id":12,"method":"ping"}`); status != http.StatusNotFound {
		t.Errorf("c1's ping after the DELETE: %d, want 404", status)
	}
	if n := switches() - before; n != 0 {
		t.Errorf("c2's DELETE took the session to c2 first (%d switches logged)", n)
	}
}
