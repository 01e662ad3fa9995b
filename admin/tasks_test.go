package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
)

const (
	taskTestToken = "static-admin-token-0123456789"
	// What a task's arguments, result and error data hold: never shown.
	secretArgument = "secret-argument-4711"
	secretResult   = "secret-result-4712"
	secretErrData  = "secret-error-data-4713"
)

// testIssuer is the issuer storeSession's snapshots name.
const testIssuer = "https://idp.example"

func ownerOf(subject, client string) string {
	return auth.Principal{Issuer: testIssuer, Subject: subject, ClientID: client}.Key()
}

// storeTasks stores the tasks of the tests, as the tasks layer would: a
// working one of alice's (client-a) counted among her live tasks, a
// completed one of bob's, a failed one of alice's through client-b.
func storeTasks(t *testing.T, d *state.Stores) (working, completed, failed *taskstore.Task) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	task := func(id, subject, client, status string) *taskstore.Task {
		return &taskstore.Task{ID: id, Owner: ownerOf(subject, client), Issuer: testIssuer, Subject: subject, ClientID: client,
			Status: status, CreatedAt: now, UpdatedAt: now, TTL: time.Hour, PollInterval: time.Second,
			Request: json.RawMessage(`{"name":"import_todos","arguments":{"note":"` + secretArgument + `"}}`)}
	}
	working = task("task-working", "alice", "client-a", "working")
	working.StatusMessage, working.Runner, working.LeaseUntil = "imported 3 of 10", "127.0.0.1:7001/act1/round1", now.Add(time.Minute)
	working.User = auth.Principal{Issuer: testIssuer, Subject: "alice"}.UserKey()
	completed = task("task-completed", "bob", "client-b", "completed")
	completed.Result = json.RawMessage(`{"content":[{"type":"text","text":"` + secretResult + `"}]}`)
	failed = task("task-failed", "alice", "client-b", "failed")
	failed.StatusMessage = "failed"
	failed.Error = json.RawMessage(`{"code":-32603,"message":"the import failed","data":{"detail":"` + secretErrData + `"}}`)
	for _, tk := range []*taskstore.Task{working, completed, failed} {
		if err := d.Tasks.Create(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, err := d.UserTasks.Claim(ctx, working.User, working.ID, 5, time.Hour); !ok || err != nil {
		t.Fatalf("count alice's live task: %v, %v", ok, err)
	}
	return working, completed, failed
}

type tasksFixture struct {
	srv    *httptest.Server
	d      *state.Stores
	logs   *logtest.Buffer
	audits *logtest.Buffer
}

func newTasksFixture(t *testing.T, d *state.Stores) *tasksFixture {
	t.Helper()
	f := &tasksFixture{d: d, logs: &logtest.Buffer{}, audits: &logtest.Buffer{}}
	h, err := Handler(Options{Token: taskTestToken, Stores: d, Logger: slog.New(slog.NewJSONHandler(f.logs, nil)),
		Audit: audit.New(f.audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// call sends an admin request (with the admin token unless noAuth) and
// returns its status and body.
func (f *tasksFixture) call(t *testing.T, method, path string, noAuth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	if !noAuth {
		req.Header.Set("Authorization", "Bearer "+taskTestToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// list lists tasks with query q, page after page of limit, and returns
// their ids.
func (f *tasksFixture) list(t *testing.T, q url.Values, limit string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("limit", limit)
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		status, body := f.call(t, http.MethodGet, "/admin/v1/tasks?"+v.Encode(), false)
		if status != http.StatusOK {
			t.Fatalf("list %v: %d %s", q, status, body)
		}
		var page struct {
			Tasks []TaskInfo `json:"tasks"`
			Next  string     `json:"next"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil || page.Tasks == nil {
			t.Fatalf("list %v: %q, %v", q, body, err)
		}
		for _, ti := range page.Tasks {
			ids = append(ids, ti.ID)
		}
		if page.Next == "" {
			slices.Sort(ids)
			return ids
		}
		cursor = page.Next
	}
	t.Fatal("the list never ends")
	return nil
}

func testTasksAPI(t *testing.T, d *state.Stores) {
	f := newTasksFixture(t, d)
	working, completed, failed := storeTasks(t, d)
	storeSession(t, d, "sess-alice-a", "alice", "client-a")

	// Lists, filtered, a page at a time.
	for _, c := range []struct {
		q     url.Values
		limit string
		want  []string
	}{
		{url.Values{}, "50", []string{"task-completed", "task-failed", "task-working"}},
		{url.Values{}, "1", []string{"task-completed", "task-failed", "task-working"}},
		{url.Values{"user": {"alice"}}, "50", []string{"task-failed", "task-working"}},
		{url.Values{"client": {"client-b"}}, "50", []string{"task-completed", "task-failed"}},
		{url.Values{"user": {"alice"}, "client": {"client-b"}}, "50", []string{"task-failed"}},
		{url.Values{"status": {"completed"}}, "50", []string{"task-completed"}},
		{url.Values{"issuer": {"https://other.example"}}, "50", nil},
		{url.Values{"session": {"sess-alice-a"}}, "1", []string{"task-working"}},
		{url.Values{"session": {"sess-alice-a"}, "user": {"bob"}}, "50", nil},
		{url.Values{"user": {"alice"}, "client": {"client-b"}, "issuer": {testIssuer}}, "1", []string{"task-failed"}},
		{url.Values{"user": {"carol"}}, "50", nil},
	} {
		if got := f.list(t, c.q, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("list %v (limit %s): %v, want %v", c.q, c.limit, got, c.want)
		}
	}
	// Bad filters: a clear 4xx each.
	for path, want := range map[string]int{
		"/admin/v1/tasks?status=running":         http.StatusBadRequest,
		"/admin/v1/tasks?limit=0":                http.StatusBadRequest,
		"/admin/v1/tasks?limit=x":                http.StatusBadRequest,
		"/admin/v1/tasks?cursor=not-a-cursor%21": http.StatusBadRequest,
		"/admin/v1/tasks?session=no-such":        http.StatusNotFound,
	} {
		status, body := f.call(t, http.MethodGet, path, false)
		var e map[string]string
		if status != want || json.Unmarshal([]byte(body), &e) != nil || e["error"] == "" {
			t.Errorf("%s: %d %s, want %d with an error", path, status, body, want)
		}
	}

	// One task: whom it acts for, its tool, state and runner.
	status, body := f.call(t, http.MethodGet, "/admin/v1/tasks/"+working.Owner+"/"+working.ID, false)
	var got TaskInfo
	if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("show: %d %s", status, body)
	}
	if got.ID != working.ID || got.Owner != working.Owner || got.Issuer != testIssuer || got.Subject != "alice" || got.ClientID != "client-a" ||
		got.Tool != "import_todos" || got.Status != "working" || got.StatusMessage != "imported 3 of 10" || got.Node != "127.0.0.1:7001" ||
		got.Runner != working.Runner || got.LeaseUntil == nil || !got.LeaseUntil.Equal(working.LeaseUntil) ||
		!got.Expires.Equal(working.UpdatedAt.Add(time.Hour)) || !got.Created.Equal(working.CreatedAt) {
		t.Errorf("show: %+v", got)
	}
	status, body = f.call(t, http.MethodGet, "/admin/v1/tasks/"+failed.Owner+"/"+failed.ID, false)
	if status != http.StatusOK || !strings.Contains(body, `"error":{"code":-32603,"message":"the import failed"}`) {
		t.Errorf("show a failed task: %d %s", status, body)
	}
	for _, path := range []string{"/admin/v1/tasks/" + working.Owner + "/no-such", "/admin/v1/tasks/" + ownerOf("bob", "client-b") + "/" + working.ID} {
		if status, body := f.call(t, http.MethodGet, path, false); status != http.StatusNotFound || !strings.Contains(body, "no such task") {
			t.Errorf("show %s: %d %s, want 404", path, status, body)
		}
	}

	// Cancel: 200 with the task cancelled, the user's place freed; again
	// (ended): 409 with the task as it is; unknown: 404.
	status, body = f.call(t, http.MethodPost, "/admin/v1/tasks/"+working.Owner+"/"+working.ID+"/cancel", false)
	got = TaskInfo{}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.Status != "cancelled" ||
		got.StatusMessage != "cancelled by an operator" || got.Runner != "" || got.LeaseUntil != nil {
		t.Fatalf("cancel: %d %s", status, body)
	}
	stored, err := d.Tasks.Get(context.Background(), working.Owner, working.ID)
	if err != nil || stored.Status != "cancelled" {
		t.Fatalf("the stored task after the cancel: %+v, %v", stored, err)
	}
	if ok, _, err := d.UserTasks.Claim(context.Background(), working.User, "another", 1, time.Hour); !ok || err != nil {
		t.Errorf("alice's live task still counts after its cancel (a claim at max 1: %v, %v)", ok, err)
	}
	status, body = f.call(t, http.MethodPost, "/admin/v1/tasks/"+completed.Owner+"/"+completed.ID+"/cancel", false)
	if status != http.StatusConflict || !strings.Contains(body, `"status":"completed"`) || !strings.Contains(body, "already ended") {
		t.Errorf("cancel of a completed task: %d %s, want 409 with the task", status, body)
	}
	if status, _ := f.call(t, http.MethodPost, "/admin/v1/tasks/"+working.Owner+"/no-such/cancel", false); status != http.StatusNotFound {
		t.Errorf("cancel of an unknown task: %d, want 404", status)
	}
	// Only an operator may.
	if status, _ := f.call(t, http.MethodPost, "/admin/v1/tasks/"+failed.Owner+"/"+failed.ID+"/cancel", true); status != http.StatusUnauthorized {
		t.Errorf("cancel without the admin token: %d, want 401", status)
	}
	if status, _ := f.call(t, http.MethodGet, "/admin/v1/tasks", true); status != http.StatusUnauthorized {
		t.Errorf("list without the admin token: %d, want 401", status)
	}

	// Audited: who cancelled which task, refusals too.
	var cancels []string
	for _, rec := range auditRecords(t, f.audits) {
		if rec["action"] == "tasks.cancel" {
			cancels = append(cancels, rec["target"].(string)+" "+rec["outcome"].(string)+" "+rec["operator"].(string))
		}
	}
	want := []string{working.Owner + "/" + working.ID + " ok static-admin-token", completed.Owner + "/" + completed.ID + " denied static-admin-token",
		working.Owner + "/no-such denied static-admin-token", failed.Owner + "/" + failed.ID + " denied "}
	if !slices.Equal(cancels, want) {
		t.Errorf("audited cancels:\n%q\nwant\n%q", cancels, want)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"msg":"admin: task cancelled"`) || !strings.Contains(logs, `"operator":"static-admin-token"`) {
		t.Errorf("the cancel is not logged with its operator:\n%s", logs)
	}

	// Nothing of what the tasks carry shows, anywhere.
	_, all := f.call(t, http.MethodGet, "/admin/v1/tasks", false)
	for _, where := range []string{all, body, f.logs.String(), f.audits.String()} {
		for _, secret := range []string{secretArgument, secretResult, secretErrData, taskTestToken} {
			if strings.Contains(where, secret) {
				t.Errorf("%q shows in %s", secret, where)
			}
		}
	}
}

func TestTasksAPIMemory(t *testing.T) { testTasksAPI(t, state.MemoryStores(time.Hour)) }

// On Redis, with the task records sealed, as a cluster keeps them.
func TestTasksAPIRedis(t *testing.T) {
	client := redistest.Start(t)
	tasks := taskstore.NewRedis(client, "admin:")
	sealer := state.NewProcessSealer()
	tasks.SetSealer(sealer)
	testTasksAPI(t, &state.Stores{Snapshots: state.NewRedisSnapshots(client, "admin:"), Sealer: sealer,
		Tasks: tasks, UserTasks: state.NewRedisUserTasks(client, "admin:")})
}

// downTasks is a task store that cannot be reached.
type downTasks struct{ taskstore.Store }

var errTasksDown = errors.New("dial tcp: connection refused")

func (downTasks) Get(context.Context, string, string) (*taskstore.Task, error) {
	return nil, errTasksDown
}
func (downTasks) Update(context.Context, string, string, func(*taskstore.Task) error) (*taskstore.Task, error) {
	return nil, errTasksDown
}
func (downTasks) List(context.Context, string, string, int) ([]*taskstore.Task, string, error) {
	return nil, "", errTasksDown
}

// A task store that cannot be reached: 503 for every task request.
func TestTasksAPIStoreDown(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	d.Tasks = downTasks{}
	f := newTasksFixture(t, d)
	for _, c := range [][2]string{{http.MethodGet, "/admin/v1/tasks"}, {http.MethodGet, "/admin/v1/tasks/o/t"}, {http.MethodPost, "/admin/v1/tasks/o/t/cancel"}} {
		if status, body := f.call(t, c[0], c[1], false); status != http.StatusServiceUnavailable || !strings.Contains(body, "task store") {
			t.Errorf("%s %s with the store down: %d %s, want 503", c[0], c[1], status, body)
		}
	}
}

// The console's tasks: listed with their state and filtered (a session's
// are its user's through its client), linked from the sessions' pages;
// one task's page; its cancel a form with the CSRF token, refused without
// it, then the task's page says cancelled and offers no cancel. Signed
// out, every tasks page sends to the sign-in form. Never what a task
// carries.
func TestConsoleTasks(t *testing.T) {
	f := newConsoleFixture(t, nil)
	working, _, failed := storeTasks(t, f.d)
	storeSession(t, f.d, "sess-alice-a", "alice", "client-a")
	taskPage := "/console/tasks/" + working.Owner + "/" + working.ID
	for _, path := range []string{"/console/tasks", taskPage} {
		if status, _, h := f.get(path); status != http.StatusSeeOther || h.Get("Location") != "/console/login" {
			t.Errorf("%s signed out: %d %q, want the sign-in form", path, status, h.Get("Location"))
		}
	}
	if status, _, h := f.post(taskPage+"/cancel", url.Values{"csrf": {"x"}}); status != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Errorf("a cancel signed out: %d %q", status, h.Get("Location"))
	}
	f.login()
	noSecrets := func(where, body string) {
		for _, secret := range []string{secretArgument, secretResult, secretErrData} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q", where, secret)
			}
		}
	}

	status, body, h := f.get("/console/tasks")
	for _, want := range []string{`data-task="task-working"`, `data-task="task-completed"`, `data-task="task-failed"`, "import_todos",
		"imported 3 of 10", "127.0.0.1:7001", `action="` + taskPage + `/cancel"`, `<meta http-equiv="refresh" content="2">`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the tasks page (%d) lacks %s:\n%s", status, want, body)
		}
	}
	if n := strings.Count(body, `class="end" title="Cancel this task`); n != 1 {
		t.Errorf("%d cancel buttons on the list, want 1 (the working task's; the others ended)", n)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("the tasks page's CSP: %q", csp)
	}
	noSecrets("the tasks page", body)
	_, body, _ = f.get("/console/tasks?user=alice&status=failed")
	if !strings.Contains(body, `data-task="task-failed"`) || strings.Contains(body, `data-task="task-working"`) || !strings.Contains(body, `<option selected>failed</option>`) {
		t.Errorf("alice's failed tasks:\n%s", body)
	}
	_, body, _ = f.get("/console/tasks?session=sess-alice-a")
	if !strings.Contains(body, `data-task="task-working"`) || strings.Contains(body, `data-task="task-failed"`) || strings.Contains(body, `data-task="task-completed"`) {
		t.Errorf("the tasks of sess-alice-a:\n%s", body)
	}
	_, body, _ = f.get("/console/tasks?user=carol")
	if !strings.Contains(body, `id="no-tasks"`) {
		t.Errorf("carol's tasks:\n%s", body)
	}
	if status, body, _ := f.get("/console/tasks?status=running"); status != http.StatusBadRequest || !strings.Contains(body, "status must be one of") {
		t.Errorf("a bad status filter: %d\n%s", status, body)
	}
	for _, path := range []string{"/console/sessions/sess-alice-a", "/console/"} {
		if _, body, _ := f.get(path); !strings.Contains(body, `href="/console/tasks?session=sess-alice-a"`) || !strings.Contains(body, `href="/console/tasks"`) {
			t.Errorf("%s does not link to the session's tasks and to all tasks:\n%s", path, body)
		}
	}

	status, body, _ = f.get(taskPage)
	for _, want := range []string{"alice", testIssuer, "client-a", "import_todos", "working: imported 3 of 10", "127.0.0.1:7001", `action="` + taskPage + `/cancel"`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the task's page (%d) lacks %s:\n%s", status, want, body)
		}
	}
	noSecrets("the task's page", body)
	_, body, _ = f.get("/console/tasks/" + failed.Owner + "/" + failed.ID)
	if !strings.Contains(body, "-32603 the import failed") || strings.Contains(body, "Cancel the task") {
		t.Errorf("the failed task's page:\n%s", body)
	}
	noSecrets("the failed task's page", body)
	if status, _, _ := f.get("/console/tasks/" + working.Owner + "/no-such"); status != http.StatusNotFound {
		t.Errorf("an unknown task's page: %d, want 404", status)
	}

	if status, _, _ := f.post(taskPage+"/cancel", url.Values{"csrf": {"forged"}}); status != http.StatusForbidden {
		t.Errorf("a cancel without the CSRF token: %d, want 403", status)
	}
	if got, _ := f.d.Tasks.Get(context.Background(), working.Owner, working.ID); got.Status != "working" {
		t.Fatalf("a refused cancel changed the task: %+v", got)
	}
	status, _, h = f.post(taskPage+"/cancel", url.Values{"csrf": {f.csrf()}})
	if status != http.StatusSeeOther || h.Get("Location") != taskPage {
		t.Fatalf("cancel: %d %q, want back to the task's page", status, h.Get("Location"))
	}
	_, body, _ = f.get(taskPage)
	if !strings.Contains(body, "cancelled: cancelled by an operator") || strings.Contains(body, "Cancel the task") {
		t.Errorf("the cancelled task's page:\n%s", body)
	}
	if status, body, _ := f.post(taskPage+"/cancel", url.Values{"csrf": {f.csrf()}}); status != http.StatusConflict || !strings.Contains(body, "already ended") {
		t.Errorf("a second cancel: %d\n%s", status, body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "admin: task cancelled") || !strings.Contains(logs, "operator=static-admin-token") {
		t.Errorf("the cancel is not logged with its operator:\n%s", logs)
	}
}

// An operator's cancel through the admin API reaches a round running in a
// tasks layer (here in this process, sharing the store, as another node's
// would): the tool's context ends at the round's next renewal, and the
// view never shows the call's arguments.
func TestTasksAPICancelReachesTheRound(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	f := newTasksFixture(t, d)
	stopped := make(chan struct{})
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	tasks.Add(s, &mcp.Tool{Name: "admin_test_wait", InputSchema: json.RawMessage(`{"type":"object"}`)}, tasks.Optional,
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			<-ctx.Done()
			close(stopped)
			return nil, ctx.Err()
		})
	owner := ownerOf("alice", "client-a")
	layer := tasks.New(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Stateless: true, DisableLocalhostProtection: true}),
		tasks.Options{Store: d.Tasks, Owner: owner, Runner: "127.0.0.1:7009/act", Lease: 600 * time.Millisecond,
			Principal: func(*http.Request) (string, string, string) { return testIssuer, "alice", "client-a" }})
	mcpSrv := httptest.NewServer(layer)
	t.Cleanup(func() { layer.Close(); mcpSrv.Close() })

	call, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{
		"name": "admin_test_wait", "arguments": map[string]any{"note": secretArgument},
		"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "t", "version": "1"},
			"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{tasks.Extension: map[string]any{}}}}}})
	req, _ := http.NewRequest(http.MethodPost, mcpSrv.URL, bytes.NewReader(call))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "admin_test_wait")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Result struct{ ResultType, TaskID string } `json:"result"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	id := created.Result.TaskID
	if created.Result.ResultType != "task" || id == "" {
		t.Fatalf("tools/call: %+v, want a task", created)
	}

	status, body := f.call(t, http.MethodGet, "/admin/v1/tasks?user=alice&status=working", false)
	if status != http.StatusOK || !strings.Contains(body, `"id":"`+id+`"`) || !strings.Contains(body, `"node":"127.0.0.1:7009"`) ||
		!strings.Contains(body, `"tool":"admin_test_wait"`) || strings.Contains(body, secretArgument) {
		t.Fatalf("alice's working tasks: %d %s", status, body)
	}
	if status, body := f.call(t, http.MethodPost, "/admin/v1/tasks/"+owner+"/"+id+"/cancel", false); status != http.StatusOK || !strings.Contains(body, `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", status, body)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the round still runs 10 s after the operator's cancel (its lease renews every 200 ms)")
	}
	if got, _ := d.Tasks.Get(context.Background(), owner, id); got == nil || got.Status != "cancelled" || got.StatusMessage != "cancelled by an operator" {
		t.Errorf("the task once its round stopped: %+v, want cancelled by an operator", got)
	}
}

// A list cursor no page gave is the caller's mistake: 400, for sessions as
// for tasks (Redis stores; a memory store refuses one that does not decode,
// state.TestMemorySnapshots).
func TestListBadCursor(t *testing.T) {
	client := redistest.Start(t)
	f := newTasksFixture(t, &state.Stores{Snapshots: state.NewRedisSnapshots(client, "admin:"), Sealer: state.NewProcessSealer(),
		Tasks: taskstore.NewRedis(client, "admin:")})
	for _, path := range []string{"/admin/v1/sessions?cursor=bogus", "/admin/v1/tasks?cursor=bogus", "/admin/v1/sessions?cursor=9:1:2"} {
		if status, body := f.call(t, http.MethodGet, path, false); status != http.StatusBadRequest || !strings.Contains(body, "cursor") {
			t.Errorf("GET %s: %d %s; want 400 naming the cursor", path, status, body)
		}
	}
	if status, body := f.call(t, http.MethodGet, "/admin/v1/sessions", false); status != http.StatusOK {
		t.Errorf("GET /admin/v1/sessions: %d %s", status, body)
	}
}
