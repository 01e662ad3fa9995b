package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/internal/sse"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// MaxListenTasks bounds the taskIds one subscriptions/listen may ask
// notifications/tasks for: more is refused as actors.MaxListenResources
// refuses resources (400, -32600 with limit listen_tasks and max, counted
// in pingmcp_limited_requests_total). A client with more tasks opens more
// listens.
const MaxListenTasks = 100

// listener is one subscriptions/listen stream that asked for
// notifications/tasks (SEP-2663 "Task Status Notifications"): the tasks it
// was granted, and those whose state changed since it last wrote them.
//
// Its memory is bounded by the number of its tasks, whatever the client's
// pace: a change only marks the task (dirty, a set), and the stream's own
// goroutine reads each marked task's current record from the store as it
// writes it. A listener that reads slowly (the edge a window behind) stalls
// its own goroutine only; changes meanwhile coalesce, so that it gets each
// task's latest state (an intermediate status it had no time to read is
// skipped, never queued). Nothing is dropped that a later notification
// does not supersede: each carries the task's whole state.
type listener struct {
	ids  []string // granted, sorted
	wake chan struct{}

	mu    sync.Mutex
	dirty map[string]struct{}
}

func (ln *listener) mark(id string) {
	ln.mu.Lock()
	ln.dirty[id] = struct{}{}
	ln.mu.Unlock()
	select {
	case ln.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// take is the marked tasks, sorted, unmarked.
func (ln *listener) take() []string {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ids := make([]string, 0, len(ln.dirty))
	for id := range ln.dirty {
		ids = append(ids, id)
	}
	clear(ln.dirty)
	slices.Sort(ids)
	return ids
}

// changed tells the listeners of task t that it changed (status, or the
// record as a whole: they compare with what they sent).
func (l *Layer) changed(t *taskstore.Task) {
	l.mu.Lock()
	ls := make([]*listener, 0, len(l.listeners[t.ID]))
	for ln := range l.listeners[t.ID] {
		ls = append(ls, ln)
	}
	l.mu.Unlock()
	for _, ln := range ls {
		ln.mark(t.ID)
	}
}

// register adds ln to the listeners of its tasks; false once the layer is
// closed.
func (l *Layer) register(ln *listener) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	for _, id := range ln.ids {
		if l.listeners[id] == nil {
			l.listeners[id] = map[*listener]struct{}{}
		}
		l.listeners[id][ln] = struct{}{}
	}
	return true
}

func (l *Layer) unregister(ln *listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ln.ids {
		delete(l.listeners[id], ln)
		if len(l.listeners[id]) == 0 {
			delete(l.listeners, id)
		}
	}
}

// Listening is how many subscriptions/listen streams wait for task
// notifications here.
func (l *Layer) Listening() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[*listener]struct{}{}
	for _, ls := range l.listeners {
		for ln := range ls {
			n[ln] = struct{}{}
		}
	}
	return len(n)
}

// listenFilter is the part of a subscriptions/listen's params the layer
// reads: notifications.taskIds (SEP-2663), and whether anything else was
// asked for.
type listenFilter struct {
	asked   bool     // taskIds present
	taskIDs []string // as sent
	others  bool     // other notification types asked for too
}

