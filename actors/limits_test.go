package actors

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdkjson "github.com/segmentio/encoding/json"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/state"
)

// flakyEvents is an event store whose appends fail while down; it records
// the appends it took, in order.
type flakyEvents struct {
	state.Events // nil: only AppendAt is used here

	mu    sync.Mutex
	down  bool
	tried [][]byte // every append attempted
	taken [][]byte
}

func (f *flakyEvents) AppendAt(_ context.Context, _, _ string, _ int64, _ state.WriteID, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tried = append(f.tried, data)
	if f.down {
		return errors.New("connection refused")
	}
	f.taken = append(f.taken, data)
	return nil
}

// While the store is down a session holds at most its EventsBuffer of
// writes: beyond, an append is refused (and not written around the queue,
// which would break the stream's order); once the store is back, the queue
// lands in order.
func TestEventsBufferBound(t *testing.T) {
	store := &flakyEvents{down: true}
	e := &sessionEvents{store: store, max: 3, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	for _, ev := range []string{"1", "2", "3"} {
		if err := e.Append(ctx, "s", "st", []byte(ev)); err != nil {
			t.Fatalf("append %s while the store is down: %v", ev, err)
		}
	}
	if !e.full() {
		t.Fatal("queue of 3 with a bound of 3 not full")
	}
	if err := e.Append(ctx, "s", "st", []byte("4")); err == nil {
		t.Fatal("append to a full queue accepted")
	}
	store.mu.Lock()
	if slices.ContainsFunc(store.tried, func(d []byte) bool { return string(d) == "4" }) {
		t.Error("an append refused by the full queue was tried around it")
	}
	store.down = false // back: the writer lands the queue, paced
	store.mu.Unlock()
	// flush is how the actor awaits its queue: a signal of the fake store
	// cannot say when the writer has dropped what the store took.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.flush(fctx); err != nil {
		t.Fatalf("queue not written once the store was back: %v", err)
	}
	if e.full() {
		t.Error("still full once written")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	var got []string
	for _, d := range store.taken {
		got = append(got, string(d))
	}
	if !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("store took %q, want 1 2 3 in order", got)
	}
	if e.limit() != 3 || (&sessionEvents{}).limit() != DefaultEventsBuffer {
		t.Error("limit")
	}
}

