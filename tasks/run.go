package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/pingmcp/pingmcp/internal/capture"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// run is one round of a task-capable tools/call: the tool's handler, run
// through the MCP handler by a request of the layer's own, detached from
// the client's. The first round of a call becomes a task when the tool
// escalates (Add: before its handler runs; AddDeferred: when it calls
// Start); a later round (after tasks/update) is one from the start.
type run struct {
	id     string // its key in runs, sent in runHeader
	l      *Layer
	params json.RawMessage // the call's params (stored as the task's Request)
	ctx    context.Context
	cancel context.CancelFunc
	// interrupted: the activation running it ends (Layer.Close).
	interrupted atomic.Bool

	once      sync.Once
	escalated chan struct{} // closed once the call is a task, or creating it failed
	createErr error
	// refusal answers the client's call when creating the task was
	// refused (a limit, the store): its status, headers and error.
	refusal *Refusal
	// user is the caller's user (Options.User), whose live tasks the
	// task counts against; "" for none.
	user string
	// issuer, subject and clientID name the caller (Options.Principal).
	issuer, subject, clientID string
	task                      *taskstore.Task // as created (first rounds)
	taskID                    string
	tag                       string // the round's name in the task's lease

	done chan struct{} // closed once rec holds the round's answer
	rec  *capture.Recorder
	// release ends what Options.Bind prepared for the round; req is the
	// round's request, as Bind prepared it.
	release func()
	req     *http.Request
}

// newRun registers a round (of task taskID, tagged tag; both empty for a
// call not yet a task); nil once the layer is closed.
func (l *Layer) newRun(taskID, tag string) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{id: newID(), l: l, ctx: ctx, cancel: cancel, escalated: make(chan struct{}), done: make(chan struct{}), taskID: taskID, tag: tag}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		cancel()
		return nil
	}
	l.live++
	if l.o.Rounds != nil {
		l.o.Rounds(1)
	}
	if taskID != "" {
		l.rounds[taskID] = r
	}
	runs.Store(r.id, r)
	return r
}

// endRun forgets a round that ended.
func (l *Layer) endRun(r *run) {
	runs.Delete(r.id)
	r.cancel()
	if r.release != nil {
		r.release()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live--
	if l.o.Rounds != nil {
		l.o.Rounds(-1)
	}
	if r.taskID != "" && l.rounds[r.taskID] == r {
		delete(l.rounds, r.taskID)
	}
}

// escalate makes the round's call a task (once): stored, durably, before
// the client hears of it; the round's lease renewed from then on.
func (r *run) escalate() error {
	r.once.Do(func() {
		defer close(r.escalated)
		l := r.l
		if r.taskID == "" {
			if n := len(r.params); n > MaxRequestBytes {
				e := rpcerr.TooLarge("task_request_bytes", n, MaxRequestBytes,
					fmt.Sprintf("this call's params are %d bytes; a task keeps at most %d of them: send a smaller call (or its _meta), or call without the tasks extension", n, MaxRequestBytes)).SDK()
				metrics.Limited.WithLabelValues("task_request_bytes").Inc()
				r.refuse(&Refusal{Status: http.StatusRequestEntityTooLarge, Error: e})
				return
			}
			now := time.Now()
			t := &taskstore.Task{ID: newID(), Owner: l.o.Owner, User: r.user,
				Issuer: r.issuer, Subject: r.subject, ClientID: r.clientID, Status: "working", CreatedAt: now, UpdatedAt: now,
				TTL: l.o.TTL, PollInterval: l.o.PollInterval, Request: r.params,
				Runner: l.tag(), LeaseUntil: now.Add(l.o.Lease)}
			// Not cut by the client leaving (the round's context): a claim
			// made in the store whose answer was cut, or one a failed
			// create must give back, would keep the user's place for the
			// task's lifetime, with no task behind it.
			if r.ctx.Err() != nil { // the client left before: no task for no one
				r.refuse(unavailable())
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), storeTimeout)
			defer cancel()
			// giveBack undoes the claim, on a time of its own: the claim's
			// may be what ran out.
			giveBack := func() {
				c, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 5*time.Second)
				defer cancel()
				l.o.Live.Release(c, t.User, t.ID)
			}
			if t.User != "" {
				ok, _, err := l.o.Live.Claim(ctx, t.User, t.ID, l.o.MaxPerUser, l.o.TTL)
				if err != nil {
					l.o.Logger.Error("tasks: counting the user's live tasks", "err", err)
					// The store may have made the claim and lost its answer.
					giveBack()
					r.refuse(unavailable())
					return
				}
				if !ok {
					// A live task frees its place as it ends: the client
					// polls its tasks meanwhile.
					e := rpcerr.RetryLater("tasks_per_user", 1, fmt.Sprintf("too many live tasks: at most %d per user, all clients together; wait for one to end (or cancel one) and retry", l.o.MaxPerUser))
					e.Data.Max = l.o.MaxPerUser
					metrics.Limited.WithLabelValues("tasks_per_user").Inc()
					l.o.Logger.Debug("task refused: its user has too many live tasks", "max", l.o.MaxPerUser)
					r.refuse(&Refusal{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}, Error: e.SDK()})
					return
				}
			}
			err := l.o.Store.Create(ctx, t)
			if err != nil {
				l.o.Logger.Error("tasks: creating a task", "err", err)
				if t.User != "" {
					giveBack()
				}
				r.refuse(unavailable())
				return
			}
			var c common
			json.Unmarshal(r.params, &c)
			l.o.Logger.Info("task created", "task", t.ID, "tool", c.Name)
			metrics.Tasks.WithLabelValues("created").Inc()
			l.mu.Lock()
			r.task, r.taskID, r.tag = t, t.ID, t.Runner
			l.rounds[t.ID] = r
			l.mu.Unlock()
		}
		go r.renew()
	})
	return r.createErr
}

