package taskstore_test

import (
	"context"
	"encoding/json"
	"fmt"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// replyBytes is a go-redis hook that records the most bytes of string
// replies one round trip (a command, or a pipeline) brought back.
type replyBytes struct {
	mu  sync.Mutex
	max int
}

func (h *replyBytes) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replyBytes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.note([]redis.Cmder{cmd})
		return err
	}
}

func (h *replyBytes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.note(cmds)
		return err
	}
}

func (h *replyBytes) note(cmds []redis.Cmder) {
	n := 0
	for _, c := range cmds {
		if c, ok := c.(*redis.Cmd); ok {
			if s, ok := c.Val().(string); ok {
				n += len(s)
			}
		}
	}
	h.mu.Lock()
	h.max = max(h.max, n)
	h.mu.Unlock()
}

func (h *replyBytes) reset() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.max
	h.max = 0
	return n
}

// A page of tasks with large results (as a tool's 1 MiB answer makes, or a
// writer of Redis puts there) is read a budget at a time, and the page
// holds what describes each task, not its result: the count of tasks for
// the metrics, on every node at each scrape, and an operator's list, read
// pages of 500 records of up to MaxRecordBytes each, all of them in the
// node's memory at once (8 GiB for a page of records at the bound).
// maxListedMessage is taskstore's bound of a listed error message.
const maxListedMessage = 1 << 10

func TestRedisListBudget(t *testing.T) {
	defer func(b int64) { taskstore.ListBudget = b }(taskstore.ListBudget)
	taskstore.ListBudget = 1 << 20
	client := redistest.Start(t)
	hook := &replyBytes{}
	client.AddHook(hook)
	ctx := context.Background()
	s := taskstore.NewRedis(client, "lb:")
	s.SetSealer(state.NewProcessSealer())
	now := time.Now()
	big := strings.Repeat("x", 300<<10)
	result, _ := json.Marshal(map[string]any{"content": []map[string]string{{"type": "text", "text": big}}})
	failure, _ := json.Marshal(map[string]any{"code": -32603, "message": big, "data": big})
	const n = 12
	for i := range n {
		task := &taskstore.Task{ID: fmt.Sprintf("t%02d", i), Owner: "alice", Issuer: "https://idp", Subject: "alice", Status: "completed",
			CreatedAt: now, UpdatedAt: now, TTL: time.Hour, Request: json.RawMessage(`{"name":"report","arguments":{"q":"` + big[:1000] + `"}}`),
			Result: result}
		if i%3 == 0 {
			task.Status, task.Result, task.Error = "failed", nil, failure
		}
		if err := s.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	// One larger than the budget, read alone.
	huge := &taskstore.Task{ID: "huge", Owner: "alice", Status: "completed", CreatedAt: now, UpdatedAt: now, TTL: time.Hour,
		Result: json.RawMessage(`"` + strings.Repeat("y", 3<<20) + `"`)}
	if err := s.Create(ctx, huge); err != nil {
		t.Fatal(err)
	}
	hook.reset()
	page, _, err := s.List(ctx, "", "", 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != n+1 {
		t.Fatalf("List: %d tasks, want %d", len(page), n+1)
	}
	held := 0
	for _, task := range page {
		held += len(task.Result) + len(task.Error) + len(task.Request) + len(task.RequestState)
		for _, m := range []map[string]json.RawMessage{task.InputRequests, task.Responses} {
			for _, v := range m {
				held += len(v)
			}
		}
		if task.ID == "huge" {
			continue
		}
		if task.Tool() != "report" {
			t.Errorf("task %s lists tool %q, want report", task.ID, task.Tool())
		}
		if task.Status == "failed" {
			var e struct {
				Code    int64
				Message string
			}
			if json.Unmarshal(task.Error, &e) != nil || e.Code != -32603 || !strings.HasPrefix(e.Message, "xxx") || len(e.Message) > maxListedMessage+len("…") {
				t.Errorf("task %s lists error %.100s, want its code and at most %d bytes of its message", task.ID, task.Error, maxListedMessage)
			}
		}
	}
	if held > n*(maxListedMessage+200) {
		t.Errorf("a page of %d tasks holds %d bytes of their calls, results and errors: not what describes them", len(page), held)
	}
	largest := int(client.StrLen(ctx, "lb:task:{alice}:huge").Val())
	if most := hook.reset(); most > max(int(taskstore.ListBudget), largest) || most == 0 {
		t.Errorf("one round trip of List brought %d bytes of records, over the budget (%d) and the one record larger than it (%d)", most, taskstore.ListBudget, largest)
	}
	// Get still reads a task whole.
	if task, err := s.Get(ctx, "alice", "t01"); err != nil || string(task.Result) != string(result) {
		t.Fatalf("Get: %v, result of %d bytes", err, len(task.Result))
	}
}