// A session's actor refuses a GET beyond its stream cap with 429, and any
// request but DELETE while its event queue is full with 503, each with
// Retry-After and a retryable JSON-RPC error; principal actors have
// neither limit.
func TestCheckLimits(t *testing.T) {
	a := newSessionActor(Config{MaxStreamsPerSession: 2})
	a.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a.flights = map[string]*flight{"g1": {get: true}, "p1": {}, "g2": {get: true}}
	a.events = &sessionEvents{max: 1}
	get := &envelope.Request{Id: "r1", Method: http.MethodGet}
	post := &envelope.Request{Id: "r2", Method: http.MethodPost, Body: []byte(`{"jsonrpc":"2.0","id":7,"method":"ping"}`)}
	del := &envelope.Request{Id: "r3", Method: http.MethodDelete}
	check := func(p *envelope.ResponsePart, req *envelope.Request, status int, retry, limit string, id any) {
		t.Helper()
		if p == nil {
			t.Fatalf("%s admitted, want %d", req.Method, status)
		}
		h := http.Header{}
		envelope.ToHTTP(p.Headers, h)
		var body struct {
			ID    any
			Error struct {
				Code int
				Data struct {
					Retryable bool
					Limit     string
				}
			}
		}
		if err := json.Unmarshal(p.Body, &body); err != nil || p.RequestId != req.Id || int(p.Status) != status || !p.Final ||
			h.Get("Retry-After") != retry || body.Error.Code != rpcerr.Limited || !body.Error.Data.Retryable || body.Error.Data.Limit != limit || body.ID != id {
			t.Errorf("%s refused with %d %v %s, want %d, Retry-After %s, limit %s", req.Method, p.Status, h, p.Body, status, retry, limit)
		}
	}
	check(a.checkLimits(get, nil), get, http.StatusTooManyRequests, "1", "session_streams", nil)
	if p := a.checkLimits(post, nil); p != nil {
		t.Errorf("POST refused: %s", p.Body)
	}
	delete(a.flights, "g2")
	if p := a.checkLimits(get, nil); p != nil {
		t.Errorf("GET under the cap refused: %s", p.Body)
	}

	a.events.backlog = []pendingWrite{{}}
	check(a.checkLimits(post, nil), post, http.StatusServiceUnavailable, "5", "events_buffer", float64(7))
	check(a.checkLimits(get, nil), get, http.StatusServiceUnavailable, "5", "events_buffer", nil)
	if p := a.checkLimits(del, nil); p != nil {
		t.Errorf("DELETE refused: %s", p.Body)
	}

	// A principal's listens are capped by its actor, its other requests
	// not (the edge limits them).
	pa := newPrincipalActor(Config{MaxStreamsPerSession: 2, MaxListensPerPrincipal: 2})
	pa.logger = a.logger
	pa.flights = map[string]*flight{"g1": {get: true}, "g2": {get: true}, "l1": {listen: json.RawMessage(`1`)}}
	listen := &envelope.Request{Id: "l", Method: http.MethodPost, Body: []byte(`{"jsonrpc":"2.0","id":"l-3","method":"subscriptions/listen","params":{}}`)}
	listenBody, err := rpcbody.Read(listen.Body)
	if err != nil {
		t.Fatal(err)
	}
	if p := pa.checkLimits(listen, listenBody); p != nil {
		t.Errorf("a listen under the cap refused: %s", p.Body)
	}
	pa.flights["l2"] = &flight{listen: json.RawMessage(`2`)}
	check(pa.checkLimits(listen, listenBody), listen, http.StatusTooManyRequests, "1", "principal_listens", "l-3")
	if pa.checkLimits(get, nil) != nil || pa.checkLimits(post, nil) != nil {
		t.Error("a principal actor refused a request that is not a listen")
	}

	// A listen's resource subscriptions are bounded (the go-sdk holds
	// them all for the stream's life), duplicates counted.
	delete(pa.flights, "l2")
	resources := func(n int) *envelope.Request {
		uris := strings.TrimSuffix(strings.Repeat(`"test://static-text",`, n), ",")
		return &envelope.Request{Id: "r", Method: http.MethodPost,
			Body: []byte(`{"jsonrpc":"2.0","id":"l-4","method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[` + uris + `]}}}`)}
	}
	for _, n := range []int{1, MaxListenResources} {
		req := resources(n)
		rb, err := rpcbody.Read(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		if p := pa.checkLimits(req, rb); p != nil {
			t.Errorf("a listen of %d resources refused: %s", n, p.Body)
		}
	}
	req := resources(MaxListenResources + 1)
	rb, err := rpcbody.Read(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := pa.checkLimits(req, rb)
	var refusal struct {
		ID    string
		Error struct {
			Code int
			Data struct{ Limit string }
		}
	}
	if p == nil || p.Status != http.StatusBadRequest || json.Unmarshal(p.Body, &refusal) != nil || refusal.ID != "l-4" ||
		refusal.Error.Code != rpcerr.InvalidRequest || refusal.Error.Data.Limit != "listen_resources" {
		t.Errorf("a listen of %d resources: %v, want a 400 naming listen_resources", MaxListenResources+1, p)
	}
}

// A listen's resource subscriptions are counted as the go-sdk reads them
// (keys matched exactly, the last of a key twice): a key in another case
// beside the SDK's (which the edge lets through below params' own keys)
// does not hide the entries the SDK holds, and entries only under such a
// key, which the SDK never reads, are not counted.
func TestListenResourcesCountedAsTheSDKReadsThem(t *testing.T) {
	pa := newPrincipalActor(Config{})
	pa.logger = slog.New(slog.DiscardHandler)
	over := strings.TrimSuffix(strings.Repeat(`"test://static-text",`, MaxListenResources+1), ",")
	for _, tc := range []struct {
		params  string
		refused bool
	}{
		{`{"notifications":{"resourceSubscriptions":[` + over + `],"ResourceSubscriptions":[]}}`, true},
		{`{"notifications":{"resourceSubscriptions":[` + over + `]},"Notifications":{"resourceSubscriptions":[]}}`, true},
		{`{"notifications":{"resourceSubscriptions":[],"resourceSubscriptions":[` + over + `]}}`, true},
		{`{"notifications":{"resourceSubscriptions":[` + over + `],"resourceSubscriptions":[]}}`, false},
		{`{"notifications":{},"Notifications":{"resourceSubscriptions":[` + over + `]}}`, false},
	} {
		short := strings.ReplaceAll(tc.params, over, "101 URIs")
		body := []byte(`{"jsonrpc":"2.0","id":"l","method":"subscriptions/listen","params":` + tc.params + `}`)
		rb, err := rpcbody.Read(body)
		if err != nil {
			t.Fatalf("the edge refuses %s: %v", short, err)
		}
		var sdk struct {
			Params mcp.SubscriptionsListenParams `json:"params"`
		}
		if _, err := sdkjson.Parse(body, &sdk, sdkjson.DontMatchCaseInsensitiveStructFields); err != nil {
			t.Fatal(err)
		}
		held := 0
		if n := sdk.Params.Notifications; n != nil {
			held = len(n.ResourceSubscriptions)
		}
		if held > MaxListenResources != tc.refused {
			t.Fatalf("the SDK holds %d resources of %s", held, short)
		}
		p := pa.checkLimits(&envelope.Request{Id: "r", Method: http.MethodPost, Body: body}, rb)
		if refused := p != nil && p.Status == http.StatusBadRequest; refused != tc.refused {
			t.Errorf("a listen the SDK would hold %d resources of: refused %v, want %v (%s)", held, refused, tc.refused, short)
		}
	}
}
