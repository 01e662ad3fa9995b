package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/retry"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// activateTimeout bounds how long an activation tries to reach the store
// before its requests are answered 503.
const activateTimeout = 5 * time.Second

// activate takes a new epoch for the session, and its snapshot, off the
// actor's goroutine; the outcome comes back as *activated. A rehydrating
// activation also answers the requests its predecessor left unanswered.
//
// A session being created (create, for owner) is first counted against its
// user's cap (usersessions.go): refused, it is not activated at all.
func (a *SessionActor) activate(ctx actor.Context, create bool, owner *envelope.Principal) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	d, id, logger := a.cfg.Stores, a.id, a.logger
	go func() {
		m := &activated{started: time.Now()}
		deadline := m.started.Add(activateTimeout)
		pace := retry.Backoff{Min: retryMin, Max: retryMax}
		// Paced retries of an unreachable store, none after the deadline.
		retries, stop := context.WithDeadline(context.Background(), deadline)
		defer stop()
		if create {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			m.refused, m.err = claimSession(c, d, id, owner)
			cancel()
			if m.refused != nil || m.err != nil {
				root.Send(self, m)
				return
			}
		}
		for {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			m.epoch, m.snap, m.err = d.Snapshots.Activate(c, id, create)
			cancel()
			if m.err == nil || pace.Wait(retries) != nil {
				break
			}
		}
		if m.err == nil && m.snap != nil {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			// The standalone stream, opened here rather than by the
			// replayed initialize, which runs on the actor's goroutine;
			// without its owner, which the snapshot vouches for only once
			// restored (the session's next stream names it).
			if err := d.Events.OpenFor(c, id, "", "", m.epoch, nil); err != nil {
				logger.Warn("standalone stream not opened in the store", "err", err)
			}
			n, err := answerJournal(c, d.Events, id, m.epoch)
			cancel()
			m.interrupted = n
			if err != nil {
				// The requests stay journalled for the next activation.
				logger.Warn("interrupted requests not answered yet", "err", err)
			}
		}
		if m.err != nil && create && owner != nil {
			releaseSession(d, id, owner.Issuer, owner.Subject, logger)
		}
		root.Send(self, m)
	}()
}

// activated installs the outcome of the activation and serves the requests
// that waited for it.
func (a *SessionActor) activated(ctx actor.Context, m *activated) {
	pending := a.pending
	a.pending = nil
	switch {
	case m.err != nil:
		metrics.Activations.WithLabelValues("failed").Inc()
	case m.epoch == 0:
		metrics.Activations.WithLabelValues("unknown").Inc()
	case m.snap == nil:
		metrics.Activations.WithLabelValues("new").Inc()
	default:
		metrics.Activations.WithLabelValues("rehydrated").Inc()
		metrics.Interrupted.Add(float64(m.interrupted))
	}
	if m.refused != nil {
		metrics.Activations.WithLabelValues("refused").Inc()
		a.logger.Info("session not created: its user has as many as allowed")
		for _, q := range pending {
			a.reply(ctx, q.replyTo, m.refused.answer(q.req))
		}
		a.ended = true
		a.stop(ctx)
		return
	}
	if m.err != nil {
		a.logger.Warn("session not activated: its store cannot be reached; answering 503", "err", m.err)
		for _, q := range pending {
			a.reply(ctx, q.replyTo, unavailable(q.req.Id))
		}
		a.stop(ctx)
		return
	}
	a.phase = phaseReady
	if m.epoch > 0 {
		a.epoch = m.epoch
		a.live.setEpoch(m.epoch)
		a.events.epoch.Store(m.epoch)
		rec := newSnapshot(nil)
		ok := true
		if m.snap != nil {
			var err error
			if rec, err = a.restore(m.snap); err != nil {
				// Fail closed: the session is unknown here, and its
				// snapshot is left for its expiry.
				a.logger.Error("session snapshot cannot be restored", "err", err)
				ok = false
			} else {
				a.logger.Info("session rehydrated", "epoch", m.epoch, "duration", time.Since(m.started),
					"interrupted_requests", m.interrupted)
			}
		}
		if ok {
			self, root := ctx.Self(), ctx.ActorSystem().Root
			// Operators see where the session lives now: a restored
			// snapshot is written again at once, a new one with its
			// handshake.
			moved := m.snap != nil && (rec.Node != self.Address || rec.Epoch != m.epoch)
			if m.snap != nil && rec.Node != "" && rec.Node != self.Address {
				metrics.Failovers.Inc()
			}
			rec.Node, rec.Epoch = self.Address, m.epoch
			p := newPersister(a.cfg.Stores, a.id, m.epoch, rec, a.logger, func() { root.Send(self, fencedOut{}) })
			a.persist.Store(p)
			if moved {
				p.update(false, nil)
			}
		}
	}
	for _, q := range pending {
		a.serveFrom(ctx, q.replyTo, q.req)
	}
}

