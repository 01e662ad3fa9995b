package taskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redisread"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// refusedAs checks that err refuses what at key for holding size units
// over limit, without quoting it.
func refusedAs(t *testing.T, err error, what, key string, size, limit int64, unit string) {
	t.Helper()
	var big *redisread.TooLarge
	if !errors.As(err, &big) || big.What != what || big.Key != key || big.Size != size || big.Limit != limit || big.Unit != unit {
		t.Fatalf("%s: %v, want %s at %s refused for %d %s over %d", what, err, what, key, size, unit, limit)
	}
	if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, strconv.FormatInt(size, 10)) || strings.Contains(msg, "s3cr3t") {
		t.Fatalf("the refusal does not name the key and size, or quotes the value: %.300s", msg)
	}
}

// A task record larger than pingmcp writes is refused in Redis, unread: Get
// and Update fail with ErrUnreadable (the tasks layer answers an unknown
// task), Update changes nothing, List leaves it out; the owner's other
// tasks are read as before, and a record of exactly MaxRecordBytes is read
// whole. Before, each read allocated whatever the key held.
func TestRedisRecordReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedis(client, "rb:")
	now := time.Now()
	for _, id := range []string{"big", "ok", "edge"} {
		if err := s.Create(ctx, &Task{ID: id, Owner: "alice", Status: "completed", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	key := "rb:task:{alice}:big"
	if err := client.Set(ctx, key, strings.Repeat("s3cr3t", MaxRecordBytes/6+1)[:MaxRecordBytes+1], time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "alice", "big")
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("Get of an oversize record: %v, want ErrUnreadable", err)
	}
	refusedAs(t, err, "task record", key, MaxRecordBytes+1, MaxRecordBytes, "bytes")
	changed := false
	_, err = s.Update(ctx, "alice", "big", func(*Task) error { changed = true; return nil })
	if !errors.Is(err, ErrUnreadable) || changed {
		t.Fatalf("Update of an oversize record: %v (changed: %v), want ErrUnreadable and no change", err, changed)
	}
	refusedAs(t, err, "task record", key, MaxRecordBytes+1, MaxRecordBytes, "bytes")
	if n := client.StrLen(ctx, key).Val(); n != MaxRecordBytes+1 {
		t.Fatalf("the refused record was changed: %d bytes", n)
	}
	page, _, err := s.List(ctx, "alice", "", 100)
	if err != nil || len(page) != 2 {
		t.Fatalf("List with an oversize record: %d tasks, %v; want the 2 others", len(page), err)
	}
	if task, err := s.Get(ctx, "alice", "ok"); err != nil || task == nil {
		t.Fatalf("another task: %v, %v", task, err)
	}

	// At the bound (the record's JSON, white space after it): read whole.
	edge := "rb:task:{alice}:edge"
	b, _ := client.Get(ctx, edge).Result()
	client.Set(ctx, edge, b+strings.Repeat(" ", MaxRecordBytes-len(b)), time.Hour)
	if task, err := s.Get(ctx, "alice", "edge"); err != nil || task == nil || task.Status != "completed" {
		t.Fatalf("a record of MaxRecordBytes: %v, %v", task, err)
	}
	if page, _, err := s.List(ctx, "alice", "", 100); err != nil || len(page) != 2 {
		t.Fatalf("List with a record of MaxRecordBytes: %d tasks, %v", len(page), err)
	}
	if task, err := s.Update(ctx, "alice", "edge", func(t *Task) error { t.StatusMessage = "seen"; return nil }); err != nil || task.StatusMessage != "seen" {
		t.Fatalf("Update of a record of MaxRecordBytes: %v, %v", task, err)
	}
}

// An index of leases of more members, or bytes, than pingmcp keeps is
// refused unread (the sweep fails and is tried again a lease later); one at
// the bound is read whole.
func TestRedisLeasesReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedis(client, "lb:")
	key := "lb:tasks:{alice}"
	members := make([]redis.Z, maxLeases)
	for i := range members {
		members[i] = redis.Z{Score: float64(i), Member: "t" + strconv.Itoa(i)}
	}
	client.ZAdd(ctx, key, members...)
	if got, err := s.Leases(ctx, "alice"); err != nil || len(got) != maxLeases || !got["t7"].Equal(time.UnixMilli(7)) {
		t.Fatalf("%d leases: %d, %v", maxLeases, len(got), err)
	}
	client.ZAdd(ctx, key, redis.Z{Score: 1, Member: "one more"})
	_, err := s.Leases(ctx, "alice")
	refusedAs(t, err, "task leases", key, maxLeases+1, maxLeases, "members")

	client.Del(ctx, key)
	client.ZAdd(ctx, key, redis.Z{Score: 1, Member: strings.Repeat("s3cr3t", maxLeaseBytes/6+1)})
	_, err = s.Leases(ctx, "alice")
	refusedAs(t, err, "task leases", key, 6*(maxLeaseBytes/6+1), maxLeaseBytes, "bytes")
	if got, err := s.Leases(ctx, "bob"); err != nil || len(got) != 0 {
		t.Fatalf("another owner's leases: %v, %v", got, err)
	}
}

// A member of an owner's ended tasks longer than pingmcp writes (an id)
// is refused where Create takes the oldest away: nothing goes, the log
// says so, naming the set and the size, and the task is created.
func TestRedisOldestReadBound(t *testing.T) {
	defer func(n int) { MaxKeptPerOwner = n }(MaxKeptPerOwner)
	MaxKeptPerOwner = 2
	logs := &logtest.Buffer{}
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedis(client, "ob:")
	now := time.Now()
	create := func(id string) {
		t.Helper()
		if err := s.Create(ctx, &Task{ID: id, Owner: "alice", Status: "completed", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	create("t0")
	create("t1")
	ended := "ob:tasks:{alice}:ended"
	long := strings.Repeat("s3cr3t", 1<<20)
	client.ZAdd(ctx, ended, redis.Z{Score: float64(now.Add(30 * time.Minute).UnixMilli()), Member: long}) // expires first
	create("t2")
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), fmt.Sprintf(`ended tasks at Redis key \"%s\" holds %d bytes`, ended, len(long))) || strings.Contains(logs.String(), "s3cr3t") {
		t.Fatalf("the oversize member was not refused, or not said so:\n%.500s", logs)
	}
	if client.ZScore(ctx, ended, long).Err() != nil || client.Exists(ctx, "ob:task:{alice}:t0").Val() != 1 {
		t.Fatal("something was taken away")
	}
	if task, err := s.Get(ctx, "alice", "t2"); err != nil || task == nil {
		t.Fatalf("the task created: %v, %v", task, err)
	}
}
