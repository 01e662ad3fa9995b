package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
)

// scopedTools are a toolset whose tools need the given scopes.
type scopedTools struct {
	tools.Toolset
	scopes map[string][]string
}

func (s scopedTools) Scopes() map[string][]string { return s.scopes }

// principalActor spawns a principal actor (identity owner) of the
// conformance tools, confirm_delete needing files:write and slow_compute
// compute, keeping its tasks in d.
func principalActor(t *testing.T, d *state.Stores, owner string) (*actor.RootContext, *actor.PID) {
	return principalActorOn(t, d, owner, nil)
}

// principalActorOn is principalActor, live in the node's set local.
func principalActorOn(t *testing.T, d *state.Stores, owner string, local *Local) (*actor.RootContext, *actor.PID) {
	return spawnPrincipal(t, d, owner, local, scopedTools{conformance.New(), map[string][]string{"confirm_delete": {"files:write"}, "slow_compute": {"compute"}}})
}

// spawnPrincipal spawns a principal actor (identity owner) of toolsets on
// an actor system of its own, keeping its tasks in d.
func spawnPrincipal(t *testing.T, d *state.Stores, owner string, local *Local, toolsets ...tools.Toolset) (*actor.RootContext, *actor.PID) {
	cfg := Config{Local: local, Implementation: &mcp.Implementation{Name: "pingmcp", Version: "test"}, SchemaCache: mcp.NewSchemaCache(),
		Logger: slog.New(slog.DiscardHandler), Stores: d, Authenticated: true, Toolsets: toolsets}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
	t.Cleanup(system.Shutdown)
	return system.Root, system.Root.Spawn(protocluster.WithClusterIdentity(PrincipalProps(cfg), protocluster.NewClusterIdentity(owner, "principal")))
}

// taskMeta is the _meta of a 2026-07-28 request declaring the tasks
// extension.
var taskMeta = map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
	"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "t", "version": "1"},
	"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{tasks.Extension: map[string]any{}}}}

// statelessCall forwards one 2026-07-28 request of p's; it returns the
// first part (status, headers) and the body.
func statelessCall(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, method, name string, params map[string]any) (*envelope.ResponsePart, map[string]any) {
	t.Helper()
	r := forwardRequest(root, pid, statelessRequest(p, method, name, params))
	head := await(t, r.head, method)
	out := await(t, r.body, method+" body")
	if i := strings.Index(out, "{"); i > 0 { // an SSE answer: its one event
		out = out[i:]
		out = out[:strings.LastIndex(out, "}")+1]
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: %d %q", method, head.Status, out)
	}
	return head, m
}

// statelessRequest is one 2026-07-28 request of p's (JSON-RPC id 1), as an
// edge forwards it.
func statelessRequest(p *envelope.Principal, method, name string, params map[string]any) *envelope.Request {
	params["_meta"] = taskMeta
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	return &envelope.Request{Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: body, Window: 16, Principal: p, Resource: "https://mcp.example/mcp",
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2026-07-28"}},
			{Name: "Mcp-Method", Values: []string{method}},
			{Name: "Mcp-Name", Values: []string{name}},
		}}
}

func header(p *envelope.ResponsePart, name string) string {
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, name) && len(h.Values) > 0 {
			return h.Values[0]
		}
	}
	return ""
}

func principal(token string, scopes ...string) *envelope.Principal {
	return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c1", Token: token,
		ExpiresUnix: time.Now().Add(time.Hour).Unix(), Scopes: scopes}
}