// restore brings the session of a snapshot back: its owner and tokens, then
// its MCP session, by replaying the handshake into this actor's server.
func (a *SessionActor) restore(snap []byte) (state.Snapshot, error) {
	d := a.cfg.Stores
	rec, err := state.DecodeSnapshot(snap)
	if err != nil {
		return rec, err
	}
	if len(rec.Initialize) == 0 {
		return rec, errors.New("snapshot has no handshake")
	}
	cred, err := d.OpenPrincipal(a.id, rec.Principal)
	if err != nil {
		return rec, fmt.Errorf("principal: %w", err)
	}
	delegations, err := d.OpenDelegations(a.id, rec.Delegations)
	if err != nil {
		return rec, fmt.Errorf("delegations: %w", err)
	}
	if rec.Issuer != "" || rec.Subject != "" || rec.ClientID != "" {
		a.owner = &auth.Principal{Issuer: rec.Issuer, Subject: rec.Subject, ClientID: rec.ClientID}
	}
	// The owner is stored in clear; the sealed principal is what vouches
	// for it. A snapshot whose owner is not its principal's is refused.
	if (a.owner == nil) != (cred == nil) || (cred != nil && *idOf(cred) != *a.owner) {
		a.owner = nil
		return rec, errors.New("snapshot owner does not match its sealed principal")
	}
	a.credential = cred
	a.live.setOwner(a.owner)
	a.events.setOwner(a.owner)
	if a.creds != nil {
		a.creds.set(cred)
		a.creds.restore(delegations)
	}
	if err := a.replay(rec); err != nil {
		a.owner, a.credential = nil, nil
		return rec, err
	}
	return rec, nil
}