func parseListen(params json.RawMessage) (listenFilter, *Refusal) {
	var p struct {
		Notifications map[string]json.RawMessage `json:"notifications"`
	}
	if json.Unmarshal(params, &p) != nil {
		return listenFilter{}, nil // the SDK's to refuse
	}
	raw, ok := p.Notifications["taskIds"]
	if !ok {
		return listenFilter{}, nil
	}
	f := listenFilter{asked: true, others: len(p.Notifications) > 1}
	if err := json.Unmarshal(raw, &f.taskIDs); err != nil || f.taskIDs == nil {
		return f, &Refusal{Status: http.StatusBadRequest, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params.notifications.taskIds must be an array of task ids (strings)"}}
	}
	if len(f.taskIDs) > MaxListenTasks {
		metrics.Limited.WithLabelValues("listen_tasks").Inc()
		return f, &Refusal{Status: http.StatusBadRequest, Error: rpcerr.OverLimit("listen_tasks", MaxListenTasks,
			fmt.Sprintf("params.notifications.taskIds names %d tasks; one listen takes at most %d: open another listen for the others", len(f.taskIDs), MaxListenTasks)).SDK()}
	}
	return f, nil
}

// listen serves a subscriptions/listen that asks for notifications/tasks
// (params.notifications.taskIds): it acknowledges the tasks of this owner
// among those asked for (an unknown id, or another owner's, is left out;
// one whose tool the caller may not call refuses the listen, as Authorize
// refuses its tasks/get),
// sends each one's current state at once, then each change of it, until
// the client leaves, the activation stops, or every task it listens to
// ended (then nothing more can come: the listen is answered). Other notification types
// asked for on the same listen (list changes, resource updates) are the
// SDK's: its own listen for them runs on the same stream (sdkListen), and
// the acknowledgement grants what it granted and the tasks.
func (l *Layer) listen(w http.ResponseWriter, r *http.Request, m *message, c *common, f listenFilter, body []byte) {
	if err := methodHeader(r, m.Method); err != nil {
		writeError(w, m.ID, err)
		return
	}
	if !c.negotiated() {
		writeError(w, m.ID, missingExtension())
		return
	}
	ctx := r.Context()
	granted := []string{}
	for _, id := range f.taskIDs {
		if id == "" || slices.Contains(granted, id) {
			continue
		}
		t, err := l.o.Store.Get(ctx, l.o.Owner, id)
		if errors.Is(err, taskstore.ErrUnreadable) || err == nil && t == nil {
			continue // unknown here: not granted
		}
		if err != nil {
			writeRefusal(w, m.ID, l.storeFailure(id, err))
			return
		}
		// What the listen would carry of it (its result, its input
		// requests) is its tool's, as for a tasks/get: a token that may
		// not call the tool may not listen to it either (403
		// insufficient_scope; nothing is granted).
		if refusal := l.authorize(r, t.Tool()); refusal != nil {
			writeRefusal(w, m.ID, refusal)
			return
		}
		granted = append(granted, id)
	}
	slices.Sort(granted)
	s := &listenStream{w: w, rc: http.NewResponseController(w), sub: m.ID}
	ack := map[string]any{}
	var sdk *sdkListen
	if f.others {
		var answered bool
		if sdk, answered = l.startSDKListen(s, r, body); answered {
			return // refused by the SDK: its answer went to the client
		}
		defer sdk.stop()
		for k, v := range sdk.granted {
			ack[k] = v
		}
	}
	if len(granted) > 0 {
		ack["taskIds"] = granted
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	w.WriteHeader(http.StatusOK)
	if s.notify("notifications/subscriptions/acknowledged", map[string]any{"notifications": ack}) != nil {
		return
	}
	if sdk != nil {
		sdk.pass()
	}
	// end answers the listen (the subscription ended on the server's side,
	// or the client left: then nobody reads it), after the SDK's listen on
	// the stream, if any, ended.
	end := func() {
		if sdk != nil {
			sdk.stop()
		}
		s.closed()
	}
	ln := &listener{ids: granted, wake: make(chan struct{}, 1), dirty: map[string]struct{}{}}
	if len(granted) == 0 || !l.register(ln) {
		// No task to listen to (or the activation stops): the listen
		// lasts as long as the SDK's part of it, if it has one.
		if sdk != nil && !l.isClosed() {
			select {
			case <-ctx.Done():
			case <-l.done:
			case <-sdk.finished:
			}
		}
		end()
		return
	}
	defer l.unregister(ln)
	l.o.Logger.Debug("tasks: listening for task notifications", "tasks", len(granted))
	// The current state of each, at once: a task may have changed before
	// the client could listen to it.
	for _, id := range granted {
		ln.mark(id)
	}
	// A change made where this activation does not see it (a record
	// written by another node) reaches the listener within a lease.
	tick := time.NewTicker(l.o.Lease)
	defer tick.Stop()
	sent := map[string]string{} // id → what was sent of it (seen below)
	terminal := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			end()
			return
		case <-l.done:
			end()
			return
		case <-ln.wake:
		case <-tick.C:
			for _, id := range ln.ids {
				if !terminal[id] {
					ln.mark(id)
				}
			}
			continue
		}
		for _, id := range ln.take() {
			t, err := l.o.Store.Get(ctx, l.o.Owner, id)
			if err != nil || t == nil {
				if err != nil && ctx.Err() == nil && !errors.Is(err, taskstore.ErrUnreadable) {
					// The next tick reads it again.
					l.o.Logger.Warn("tasks: reading a task to notify its listener", "task", id, "err", err)
				}
				if t == nil && err == nil {
					terminal[id] = true // expired: nothing more to tell
				}
				continue
			}
			// A status is sent once; input_required again after each
			// change of its requests (a new round's, the rest after a
			// partial answer). A progress message alone sends nothing.
			seen := t.Status
			if t.Status == "input_required" {
				seen += "@" + t.UpdatedAt.UTC().Format(time.RFC3339Nano)
			}
			if sent[id] == seen {
				continue
			}
			n := detailed(t)
			n.ResultType = ""
			if s.notify("notifications/tasks", n) != nil {
				if sdk != nil {
					sdk.stop()
				}
				return // the stream is gone
			}
			sent[id], terminal[id] = seen, t.Terminal()
		}
		if sdk == nil && ended(terminal, ln.ids) {
			// Nothing more can come: the listen ends, answered, and
			// holds nothing (an actor with a listen open stays active).
			end()
			return
		}
	}
}

