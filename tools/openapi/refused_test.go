package openapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/tools"
)

// refusedCaller hands out a new token at each Delegate ("t1", "t2", …)
// and counts those told refused.
type refusedCaller struct {
	mu      sync.Mutex
	handed  int
	refused []string
}

func (*refusedCaller) Claims(context.Context) map[string]any { return nil }

func (c *refusedCaller) Delegate(context.Context, string, []string) (*tools.Delegation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handed++
	return &tools.Delegation{Token: fmt.Sprintf("t%d", c.handed), Expiry: time.Now().Add(time.Hour)}, nil
}

func (c *refusedCaller) Refused(_ context.Context, d *tools.Delegation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused = append(c.refused, d.Token)
}

// A delegated token the API refuses (401: revoked before its expiry) is
// told refused, and the call made once more, whole (its body), with a
// token exchanged anew; one the API refuses every time is asked twice,
// not more.
func TestRefusedTokenExchangedAnew(t *testing.T) {
	var bodies []string
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b)) // (the recorder's lock is not held: one call at a time)
		if a := r.Header.Get("Authorization"); a == "Bearer t1" || a == "Bearer t3" || a == "Bearer t4" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"1"}`))
	})
	caller := &refusedCaller{}
	cs := connect(t, itemsTools(t, api.URL, Options{}), caller)
	if res := callTool(t, cs, "items_createItem", `{"body":{"name":"once"}}`); res.IsError {
		t.Fatalf("a call whose first token was refused: %+v", res.Content[0])
	}
	reqs := api.requests()
	if len(reqs) != 2 || bodies[0] != bodies[1] || bodies[1] == "" || reqs[1].Header.Get("Authorization") != "Bearer t2" {
		t.Errorf("%d requests, bodies %q: want the refused one sent again whole with the next token", len(reqs), bodies)
	}
	if res := callTool(t, cs, "items_createItem", `{"body":{"name":"never"}}`); !res.IsError {
		t.Errorf("a call whose every token is refused answered %+v", res.Content[0])
	}
	caller.mu.Lock()
	defer caller.mu.Unlock()
	if n := len(api.requests()); n != 4 || fmt.Sprint(caller.refused) != "[t1 t3 t4]" {
		t.Errorf("%d requests, refused %v: want 4 and [t1 t3 t4]", n, caller.refused)
	}
}