// refuse records why the call could not become a task: the tool's handler
// gets its error, the client its answer.
func (r *run) refuse(f *Refusal) {
	r.createErr, r.refusal = f.Error, f
}

// isTask says whether the round's call became a task.
func (r *run) isTask() bool {
	select {
	case <-r.escalated:
		return r.createErr == nil
	default:
		return false
	}
}

// renew renews the round's lease until it ends, and cancels it once the
// task is no longer its (cancelled, by whichever node took the request;
// failed by a reaper; expired).
func (r *run) renew() {
	l := r.l
	tick := time.NewTicker(l.o.Lease / 3)
	defer tick.Stop()
	touched := time.Now()
	for {
		select {
		case <-r.done:
			return
		case <-tick.C:
		}
		if l.o.Valid != nil && r.req != nil && !l.o.Valid(r.req) {
			// Its caller's token expired: nobody may act for it now.
			l.o.Logger.Info("tasks: the token a round acts with expired; the round ends, its task is handed on or fails retryably", "task", r.taskID)
			r.interrupted.Store(true)
			r.cancel()
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, l.o.Lease/3)
		t, err := l.o.Store.Update(ctx, l.o.Owner, r.taskID, func(t *taskstore.Task) error {
			if t.Runner != r.tag {
				return errTerminal
			}
			t.LeaseUntil = time.Now().Add(l.o.Lease)
			return nil
		})
		switch {
		case errors.Is(err, errTerminal) || errors.Is(err, taskstore.ErrUnreadable) || (err == nil && t == nil):
			if errors.Is(err, errTerminal) {
				// Changed where this round did not see it (cancelled
				// through another node, taken over): its listeners here
				// hear of it now.
				l.observed(ctx, r.taskID)
			}
			cancel()
			if r.ctx.Err() == nil {
				l.o.Logger.Info("tasks: a round stops: its task was cancelled, taken over or expired elsewhere", "task", r.taskID)
			}
			r.cancel()
			return
		case err == nil && time.Since(touched) > l.o.TTL/4:
			// A long round stays counted among its user's live tasks.
			touched = time.Now()
			l.account(ctx, t)
		case err != nil && r.ctx.Err() == nil:
			l.o.Logger.Warn("tasks: renewing a lease", "task", r.taskID, "err", err)
		}
		cancel()
	}
}

