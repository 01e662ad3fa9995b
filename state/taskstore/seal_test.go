package taskstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
)

func keys(t *testing.T, spec ...string) *state.Sealer {
	t.Helper()
	var items []string
	for _, id := range spec {
		items = append(items, id+":"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id[:1]), 32)))
	}
	s, err := state.ParseKeys(strings.Join(items, ","))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A task's arguments and result never reach Redis in the clear; a record
// copied under another owner's key (or another id) does not open, and reads
// as ErrUnreadable, which the layer answers as an unknown task.
func TestRedisRecordsAreSealed(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	s := taskstore.NewRedis(client, "seal:")
	s.SetSealer(keys(t, "k1"))
	now := time.Now()
	const arg, result = "secret-argument-4711", "secret-result-4712"
	task := &taskstore.Task{ID: "t1", Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour,
		Request: json.RawMessage(`{"name":"import_todos","arguments":{"title":"` + arg + `"}}`), Runner: "n/a", LeaseUntil: now.Add(time.Minute)}
	if err := s.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "alice", "t1", func(t *taskstore.Task) error {
		t.Status, t.Result, t.Runner = "completed", json.RawMessage(`{"content":[{"type":"text","text":"`+result+`"}]}`), ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := client.Get(ctx, "seal:task:{alice}:t1").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{arg, result, "import_todos", "completed", `"status"`} {
		if strings.Contains(raw, clear) {
			t.Fatalf("raw record holds %q in the clear: %s", clear, raw)
		}
	}
	if !strings.HasPrefix(raw, "k1.") {
		t.Fatalf("raw record %.20q… is not sealed under k1", raw)
	}
	got, err := s.Get(ctx, "alice", "t1")
	if err != nil || got == nil || !strings.Contains(string(got.Result), result) {
		t.Fatalf("sealed task reads back as %+v, %v", got, err)
	}

	// Moved under mallory's key, or under another id of alice's: it does
	// not open, for a read or an update.
	for _, key := range []string{"seal:task:{mallory}:t1", "seal:task:{alice}:t2"} {
		if err := client.Set(ctx, key, raw, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range [][2]string{{"mallory", "t1"}, {"alice", "t2"}} {
		if got, err := s.Get(ctx, at[0], at[1]); !errors.Is(err, taskstore.ErrUnreadable) || got != nil {
			t.Errorf("record moved to %v: get %+v, %v; want ErrUnreadable", at, got, err)
		}
		if got, err := s.Update(ctx, at[0], at[1], func(*taskstore.Task) error { return nil }); !errors.Is(err, taskstore.ErrUnreadable) || got != nil {
			t.Errorf("record moved to %v: update %+v, %v; want ErrUnreadable", at, got, err)
		}
	}
}

// Keys rotate as for the session snapshots: a record sealed under the old
// key opens once a new one is added first, is sealed again under the new
// one at its next change, and then opens without the old key; a record
// under a key no longer configured does not open.
func TestRedisSealKeyRotation(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	now := time.Now()
	old := taskstore.NewRedis(client, "rot:")
	old.SetSealer(keys(t, "k1"))
	for _, id := range []string{"changed", "untouched"} {
		if err := old.Create(ctx, &taskstore.Task{ID: id, Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	rotated := taskstore.NewRedis(client, "rot:")
	rotated.SetSealer(keys(t, "k2", "k1"))
	if got, err := rotated.Get(ctx, "alice", "changed"); err != nil || got == nil {
		t.Fatalf("k1 record with keys k2,k1: %+v, %v", got, err)
	}
	if _, err := rotated.Update(ctx, "alice", "changed", func(t *taskstore.Task) error { t.StatusMessage = "x"; return nil }); err != nil {
		t.Fatal(err)
	}
	if raw, _ := client.Get(ctx, "rot:task:{alice}:changed").Result(); !strings.HasPrefix(raw, "k2.") {
		t.Fatalf("a record changed after rotation is sealed as %.4q…, want under k2", raw)
	}
	retired := taskstore.NewRedis(client, "rot:")
	retired.SetSealer(keys(t, "k2"))
	if got, err := retired.Get(ctx, "alice", "changed"); err != nil || got == nil || got.StatusMessage != "x" {
		t.Fatalf("re-sealed record with k2 alone: %+v, %v", got, err)
	}
	if got, err := retired.Get(ctx, "alice", "untouched"); !errors.Is(err, taskstore.ErrUnreadable) || got != nil {
		t.Fatalf("k1 record with k2 alone: %+v, %v; want ErrUnreadable", got, err)
	}
}

// MaxRecordBytes, what a node reads of a task record, holds the largest
// record pingmcp writes: an answer of tasks.MaxResultBytes, a call and
// answers to input requests of tasks.MaxRequestBytes each, all of bytes
// that JSON writes as six (\u003c), sealed.
func TestMaxRecordBytesHoldsTheLargestRecord(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	s := taskstore.NewRedis(client, "max:")
	s.SetSealer(keys(t, "k1"))
	str := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("<", n-2) + `"`) }
	now := time.Now()
	task := &taskstore.Task{ID: "t", Owner: "alice", Status: "completed", CreatedAt: now, UpdatedAt: now, TTL: time.Hour,
		Result: str(tasks.MaxResultBytes), Request: str(tasks.MaxRequestBytes),
		Responses: map[string]json.RawMessage{"r": str(tasks.MaxRequestBytes - len(`{"r":}`))}}
	if err := s.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	n := client.StrLen(ctx, "max:task:{alice}:t").Val()
	t.Logf("the largest record: %d bytes sealed (MaxRecordBytes %d)", n, taskstore.MaxRecordBytes)
	if n < 6*(tasks.MaxResultBytes+tasks.MaxRequestBytes) || n > taskstore.MaxRecordBytes {
		t.Fatalf("the largest record takes %d bytes sealed: MaxRecordBytes (%d) must hold it", n, taskstore.MaxRecordBytes)
	}
	got, err := s.Get(ctx, "alice", "t")
	if err != nil {
		t.Fatalf("the largest record read back: %v", err)
	}
	var result string
	if json.Unmarshal(got.Result, &result) != nil || len(result) != tasks.MaxResultBytes-2 {
		t.Fatalf("the largest record's result read back: %d bytes", len(result))
	}
}
