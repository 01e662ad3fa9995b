package todoapi

import (
	"context"
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