// replay runs the recorded handshake through the SDK handler, answers
// discarded: initialize (the session takes this actor's id), initialized,
// the log level and the subscriptions.
func (a *SessionActor) replay(rec state.Snapshot) error {
	a.events.replaying.Store(true)
	defer a.events.replaying.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), activateTimeout)
	defer cancel()
	post := func(what string, msg any, want int, inSession bool) error {
		body, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://pingmcp/mcp", bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json, text/event-stream")
		if inSession {
			hr.Header.Set("Mcp-Session-Id", a.id)
			if rec.ProtocolVersion != "" {
				hr.Header.Set("Mcp-Protocol-Version", rec.ProtocolVersion)
			}
		}
		w := &discardWriter{header: http.Header{}}
		a.handler.ServeHTTP(w, hr)
		if w.status != want {
			return fmt.Errorf("replaying %s: status %d, want %d", what, w.status, want)
		}
		return nil
	}
	type call struct {
		JSONRPC string `json:"jsonrpc"`
		ID      string `json:"id,omitempty"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}
	if err := post("initialize", call{"2.0", "pingmcp-rehydrate", "initialize", rec.Initialize}, http.StatusOK, false); err != nil {
		return err
	}
	if rec.Initialized {
		if err := post("initialized", call{JSONRPC: "2.0", Method: "notifications/initialized"}, http.StatusAccepted, true); err != nil {
			return err
		}
	}
	if rec.LogLevel != "" {
		if err := post("logging/setLevel", call{"2.0", "pingmcp-rehydrate", "logging/setLevel", map[string]string{"level": rec.LogLevel}}, http.StatusOK, true); err != nil {
			return err
		}
	}
	for _, uri := range rec.Subscriptions {
		if err := post("resources/subscribe", call{"2.0", "pingmcp-rehydrate", "resources/subscribe", map[string]string{"uri": uri}}, http.StatusOK, true); err != nil {
			return err
		}
	}
	// A request answered last: the notifications before it were handled by
	// then (the SDK answers 202 to a notification before handling it).
	return post("ping", call{JSONRPC: "2.0", ID: "pingmcp-rehydrate", Method: "ping"}, http.StatusOK, true)
}

// discardWriter is the response writer of the replayed handshake.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (w *discardWriter) Flush() {}

// recordChanges is the middleware that keeps the snapshot up to date with
// the session's handshake, log level and subscriptions. These are written
// before the client hears they were accepted (bounded by saveWait). A change
// that would make the snapshot exceed its bound is refused before the SDK
// sees it (an initialize refused so leaves no session), with a JSON-RPC
// error saying so; changes are checked and made one at a time, so that two
// subscriptions cannot both fit the room left for one.
func (a *SessionActor) recordChanges(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		p := a.persist.Load()
		if p == nil || a.events.replaying.Load() {
			return next(ctx, method, req)
		}
		var change func(r *state.Snapshot, res mcp.Result)
		switch method {
		case "initialize":
			params, merr := json.Marshal(req.GetParams())
			if merr != nil {
				return next(ctx, method, req)
			}
			var requested string
			if ip, ok := req.GetParams().(*mcp.InitializeParams); ok {
				requested = ip.ProtocolVersion
			}
			change = func(r *state.Snapshot, res mcp.Result) {
				r.Initialize, r.ProtocolVersion = params, requested
				if ir, ok := res.(*mcp.InitializeResult); ok {
					r.ProtocolVersion = ir.ProtocolVersion
				}
			}
		case "notifications/initialized":
			change = func(r *state.Snapshot, _ mcp.Result) { r.Initialized = true }
		case "logging/setLevel":
			if sp, ok := req.GetParams().(*mcp.SetLoggingLevelParams); ok {
				change = func(r *state.Snapshot, _ mcp.Result) { r.LogLevel = string(sp.Level) }
			}
		case "resources/subscribe":
			if sp, ok := req.GetParams().(*mcp.SubscribeParams); ok {
				change = func(r *state.Snapshot, _ mcp.Result) {
					if !slices.Contains(r.Subscriptions, sp.URI) {
						r.Subscriptions = append(r.Subscriptions, sp.URI)
					}
				}
			}
		case "resources/unsubscribe":
			if sp, ok := req.GetParams().(*mcp.UnsubscribeParams); ok {
				change = func(r *state.Snapshot, _ mcp.Result) {
					r.Subscriptions = slices.DeleteFunc(r.Subscriptions, func(u string) bool { return u == sp.URI })
				}
			}
		}
		if change == nil {
			return next(ctx, method, req)
		}
		a.changing.Lock()
		defer a.changing.Unlock()
		if err := p.fits(func(r *state.Snapshot) { change(r, nil) }); err != nil {
			return nil, snapshotRefusal(err)
		}
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		if werr := p.update(true, func(r *state.Snapshot) { change(r, res) }); werr != nil {
			if errors.Is(werr, state.ErrFenced) {
				// This activation lost the session: the change did not
				// take, and the client's retry reaches the current one.
				return nil, movedError()
			}
			// Another change (a refreshed token) took the room meanwhile:
			// the SDK took this one, the snapshot does not have it.
			return nil, snapshotRefusal(werr)
		}
		return res, nil
	}
}

// snapshotRefusal is the JSON-RPC error of a change refused because the
// session's snapshot would exceed its bound.
func snapshotRefusal(err error) error {
	var big *SnapshotTooLarge
	if !errors.As(err, &big) {
		return err
	}
	return big.rpcError().SDK()
}

// movedError is the answer, through the SDK, to a request that reached an
// activation a newer one replaced.
func movedError() error { return rpcerr.Replaced().SDK() }

// delegationsChanged writes the exchanged-token cache into the snapshot:
// the tokens exchanged for the token of the client using the session, and
// only while the snapshot still names that client (a switch to another
// client, admit, empties them in the same write that names the new client).
func (a *SessionActor) delegationsChanged() {
	p := a.persist.Load()
	if p == nil {
		return
	}
	client, ds := a.creds.export()
	sealed, err := a.cfg.Stores.SealDelegations(a.id, ds)
	if err != nil {
		return
	}
	p.update(false, func(r *state.Snapshot) {
		if r.ClientID == client {
			r.Delegations = sealed
		}
	})
}
