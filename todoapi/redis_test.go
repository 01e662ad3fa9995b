package todoapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

func TestRedisStore(t *testing.T) {
	client := redistest.Start(t)
	n := 0
	testStore(t, func(t *testing.T) Store {
		n++
		return NewRedisStore(client, "test"+strconv.Itoa(n)+":")
	})
}

func TestConcurrentCreatesRedis(t *testing.T) {
	testConcurrentCreates(t, NewRedisStore(redistest.Start(t), ""))
}

// TestRedisKeys: one hash per user, named by a hash of the user key, under
// the prefix.
func TestRedisKeys(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisStore(client, "")
	users := []string{"alice", "bob*", "carol:todo"}
	for _, u := range users {
		for i := range 2 {
			if _, err := s.Create(ctx, u, Todo{ID: newID(), Text: "t" + strconv.Itoa(i)}, 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(users) {
		t.Fatalf("keys %q, want one per user", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "todoapi:user:") || len(k) != len("todoapi:user:")+43 {
			t.Errorf("key %q is not todoapi:user:<sha-256>", k)
		}
		for _, u := range users {
			if strings.Contains(k, u) {
				t.Errorf("key %q contains the user key %q", k, u)
			}
		}
		if typ := client.Type(ctx, k).Val(); typ != "hash" {
			t.Errorf("key %q is a %s", k, typ)
		}
	}
}

// TestStoreFailure: a store that fails answers 500, and says nothing of why.
func TestStoreFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()

	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{Store: NewRedisStore(client, "")})
	alice := is.token(t, "alice")
	for name, resp := range map[string]response{
		"list":   api.list(t, alice),
		"create": api.create(t, alice, "x"),
		"update": api.setCompleted(t, alice, newID(), true),
		"delete": api.remove(t, alice, newID()),
	} {
		if resp.status != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500; body %s", name, resp.status, resp.body)
			continue
		}
		if e := resp.errorBody(t); e.Error != "server_error" || strings.Contains(e.Description, addr) {
			t.Errorf("%s: error %+v", name, e)
		}
	}
	if logs := api.logs.String(); !strings.Contains(logs, "todo store failed") || strings.Contains(logs, alice) {
		t.Errorf("log does not report the failure, or holds the token:\n%s", logs)
	}
}

func TestIdempotentCreatesRedis(t *testing.T) {
	testIdempotentCreates(t, NewRedisStore(redistest.Start(t), ""))
}

// A user's list of more todos, or bytes, than the API writes (twice its
// bounds, or their defaults) is refused in Redis, unread: the call fails as
// a store failure does (500), the log names the key and its size, nothing
// changes, and other users are served; a list at the bound is read whole.
// Before, every call read the list whole, whatever it held.
func TestRedisListReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	store := NewRedisStore(client, "")
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{Store: store, MaxTodos: 5})
	todos, bytes := store.readBounds()
	if todos != 2*DefaultMaxTodos || bytes != todos*(6*DefaultMaxTextRunes+512) {
		t.Fatalf("read bounds %d todos, %d bytes", todos, bytes)
	}
	alice, bob := is.token(t, "alice"), is.token(t, "bob")
	api.mustCreate(t, alice, "first")
	keys := client.Keys(ctx, "todoapi:user:*").Val()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	key := keys[0]
	fields := map[string]any{}
	for range todos - 1 {
		id := newID()
		b, _ := json.Marshal(Todo{ID: id, Text: "t", CreatedAt: time.Now()})
		fields[id] = string(b)
	}
	client.HSet(ctx, key, fields)
	if resp := api.list(t, alice); resp.status != http.StatusOK || int64(len(resp.list(t))) != todos {
		t.Fatalf("a list of %d todos: %d, %s", todos, resp.status, resp.body)
	}
	client.HSet(ctx, key, newID(), `{"id":"x","text":"one more"}`)
	for name, resp := range map[string]response{
		"list":   api.list(t, alice),
		"create": api.create(t, alice, "x"),
		"delete": api.remove(t, alice, newID()),
	} {
		if resp.status != http.StatusInternalServerError {
			t.Fatalf("%s of a list over the bound: %d, %s", name, resp.status, resp.body)
		}
	}
	if n := client.HLen(ctx, key).Val(); n != todos+1 {
		t.Fatalf("the refused list changed: %d todos", n)
	}
	if logs := api.logs.String(); !strings.Contains(logs, key) || !strings.Contains(logs, "holds "+strconv.FormatInt(todos+1, 10)+" todos") {
		t.Fatalf("the refusal does not name the key and its size:\n%.1000s", logs)
	}
	if resp := api.list(t, bob); resp.status != http.StatusOK {
		t.Fatalf("another user's list: %d, %s", resp.status, resp.body)
	}

	client.Del(ctx, key)
	client.HSet(ctx, key, "x", strings.Repeat("s3cr3t", int(bytes)/6+1))
	if resp := api.list(t, alice); resp.status != http.StatusInternalServerError {
		t.Fatalf("a list of more bytes than read: %d, %s", resp.status, resp.body)
	}
	if logs := api.logs.String(); !strings.Contains(logs, "bytes, more than the "+strconv.FormatInt(bytes, 10)) || strings.Contains(logs, "s3cr3t") {
		t.Fatalf("the refusal does not name the bound, or quotes the list:\n%.1000s", logs)
	}
}