// A tasks/update answering a task's input starts a round of its tool: a
// token without the tool's scopes gets the step-up answer a tools/call
// would (403 insufficient_scope naming the scope), and the task waits; the
// stepped-up token's answer runs the round.
func TestTaskUpdateNeedsTheToolsScopes(t *testing.T) {
	root, pid := principalActor(t, state.MemoryStores(time.Hour), "alice-principal")
	full, weak := principal("tok-full", "files:write"), principal("tok-weak", "openid")
	_, r := statelessCall(t, root, pid, full, "tools/call", "confirm_delete", map[string]any{"name": "confirm_delete", "arguments": map[string]any{"filename": "a.txt"}})
	res, _ := r["result"].(map[string]any)
	id, _ := res["taskId"].(string)
	if id == "" {
		t.Fatalf("tools/call confirm_delete: %v, want a task", r)
	}
	get := func() map[string]any {
		_, r := statelessCall(t, root, pid, full, "tasks/get", id, map[string]any{"taskId": id})
		res, _ := r["result"].(map[string]any)
		return res
	}
	waitTask(t, "input_required", func() bool { return get()["status"] == "input_required" })
	answer := map[string]any{"taskId": id, "inputResponses": map[string]any{"confirm": map[string]any{"action": "accept", "content": map[string]any{"confirm": true}}}}
	head, r := statelessCall(t, root, pid, weak, "tasks/update", id, answer)
	if head.Status != http.StatusForbidden || r["error"] == nil || !strings.Contains(header(head, "WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(header(head, "WWW-Authenticate"), "files:write") {
		t.Fatalf("tasks/update with a token lacking files:write: %d %v %v, want 403 insufficient_scope", head.Status, head.Headers, r)
	}
	if got := get(); got["status"] != "input_required" {
		t.Fatalf("the refused update changed the task: %v", got)
	}
	if head, r := statelessCall(t, root, pid, full, "tasks/update", id, answer); head.Status != http.StatusOK || r["error"] != nil {
		t.Fatalf("tasks/update with files:write: %d %v", head.Status, r)
	}
	waitTask(t, "completed", func() bool { return get()["status"] == "completed" })
}

// A principal actor takes over its principal's tasks whose runner was lost
// without anyone reading them: at its first request (here a tools/list),
// and when the lease of a task still held elsewhere ends.
func TestPrincipalActorSweepsLapsedTasks(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	ctx := context.Background()
	now := time.Now()
	call, _ := json.Marshal(map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 0}, "_meta": taskMeta})
	for id, lease := range map[string]time.Time{"lapsed": now.Add(-time.Second), "held": now.Add(time.Second)} {
		if err := d.Tasks.Create(ctx, &taskstore.Task{ID: id, Owner: "bob-principal", Status: "working", CreatedAt: now, UpdatedAt: now,
			TTL: time.Hour, Request: call, Runner: "dead-node/x", LeaseUntil: lease}); err != nil {
			t.Fatal(err)
		}
	}
	root, pid := principalActor(t, d, "bob-principal")
	bob := &envelope.Principal{Issuer: "https://idp", Subject: "bob", ClientId: "c1", Token: "tok-bob", ExpiresUnix: now.Add(time.Hour).Unix(), Scopes: []string{"compute"}}
	if head, _ := statelessCall(t, root, pid, bob, "tools/list", "", map[string]any{}); head.Status != http.StatusOK {
		t.Fatalf("tools/list: %d", head.Status)
	}
	for _, id := range []string{"lapsed", "held"} {
		waitTask(t, id+" resumed and completed", func() bool {
			got, _ := d.Tasks.Get(ctx, "bob-principal", id)
			return got != nil && got.Status == "completed" && got.Resumes == 1
		})
	}
}

