package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// Ending a session whose snapshot is there but cannot be read (larger than
// a node reads, not JSON, not a string in Redis) ends it as any other: its
// snapshot and events go, and it stops counting against its user, found in
// the users' counts since the snapshot cannot say whose it is. One of
// another version that still names its owner is uncounted there. Before,
// the unreadable ones stayed counted (until their idle timeout).
func TestStoresEndUnreadable(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := MemoryStores(time.Hour)
	s.Snapshots = NewRedisSnapshots(client, "")
	s.Events = NewRedisEvents(client, "", EventOptions{})
	s.Users = NewRedisUserSessions(client, "")
	s.MaxSessionsPerUser = 10
	alice, bob := s.UserKey("iss", "alice"), s.UserKey("iss", "bob")
	spoilt := map[string]func(key string) error{
		"large":   func(key string) error { return client.Set(ctx, key, strings.Repeat("x", 3<<20), time.Hour).Err() },
		"garbage": func(key string) error { return client.Set(ctx, key, "not json", time.Hour).Err() },
		"hash": func(key string) error {
			client.Del(ctx, key)
			return client.HSet(ctx, key, "f", "v").Err()
		},
		"v2": func(key string) error {
			return client.Set(ctx, key, `{"v":2,"iss":"iss","sub":"alice","created":"2026-01-01T00:00:00Z"}`, time.Hour).Err()
		},
	}
	for _, id := range []string{"large", "garbage", "hash", "v2", "fine"} {
		if ok, _, err := s.Users.Claim(ctx, alice, id, 10, time.Hour); !ok || err != nil {
			t.Fatalf("claim %s: %v %v", id, ok, err)
		}
		epoch, _, err := s.Snapshots.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(Snapshot{Version: SnapshotVersion, Issuer: "iss", Subject: "alice"})
		if err := s.Snapshots.Save(ctx, id, epoch, b, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Events.Open(ctx, id, "stream"); err != nil {
			t.Fatal(err)
		}
		if err := s.Events.Append(ctx, id, "stream", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if spoil := spoilt[id]; spoil != nil {
			if err := spoil("pingmcp:session:{" + id + "}:snap"); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Users.Claim(ctx, bob, "bobs", 10, time.Hour)
	for id := range spoilt {
		if keys := client.Keys(ctx, "pingmcp:events:{"+id+"}:*").Val(); len(keys) == 0 {
			t.Fatalf("%s has no events to end", id)
		}
		if err := s.End(ctx, id); err != nil {
			t.Fatalf("End %s: %v", id, err)
		}
		if keys := client.Keys(ctx, "pingmcp:*{"+id+"}:*").Val(); slices.ContainsFunc(keys, func(k string) bool { return !strings.HasSuffix(k, ":epoch") }) {
			t.Errorf("End %s left %v", id, keys)
		}
	}
	ids, err := s.Users.Sessions(ctx, alice, 10)
	if slices.Sort(ids); err != nil || !slices.Equal(ids, []string{"fine"}) {
		t.Errorf("alice's counted sessions after the ends: %q, %v; want the readable one alone", ids, err)
	}
	if ids, _ := s.Users.Sessions(ctx, bob, 10); !slices.Equal(ids, []string{"bobs"}) {
		t.Errorf("bob's counted sessions: %q", ids)
	}

	// EndCounted uncounts under the user given, whatever the snapshot.
	spoilt["large"]("pingmcp:session:{fine}:snap")
	if err := s.EndCounted(ctx, "fine", alice); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Users.Sessions(ctx, alice, 10); len(ids) != 0 || client.Exists(ctx, "pingmcp:session:{fine}:snap").Val() != 0 {
		t.Errorf("after EndCounted: alice's sessions %q", ids)
	}
}

// WhyUnreadable says why a snapshot cannot be read in words for an
// operator, never with its content; a store out of reach is no reason.
func TestWhyUnreadable(t *testing.T) {
	_, notJSON := DecodeSnapshot([]byte("s3cr3t"))
	_, v2 := DecodeSnapshot([]byte(`{"v":2,"sub":"s3cr3t"}`))
	s := MemoryStores(time.Hour)
	b, _ := json.Marshal(Snapshot{Version: SnapshotVersion, Delegations: NewProcessSealer().Seal([]byte("s3cr3t"), []byte("x"))})
	_, unsealed := s.Describe("id", b, true)
	for _, c := range []struct {
		err  error
		want string
	}{
		{&TooLarge{What: "session snapshot", Key: "k", Size: 3 << 20, Limit: 512 << 10, Unit: "bytes"}, "too large: 3 MiB, over its bound of 512 KiB"},
		{&TooLarge{What: "session snapshot", Key: "k", Size: 5<<19 + 3, Limit: 1 << 20, Unit: "bytes"}, "too large: 2.5 MiB, over its bound of 1 MiB"},
		{fmt.Errorf("read session x: %w", &TooLarge{Size: 524289, Limit: 524288}), "too large: 524289 bytes, over its bound of 524288 bytes"},
		{&WrongType{What: "session snapshot", Key: "k", Type: "list"}, "not a snapshot: Redis holds a list there"},
		{notJSON, "not a session snapshot: it does not decode"},
		{v2, "written by another version (snapshot version 2; this node reads 1)"},
		{unsealed, "its sealed part cannot be opened: sealed under a key not in --state-keys, or tampered with"},
		{errors.New("dial tcp: connection refused"), ""},
		{nil, ""},
	} {
		if got := WhyUnreadable(c.err); got != c.want {
			t.Errorf("WhyUnreadable(%v) = %q, want %q", c.err, got, c.want)
		}
		if c.err != nil && c.want != "" && !errors.Is(c.err, ErrUnreadable) && !errors.Is(c.err, ErrUnsealable) {
			t.Errorf("%v is neither ErrUnreadable nor ErrUnsealable", c.err)
		}
	}
}