// call serves a task-capable tools/call of a client that negotiated the
// extension: its first round runs on its own; the client gets the
// CreateTaskResult once the tool escalates, or the round's own answer if
// it ends first (a synchronous result, an input_required round).
func (l *Layer) call(w http.ResponseWriter, hr *http.Request, m *message, body []byte) {
	r := l.newRun("", "")
	if r == nil {
		writeError(w, m.ID, rpcerr.Interruption().SDK())
		return
	}
	r.params, r.user = m.Params, l.user(hr)
	if l.o.Principal != nil {
		r.issuer, r.subject, r.clientID = l.o.Principal(hr)
	}
	req := hr.Clone(r.ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.Header.Set(runHeader, r.id)
	r.release, r.req = l.bind(hr, req), req
	go l.runRound(r, req)
	select {
	case <-r.escalated:
	case <-r.done:
	case <-hr.Context().Done():
		if !r.isTask() {
			r.cancel() // the client left before it was a task
		}
		return
	}
	select {
	case <-r.escalated:
		if r.refusal != nil {
			r.cancel()
			writeRefusal(w, m.ID, r.refusal)
			return
		}
		writeResult(w, m.ID, created(r.task))
	default:
		// Answered before it became a task.
		for k, vs := range r.rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(cmpStatus(r.rec.Status()))
		w.Write(r.rec.Body())
	}
}

func cmpStatus(s int) int {
	if s == 0 {
		return http.StatusOK
	}
	return s
}

// runRound runs a round through the MCP handler and, if it is a task's,
// records its outcome in the task.
func (l *Layer) runRound(r *run, req *http.Request) {
	defer l.endRun(r)
	rec := capture.New()
	func() {
		defer func() {
			if p := recover(); p != nil {
				l.o.Logger.Error("tasks: panic running a round", "panic", p, "stack", string(debug.Stack()))
			}
		}()
		l.inner.ServeHTTP(rec, req)
	}()
	r.rec = rec
	close(r.done)
	if !r.isTask() {
		return
	}
	result, rpcErr, ok := rec.Outcome()
	l.finish(r.taskID, r.tag, result, rpcErr, ok, nil, r.interrupted.Load())
}

// finish records a round's outcome in its task, unless the task moved on
// (cancelled, reaped, another round).
func (l *Layer) finish(id, tag string, result, rpcErr json.RawMessage, ok bool, cause error, interrupted bool) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	u, err := l.change(ctx, id, func(t *taskstore.Task) error {
		if t.Terminal() || t.Runner != tag {
			return errTerminal
		}
		if interrupted {
			if resumable(t.Tool()) && t.Resumes < maxResumes {
				// Its lease lapses now: the next activation to read it
				// resumes it (reap), without waiting for the lease.
				t.LeaseUntil = time.Now().Add(-time.Millisecond)
				t.UpdatedAt = time.Now()
				return nil
			}
		}
		t.Runner, t.LeaseUntil = "", time.Time{}
		t.Responses = nil
		t.UpdatedAt = time.Now()
		switch {
		case interrupted:
			interrupt(t)
		case cause != nil:
			t.Status, t.Error = "failed", errorObject(jsonrpc.CodeInternalError, "the task's next round could not be built: "+cause.Error(), nil)
		case !ok:
			t.Status, t.Error = "failed", errorObject(jsonrpc.CodeInternalError, "the tool's round ended without a response", nil)
		case len(result)+len(rpcErr) > MaxResultBytes:
			t.Status, t.Error = "failed", errorObject(jsonrpc.CodeInternalError, fmt.Sprintf("the tool's answer is %d bytes; a task keeps at most %d", len(result)+len(rpcErr), MaxResultBytes), nil)
		case len(rpcErr) > 0:
			t.Status, t.Error = "failed", rpcErr
		default:
			var head struct {
				ResultType    string                     `json:"resultType"`
				InputRequests map[string]json.RawMessage `json:"inputRequests"`
				RequestState  string                     `json:"requestState"`
			}
			json.Unmarshal(result, &head)
			if head.ResultType == "input_required" {
				if len(head.InputRequests) == 0 {
					t.Status, t.Error = "failed", errorObject(jsonrpc.CodeInternalError, "the tool asked for input but named no input request", nil)
					break
				}
				t.Status, t.InputRequests, t.RequestState = "input_required", head.InputRequests, head.RequestState
				t.StatusMessage = "waiting for the client's input (tasks/update)"
				break
			}
			t.Status, t.Result, t.StatusMessage = "completed", result, ""
		}
		if t.Status == "failed" && t.StatusMessage == "" {
			t.StatusMessage = "failed"
		}
		return nil
	})
	if err != nil && !errors.Is(err, errTerminal) {
		l.o.Logger.Error("tasks: recording a round's outcome", "task", id, "err", err)
	}
	if err == nil && u != nil && u.Runner == "" {
		metrics.Tasks.WithLabelValues(u.Status).Inc()
	}
}

// progress sets the statusMessage of r's task while r still runs it.
func (l *Layer) progress(ctx context.Context, r *run, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	_, err := l.o.Store.Update(ctx, l.o.Owner, r.taskID, func(t *taskstore.Task) error {
		if t.Runner != r.tag {
			return errTerminal
		}
		t.StatusMessage, t.UpdatedAt = msg, time.Now()
		return nil
	})
	if err != nil && !errors.Is(err, errTerminal) && ctx.Err() == nil {
		l.o.Logger.Warn("tasks: recording progress", "task", r.taskID, "err", err)
	}
}