// ended says whether every one of ids is terminal (or expired).
func ended(terminal map[string]bool, ids []string) bool {
	for _, id := range ids {
		if !terminal[id] {
			return false
		}
	}
	return true
}

// sdkListen is the SDK's listen for the notification types other than
// tasks that a listen asked for, run on the listen's stream: its request
// is the listen without taskIds; what it writes before its
// acknowledgement is held (an error answers the client as the SDK wrote
// it), its acknowledgement is merged into the layer's, its notifications
// pass through (between the layer's own, one event at a time), and its
// answer, once the listen ends, is dropped for the layer's.
type sdkListen struct {
	s        *listenStream
	header   http.Header
	granted  map[string]json.RawMessage // what its acknowledgement granted
	acked    chan struct{}
	finished chan struct{} // closed when the SDK's handler returned
	cancel   context.CancelFunc

	// Guarded by s.mu.
	status  int
	held    []byte   // its answer, before an acknowledgement
	queued  [][]byte // its notifications, between its acknowledgement and the layer's
	passing bool
}

// maxQueued bounds what the SDK's listen may send between its
// acknowledgement and the layer's (microseconds): more is dropped.
const maxQueued = 16

// startSDKListen starts the SDK's listen and waits for its
// acknowledgement; answered says that the SDK answered the listen (a
// refusal) instead, and that its answer went to the client.
func (l *Layer) startSDKListen(s *listenStream, r *http.Request, body []byte) (sl *sdkListen, answered bool) {
	var msg map[string]json.RawMessage
	json.Unmarshal(body, &msg) // parsed already
	var params map[string]json.RawMessage
	json.Unmarshal(msg["params"], &params)
	var filter map[string]json.RawMessage
	json.Unmarshal(params["notifications"], &filter)
	delete(filter, "taskIds")
	params["notifications"], _ = json.Marshal(filter)
	msg["params"], _ = json.Marshal(params)
	b, _ := json.Marshal(msg)
	ctx, cancel := context.WithCancel(r.Context())
	rr := r.Clone(ctx)
	rr.Body, rr.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	sl = &sdkListen{s: s, header: http.Header{}, acked: make(chan struct{}), finished: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(sl.finished)
		l.inner.ServeHTTP(sl, rr)
	}()
	select {
	case <-sl.acked:
		return sl, false
	case <-sl.finished:
	}
	// Answered without an acknowledgement: a refusal, sent as it is.
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-sl.acked: // acknowledged, then ended at once (nothing granted)
		return sl, false
	default:
	}
	for k, vs := range sl.header {
		s.w.Header()[k] = vs
	}
	s.w.WriteHeader(cmpStatus(sl.status))
	s.w.Write(sl.held)
	return sl, true
}

