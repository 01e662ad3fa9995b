package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// taskRPC sends one request of the stateless 2026-07-28 protocol, declaring
// the tasks extension, and returns its result or error object (nil, nil
// when the cluster answered no JSON-RPC response: a node going away).
func taskRPC(ctx context.Context, url, method string, params map[string]any, name string) (result, rpcErr map[string]any) {
	return taskRPCAs(ctx, url, "", method, params, name)
}

// taskRPCAs is taskRPC with a bearer token (none when empty).
func taskRPCAs(ctx context.Context, url, token, method string, params map[string]any, name string) (result, rpcErr map[string]any) {
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "e2e", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	req.Header.Set("Mcp-Name", name)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	var out struct {
		Result map[string]any `json:"result"`
		Error  map[string]any `json:"error"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil, nil
	}
	return out.Result, out.Error
}

// TestTaskSurvivesKilledNode: tasks live in Redis under their owner, run by
// the principal actor. The member running a task is killed with SIGKILL;
// through the edge, once the runner's lease lapsed, the task is resumed on
// the surviving member (slow_compute is resumable: pure work) and reaches
// its result there, never left working (the survivor's sweep takes it over
// before anyone reads it), and a listen for it hears of its completion; a
// task that completed before the kill keeps its result; the records in
// Redis are sealed.
func TestTaskSurvivesKilledNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	common := []string{"--tools", "conformance", "--log-level", "info"}
	edge := startNode(t, "edge", append(append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, common...), durable...)...)
	m1 := startNode(t, "member1", append(append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, common...), durable...)...)
	m2 := startNode(t, "member2", append(append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, common...), durable...)...)
	for _, n := range []*node{edge, m1, m2} {
		n.awaitMembers(ctx, 3)
	}

	start := func(seconds int) string {
		res, e := taskRPC(ctx, edge.URL(), "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": seconds, "label": "e2e"}}, "slow_compute")
		id, _ := res["taskId"].(string)
		if res["resultType"] != "task" || id == "" {
			t.Fatalf("slow_compute: %v %v, want a CreateTaskResult", res, e)
		}
		return id
	}
	get := func(id string) (map[string]any, map[string]any) {
		return taskRPC(ctx, edge.URL(), "tasks/get", map[string]any{"taskId": id}, id)
	}
	// awaitStatus polls tasks/get through the edge (clients poll tasks).
	awaitStatus := func(id, want string, within time.Duration) map[string]any {
		deadline := time.Now().Add(within)
		var last, lastErr map[string]any
		for time.Now().Before(deadline) {
			if last, lastErr = get(id); last["status"] == want {
				return last
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("task %s: %v %v, want status %s within %s", id, last, lastErr, want, within)
		return nil
	}

	// Task creation through the edge: the CreateTaskResult comes once the
	// task is in Redis.
	const creations = 50
	took := make([]time.Duration, 0, creations)
	for range creations {
		t0 := time.Now()
		start(0)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	t.Logf("task creation through the edge (%d, sequential): p50 %s, p90 %s, max %s", creations,
		took[creations/2].Round(time.Microsecond), took[creations*9/10].Round(time.Microsecond), took[creations-1].Round(time.Microsecond))

	done := start(1)
	awaitStatus(done, "completed", 30*time.Second)
	const work = 8 // seconds: longer than it takes to kill the member
	running := start(work)
	if res, _ := get(running); res["status"] != "working" {
		t.Fatalf("the %d s task: %v, want working", work, res)
	}
	victim, survivor := m1, m2
	if !m1.logged("task created", running) {
		victim, survivor = m2, m1
	}
	if !victim.logged("task created", running) {
		t.Fatal("neither member logged the task's creation")
	}
	t.Logf("killing %s, which runs task %s", victim.name, running)
	killed := time.Now()
	victim.kill()
	edge.awaitMembers(ctx, 2)
	survivor.awaitMembers(ctx, 2)

	// Nobody reads the task: another request of its principal (a
	// tasks/get of an id that never was) activates the principal's actor
	// on the survivor, which sweeps its lapsed tasks (at once, or when the
	// dead runner's lease ends) and resumes it. (Right after the kill, a
	// request may still be refused, retryably: poll, as for tasks/get.)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, e := taskRPC(ctx, edge.URL(), "tasks/get", map[string]any{"taskId": "no-such-task"}, "no-such-task")
		if e["code"] == float64(-32602) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks/get of an unknown task after the kill: %v, want -32602", e)
		}
	}
	sweep, cancelSweep := context.WithTimeout(ctx, time.Minute)
	survivor.awaitCount(sweep, "task resumed", 1)
	cancelSweep()
	if !survivor.logged("task resumed", running) {
		t.Fatalf("%s did not resume task %s without a read of it", survivor.name, running)
	}
	t.Logf("task resumed by the sweep %s after the kill", time.Since(killed).Round(time.Millisecond))
	// A listen through the edge reaches the survivor's activation, and
	// hears of the resumed task's completion (notifications/tasks).
	lctx, leave := context.WithCancel(ctx)
	defer leave()
	if status, msgs := listenTasks(lctx, t, edge.URL(), true, running); status != http.StatusOK {
		t.Errorf("listen for the resumed task: HTTP %d", status)
	} else {
		for heard := false; !heard; {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatal("the listen for the resumed task ended")
				}
				p, _ := m["params"].(map[string]any)
				if res, _ := p["result"].(map[string]any); m["method"] == "notifications/tasks" && p["status"] == "completed" {
					if res["content"] == nil {
						t.Fatalf("the resumed task's completion notified without its result: %v", p)
					}
					heard = true
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("no notification of the resumed task's completion within 2 min")
			}
		}
		t.Logf("the resumed task's completion notified %s after the kill", time.Since(killed).Round(time.Millisecond))
	}
	res := awaitStatus(running, "completed", 2*time.Minute)
	t.Logf("task completed %s after the kill", time.Since(killed).Round(time.Millisecond))
	// In Redis, the records are sealed: neither the call nor its result in
	// the clear.
	keys, err := rdb.Keys(ctx, "*task:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("task keys in Redis: %v, %v", keys, err)
	}
	for _, k := range keys {
		raw, _ := rdb.Get(ctx, k).Result()
		if strings.Contains(raw, "slow_compute") || strings.Contains(raw, "computed") || strings.Contains(raw, `"status"`) {
			t.Fatalf("task record %s in the clear: %.80s", k, raw)
		}
	}
	if r, _ := res["result"].(map[string]any); r["content"] == nil {
		t.Fatalf("the resumed task: %v, want its result", res)
	}
	if !survivor.logged("task resumed", running) {
		t.Errorf("%s did not log resuming task %s", survivor.name, running)
	}
	res, _ = get(done)
	if r, _ := res["result"].(map[string]any); res["status"] != "completed" || r["content"] == nil {
		t.Fatalf("the task completed before the kill: %v, want its result", res)
	}
	// A new task runs on the survivor.
	again := start(1)
	awaitStatus(again, "completed", 30*time.Second)
}

// taskCall sends one 2026-07-28 request declaring the tasks extension with
// token, and returns the HTTP answer.
func taskCall(t *testing.T, ctx context.Context, url, token, method string, params map[string]any, name string) limitsAnswer {
	t.Helper()
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "e2e", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	return askHTTP(t, ctx, http.MethodPost, url, string(body), map[string]string{"Authorization": "Bearer " + token,
		"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
		"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "Mcp-Name": name})
}

// TestTasksPerUserCluster: --max-tasks-per-user counts a user's live
// tasks in Redis, all clients and nodes together. Alice, through two
// registered clients (two principals, two actors) and both nodes, gets two
// tasks; a third is refused (429, -32005 tasks_per_user, Retry-After)
// through either node and client, and leaves no task; bob is unaffected;
// a cancelled task frees its slot; two nodes racing for the last slot do
// not both get it.
func TestTasksPerUserCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const max = 2
	c := startAuthCluster(t, ctx, 2, "--max-tasks-per-user", strconv.Itoa(max), "--tools", "todo,conformance")
	alice := []string{login(t, ctx, c.Issuer, c.Resource, "alice", allScopes), login(t, ctx, c.Issuer, c.Resource, "alice", allScopes)}
	bob := login(t, ctx, c.Issuer, c.Resource, "bob", allScopes)
	via := func(i int) string { return c.Nodes[i%2].URL() }
	start := func(node int, token string) limitsAnswer {
		return taskCall(t, ctx, via(node), token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 120}}, "slow_compute")
	}
	taskOf := func(a limitsAnswer) string {
		t.Helper()
		var m struct {
			Result struct{ ResultType, TaskID string }
		}
		if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &m) != nil || m.Result.ResultType != "task" || m.Result.TaskID == "" {
			t.Fatalf("slow_compute: %d %s; want a CreateTaskResult", a.status, a.body)
		}
		return m.Result.TaskID
	}
	first := taskOf(start(0, alice[0]))
	taskOf(start(1, alice[1]))
	for i := range 4 {
		checkRefusal(t, start(i, alice[i/2]), "tasks_per_user")
	}
	bobs := taskOf(start(1, bob))

	// Cancelling one frees exactly one slot (so the refusals counted
	// nothing): the task's record and the user's count change together.
	if a := taskCall(t, ctx, via(1), alice[0], "tasks/cancel", map[string]any{"taskId": first}, first); a.status != http.StatusOK {
		t.Fatalf("tasks/cancel: %d %s", a.status, a.body)
	}
	// Two nodes race for the free slot.
	var got []limitsAnswer
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := start(i, alice[i])
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	created := 0
	for _, a := range got {
		if a.status == http.StatusOK {
			taskOf(a)
			created++
		} else {
			checkRefusal(t, a, "tasks_per_user")
		}
	}
	if created != 1 {
		t.Fatalf("%d of the two racing calls got a task for the one free slot, want exactly 1: %+v", created, got)
	}
	checkRefusal(t, start(0, alice[1]), "tasks_per_user")
	// Bob's task runs on; his own slot count is his.
	if a := taskCall(t, ctx, via(0), bob, "tasks/get", map[string]any{"taskId": bobs}, bobs); !strings.Contains(a.body, `"status":"working"`) {
		t.Fatalf("bob's task: %d %s, want working", a.status, a.body)
	}
}

// TestOperatorCancelsTaskElsewhere: an operator sees a user's running task
// through the admin API (and the CLI) of the node that does NOT run it,
// with whom it acts for and the node that runs it, and cancels it there:
// the round on the other node stops at its next lease renewal, the
// client's tasks/get reads it cancelled by an operator, and the cluster's
// tasks are counted by status in pingmcp_tasks_stored.
func TestOperatorCancelsTaskElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startAuthCluster(t, ctx, 2, "--tools", "todo,conformance")
	alice := login(t, ctx, c.Issuer, c.Resource, "alice", allScopes)
	res, e := taskRPCAs(ctx, c.Nodes[0].URL(), alice, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 120, "label": "e2e"}}, "slow_compute")
	id, _ := res["taskId"].(string)
	if res["resultType"] != "task" || id == "" {
		t.Fatalf("slow_compute: %v %v, want a CreateTaskResult", res, e)
	}
	// The node that runs it logged its creation, off the request's path
	// (its answer may come first).
	first, second := c.Nodes[0].watch("task created"), c.Nodes[1].watch("task created")
	for !c.Nodes[0].logged("task created", id) && !c.Nodes[1].logged("task created", id) {
		select {
		case <-first:
		case <-second:
		case <-ctx.Done():
			t.Fatal("neither node logged the task's creation")
		}
	}
	runner, other, otherAdmin := c.Nodes[0], c.Nodes[1], c.Admin[1]
	if !runner.logged("task created", id) {
		runner, other, otherAdmin = c.Nodes[1], c.Nodes[0], c.Admin[0]
	}

	// Listed by the other node's admin API, as alice's and working.
	status, body, _ := adminCall(t, ctx, http.MethodGet, otherAdmin+"/tasks?user=alice&status=working", c.Token)
	var list struct {
		Tasks []struct {
			ID, Owner, Subject, Tool, Status, Node string
			ClientID                               string `json:"client_id"`
		}
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Tasks) != 1 {
		t.Fatalf("alice's working tasks through %s: %d %s", other.name, status, body)
	}
	task := list.Tasks[0]
	if task.ID != id || task.Subject != "alice" || task.ClientID == "" || task.Tool != "slow_compute" || task.Node != runner.Cluster {
		t.Fatalf("the listed task: %+v, want %s of alice, slow_compute, run by %s (%s)", task, id, runner.name, runner.Cluster)
	}
	if strings.Contains(body, alice) || strings.Contains(body, `"label"`) {
		t.Errorf("the list shows the token or the call's arguments: %s", body)
	}
	env := []string{"PINGMCP_ADMIN_TOKEN=" + c.Token, "PINGMCP_ADMIN_URL=" + strings.TrimSuffix(otherAdmin, "/admin/v1")}
	if out, errOut, code := runCLI(t, env, "tasks", "ls", "--user", "alice"); code != 0 || !strings.Contains(out, task.Owner+"/"+id) || !strings.Contains(out, "working") {
		t.Errorf("pingmcp tasks ls --user alice: %d\n%s%s", code, out, errOut)
	}

	// Cancelled through the other node: its round, on the runner, stops.
	cancelled := time.Now()
	if out, errOut, code := runCLI(t, env, "tasks", "cancel", task.Owner+"/"+id); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("pingmcp tasks cancel: %d %s%s", code, out, errOut)
	}
	stop, cancelStop := context.WithTimeout(ctx, 30*time.Second)
	runner.awaitCount(stop, "a round stops", 1)
	cancelStop()
	if !runner.logged("a round stops", id) {
		t.Fatalf("%s did not stop the round of task %s", runner.name, id)
	}
	t.Logf("the round stopped on %s %s after the operator's cancel through %s", runner.name, time.Since(cancelled).Round(time.Millisecond), other.name)
	if !other.logged("admin: task cancelled", id) {
		t.Errorf("%s did not log the operator's cancel", other.name)
	}
	res, e = taskRPCAs(ctx, other.URL(), alice, "tasks/get", map[string]any{"taskId": id}, id)
	if res["status"] != "cancelled" || res["statusMessage"] != "cancelled by an operator" {
		t.Fatalf("alice's tasks/get after the cancel: %v %v, want cancelled by an operator", res, e)
	}
	status, body, _ = adminCall(t, ctx, http.MethodPost, otherAdmin+"/tasks/"+task.Owner+"/"+id+"/cancel", c.Token)
	if status != http.StatusConflict || !strings.Contains(body, "already ended") {
		t.Errorf("a second cancel: %d %s, want 409", status, body)
	}
	metricsURL := strings.TrimSuffix(otherAdmin, "/admin/v1") + "/metrics"
	if n := scrape(t, ctx, metricsURL, c.Token, `pingmcp_tasks_stored{status="cancelled"}`); n != 1 {
		t.Errorf(`pingmcp_tasks_stored{status="cancelled"} = %v, want 1`, n)
	}
	if n := scrape(t, ctx, metricsURL, c.Token, `pingmcp_tasks_stored{status="working"}`); n != 0 {
		t.Errorf(`pingmcp_tasks_stored{status="working"} = %v, want 0`, n)
	}
}

// TestImportSurvivesKilledNode: the Todo toolset's import_todos, a real
// long-running tool, runs as a task (the Todo API answers each create in
// 50 ms more, so the import takes seconds). The node running it is killed
// with SIGKILL midway; through another node, the task is resumed (it is
// resumable: each create carries the idempotency key <task id>/<index>)
// and its client fetches its result; the Todo API then holds every
// imported todo exactly once.
func TestImportSurvivesKilledNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startAuthClusterWith(t, ctx, 3, 50*time.Millisecond)
	alice := login(t, ctx, c.Issuer, c.Resource, "alice", allScopes)
	const n = 60
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("import %03d.", i)
	}
	a := taskCall(t, ctx, c.Nodes[0].URL(), alice, "tools/call", map[string]any{"name": "import_todos", "arguments": map[string]any{"items": items}}, "import_todos")
	var created struct {
		Result struct{ ResultType, TaskID string }
	}
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &created) != nil || created.Result.TaskID == "" {
		t.Fatalf("import_todos: %d %s; want a CreateTaskResult", a.status, a.body)
	}
	id := created.Result.TaskID
	var victim *node
	for victim == nil {
		for _, nd := range c.Nodes {
			if nd.logged("task created", id) {
				victim = nd
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no node logged the task's creation")
		}
		time.Sleep(20 * time.Millisecond) // the runner's log line, no event to await
	}
	survivor := c.Nodes[0]
	if survivor == victim {
		survivor = c.Nodes[1]
	}
	get := func() (status, message string, body string) {
		a := taskCall(t, ctx, survivor.URL(), alice, "tasks/get", map[string]any{"taskId": id}, id)
		var got struct {
			Result struct{ Status, StatusMessage string }
		}
		json.Unmarshal([]byte(a.body), &got)
		return got.Result.Status, got.Result.StatusMessage, a.body
	}
	// Midway: at least 10 todos added, the task still working.
	for {
		status, msg, body := get()
		var added int
		if _, err := fmt.Sscanf(msg, "added %d of", &added); err == nil && added >= 10 && status == "working" {
			t.Logf("killing %s, which runs task %s: %s", victim.name, id, msg)
			break
		}
		if status != "working" || ctx.Err() != nil {
			t.Fatalf("before the kill: %s", body)
		}
		time.Sleep(100 * time.Millisecond) // clients poll tasks/get
	}
	killed := time.Now()
	victim.kill()
	for _, nd := range c.Nodes {
		if nd != victim {
			nd.awaitMembers(ctx, 2)
		}
	}
	var final string
	for {
		status, _, body := get()
		if status == "completed" {
			final = body
			break
		}
		if status == "failed" || status == "cancelled" || ctx.Err() != nil {
			t.Fatalf("after the kill: %s; want the import resumed to completion", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("import_todos completed %s after its node was killed: %.200s", time.Since(killed).Round(time.Millisecond), final)
	if strings.Contains(final, `"isError":true`) {
		t.Fatalf("the resumed import ended in a tool error: %s", final)
	}
	status, list := rawStatelessCall(t, ctx, survivor.URL(), alice, "get_my_todo_list")
	if status != http.StatusOK {
		t.Fatalf("get_my_todo_list: %d %s", status, list)
	}
	for _, item := range items {
		if k := strings.Count(list, item); k != 1 {
			t.Errorf("%q is in the Todo API %d times, want once", item, k)
		}
	}
}