// waitTask polls the store or the actor (a task's status changes with no
// event to await).
func waitTask(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(forwardTimeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// lapsedTask stores a task of owner's running slow_compute (resumable),
// whose runner's lease ran out.
func lapsedTask(t *testing.T, d *state.Stores, owner, id string) {
	t.Helper()
	now := time.Now()
	call, _ := json.Marshal(map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 0}, "_meta": taskMeta})
	if err := d.Tasks.Create(context.Background(), &taskstore.Task{ID: id, Owner: owner, Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, Request: call, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
}

// untouched fails unless task id is still as lapsedTask left it.
func untouched(t *testing.T, d *state.Stores, owner, id, why string) {
	t.Helper()
	got, err := d.Tasks.Get(context.Background(), owner, id)
	if err != nil || got == nil || got.Runner != "dead-node/x" || got.Resumes != 0 || got.Status != "working" {
		t.Fatalf("%s: the task was acted on: %+v, %v", why, got, err)
	}
}

// Nobody is acted for with an expired token: the sweep at the first
// request of a principal whose token expired leaves its lapsed task, and a
// tasks/get that would resume it with that token is refused (401
// invalid_token); the next request with a fresh token takes it over.
func TestTasksWaitForAFreshToken(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	lapsedTask(t, d, "carol-principal", "lapsed")
	root, pid := principalActor(t, d, "carol-principal")
	stale := &envelope.Principal{Issuer: "https://idp", Subject: "carol", ClientId: "c1", Token: "tok-old", ExpiresUnix: time.Now().Add(-time.Minute).Unix(), Scopes: []string{"compute"}}
	if head, _ := statelessCall(t, root, pid, stale, "tools/list", "", map[string]any{}); head.Status != http.StatusOK {
		t.Fatalf("tools/list: %d", head.Status)
	}
	head, r := statelessCall(t, root, pid, stale, "tasks/get", "lapsed", map[string]any{"taskId": "lapsed"})
	if head.Status != http.StatusUnauthorized || r["error"] == nil || !strings.Contains(header(head, "WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("a resuming tasks/get with an expired token: %d %v %v, want 401 invalid_token", head.Status, head.Headers, r)
	}
	untouched(t, d, "carol-principal", "lapsed", "with an expired token")
	fresh := &envelope.Principal{Issuer: "https://idp", Subject: "carol", ClientId: "c1", Token: "tok-new", ExpiresUnix: time.Now().Add(time.Hour).Unix(), Scopes: []string{"compute"}}
	if head, _ := statelessCall(t, root, pid, fresh, "tools/list", "", map[string]any{}); head.Status != http.StatusOK {
		t.Fatalf("tools/list: %d", head.Status)
	}
	waitTask(t, "the sweep with the fresh token to resume the task", func() bool {
		got, _ := d.Tasks.Get(context.Background(), "carol-principal", "lapsed")
		return got != nil && got.Status == "completed" && got.Resumes == 1
	})
}

// The sweep acts with a token no request presented lately: it asks the
// store whether the user was revoked, and leaves the tasks of a revoked
// one; once the revocation no longer holds, the next request sweeps.
func TestSweepLeavesARevokedUsersTasks(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	ctx := context.Background()
	lapsedTask(t, d, "dan-principal", "lapsed")
	if err := d.Revocations.Revoke(ctx, state.RevocationKey("https://idp", "dan"), state.Revocation{At: time.Now(), Until: time.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 8)
	d.Revocations = askedRevocations{d.Revocations, asked}
	var allowed atomic.Bool
	d.Tasks = guardedTasks{d.Tasks, func() {
		if !allowed.Load() {
			t.Error("a revoked user's tasks were swept")
		}
	}}
	root, pid := principalActor(t, d, "dan-principal")
	dan := &envelope.Principal{Issuer: "https://idp", Subject: "dan", ClientId: "c1", Token: "tok-dan", ExpiresUnix: time.Now().Add(time.Hour).Unix(), Scopes: []string{"compute"},
		ClaimsJson: []byte(`{"iat":` + strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10) + `}`)}
	if head, _ := statelessCall(t, root, pid, dan, "tools/list", "", map[string]any{}); head.Status != http.StatusOK {
		t.Fatalf("tools/list: %d", head.Status)
	}
	select {
	case <-asked:
	case <-time.After(forwardTimeout):
		t.Fatal("the sweep did not ask the store for revocations")
	}
	untouched(t, d, "dan-principal", "lapsed", "a revoked user's sweep")
	waitTask(t, "the revocation to end", func() bool {
		all, _ := d.Revocations.All(ctx)
		return len(all) == 0
	})
	allowed.Store(true)
	statelessCall(t, root, pid, dan, "tools/list", "", map[string]any{})
	waitTask(t, "the sweep after the revocation to resume the task", func() bool {
		got, _ := d.Tasks.Get(ctx, "dan-principal", "lapsed")
		return got != nil && got.Status == "completed" && got.Resumes == 1
	})
}

// askedRevocations says on asked when All is read.
type askedRevocations struct {
	state.Revocations
	asked chan struct{}
}

func (r askedRevocations) All(ctx context.Context) (map[string]state.Revocation, error) {
	defer func() {
		select {
		case r.asked <- struct{}{}:
		default:
		}
	}()
	return r.Revocations.All(ctx)
}

// guardedTasks calls sweep when a sweep reads the index of leases.
type guardedTasks struct {
	taskstore.Store
	sweep func()
}

func (g guardedTasks) Leases(ctx context.Context, owner string) (map[string]time.Time, error) {
	g.sweep()
	return g.Store.Leases(ctx, owner)
}

// The rounds of an actor's tasks run outside any request, but count as
// requests in flight: an actor running one is not among the node's idle
// actors (those memory pressure passivates first); once it ends, it is.
func TestRunningRoundsAreInFlight(t *testing.T) {
	local := NewLocal()
	root, pid := principalActorOn(t, state.MemoryStores(time.Hour), "erin-principal", local)
	erin := &envelope.Principal{Issuer: "https://idp", Subject: "erin", ClientId: "c1", Token: "tok-erin", ExpiresUnix: time.Now().Add(time.Hour).Unix(), Scopes: []string{"compute"}}
	_, r := statelessCall(t, root, pid, erin, "tools/call", "slow_compute", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 30}})
	res, _ := r["result"].(map[string]any)
	id, _ := res["taskId"].(string)
	if id == "" {
		t.Fatalf("tools/call slow_compute: %v, want a task", r)
	}
	// The call itself has ended: a read of the task is answered after it.
	statelessCall(t, root, pid, erin, "tasks/get", id, map[string]any{"taskId": id})
	waitTask(t, "the requests to end", func() bool {
		local.mu.Lock()
		defer local.mu.Unlock()
		for _, la := range local.pids {
			return la.inFlight.Load() <= 1
		}
		return false
	})
	if idle := local.idle(); len(idle) != 0 {
		t.Fatalf("an actor running a task's round is idle: %v", idle)
	}
	statelessCall(t, root, pid, erin, "tasks/cancel", id, map[string]any{"taskId": id})
	waitTask(t, "the actor to be idle once its round ended", func() bool { return len(local.idle()) == 1 })
}

// Each round of a task has its audit record, naming the task; a
// synchronous call's names none.
func TestTaskRoundsAuditedWithTheirTask(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	var auditLog logtest.Buffer
	cfg := Config{Implementation: &mcp.Implementation{Name: "pingmcp", Version: "test"}, SchemaCache: mcp.NewSchemaCache(),
		Logger: slog.New(slog.DiscardHandler), Stores: d, Authenticated: true, Audit: audit.New(&auditLog, false),
		Toolsets: []tools.Toolset{conformance.New()}}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
	t.Cleanup(system.Shutdown)
	root, pid := system.Root, system.Root.Spawn(protocluster.WithClusterIdentity(PrincipalProps(cfg), protocluster.NewClusterIdentity("alice-principal", "principal")))
	alice := principal("tok-alice")

	_, created := statelessCall(t, root, pid, alice, "tools/call", "slow_compute", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 0}})
	res, _ := created["result"].(map[string]any)
	id, _ := res["taskId"].(string)
	if id == "" {
		t.Fatalf("slow_compute: %v, want a CreateTaskResult", created)
	}
	if _, out := statelessCall(t, root, pid, alice, "tools/call", "greet", map[string]any{"name": "greet", "arguments": map[string]any{"name": "x"}}); out["result"] == nil {
		t.Fatalf("greet: %v", out)
	}
	records := func() map[string]string { // tool → task of its records
		out := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(auditLog.String()), "\n") {
			var rec struct{ Event, Tool, Task string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Event == "tool_call" {
				out[rec.Tool] = rec.Task
			}
		}
		return out
	}
	waitTask(t, "the task round's audit record", func() bool { _, ok := records()["slow_compute"]; return ok })
	got := records()
	if got["slow_compute"] != id {
		t.Errorf("the round's audit record names task %q, want %q", got["slow_compute"], id)
	}
	if task, ok := got["greet"]; !ok || task != "" {
		t.Errorf("the synchronous call's record: present %v, task %q; want present, no task", ok, task)
	}
}