func (sl *sdkListen) Header() http.Header { return sl.header }

func (sl *sdkListen) WriteHeader(status int) {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if sl.status == 0 {
		sl.status = status
	}
}

// Write takes one of the SDK's events (it writes each whole, then
// flushes).
func (sl *sdkListen) Write(b []byte) (int, error) {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if sl.status == 0 {
		sl.status = http.StatusOK
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Notifications map[string]json.RawMessage `json:"notifications"`
		} `json:"params"`
	}
	data, isEvent := eventData(b)
	parsed := isEvent && json.Unmarshal(data, &m) == nil
	select {
	case <-sl.acked:
	default:
		if parsed && m.Method == "notifications/subscriptions/acknowledged" {
			sl.granted = m.Params.Notifications
			close(sl.acked)
			return len(b), nil
		}
		sl.held = append(sl.held, b...)
		return len(b), nil
	}
	switch {
	case !parsed || m.Method == "":
		// Its answer (the listen ended): the layer answers the listen
		// itself.
		return len(b), nil
	case !sl.passing:
		if len(sl.queued) < maxQueued {
			sl.queued = append(sl.queued, slices.Clone(b))
		}
		return len(b), nil
	}
	return sl.s.w.Write(b)
}

// eventData is the data of the one SSE event b holds.
func eventData(b []byte) ([]byte, bool) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			return bytes.TrimSpace(data), true
		}
	}
	return nil, false
}

func (sl *sdkListen) FlushError() error {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if !sl.passing {
		return nil
	}
	return sl.s.rc.Flush()
}

// pass lets the SDK's notifications through, once the layer's
// acknowledgement went out.
func (sl *sdkListen) pass() {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	sl.passing = true
	for _, b := range sl.queued {
		if _, err := sl.s.w.Write(b); err != nil {
			break
		}
	}
	if len(sl.queued) > 0 {
		sl.s.rc.Flush()
	}
	sl.queued = nil
}

// stop ends the SDK's listen and waits for its handler to return: the
// stream is not written after the layer's answer.
func (sl *sdkListen) stop() {
	sl.cancel()
	<-sl.finished
}

// listenStream writes a listen's messages, each one event, flushed at once, each
// carrying the listen's id as its subscription id (SEP-2575).
type listenStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sub json.RawMessage // the listen request's id
	mu  sync.Mutex      // one event at a time (the SDK's listen writes too)
}

// notify writes notification method whose params are params (an object)
// with the subscription id in their _meta.
func (s *listenStream) notify(method string, params any) error {
	b, err := json.Marshal(params)
	if err != nil {
		return err
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	p["_meta"], _ = json.Marshal(map[string]json.RawMessage{mcp.MetaKeySubscriptionID: s.sub})
	msg, err := json.Marshal(struct {
		JSONRPC string                     `json:"jsonrpc"`
		Method  string                     `json:"method"`
		Params  map[string]json.RawMessage `json:"params"`
	}{"2.0", method, p})
	if err != nil {
		return err
	}
	return s.event(msg)
}

// closed answers the listen: the subscription ended on the server's side
// (SEP-2575 "Graceful Closure"). Best effort: a client that left gets
// nothing. The session actor's relay puts the notifications/cancelled the
// 2026-07-28 cancellation utility asks for before it (actors'
// interruptedAnswer), as before the go-sdk's own listen's answer.
func (s *listenStream) closed() { s.event(sse.ListenClosed(s.sub)) }

func (s *listenStream) event(msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(sse.Message(msg)); err != nil {
		return err
	}
	return s.rc.Flush()
}

// observed tells the listeners of a task that its record changed, as read
// by ctx's caller after the fact (a renewal that found the task no longer
// its round's: cancelled or taken over by another node).
func (l *Layer) observed(ctx context.Context, id string) {
	if t, err := l.o.Store.Get(ctx, l.o.Owner, id); err == nil && t != nil {
		l.changed(t)
	}
}
