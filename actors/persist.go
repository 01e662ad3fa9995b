package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/retry"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// SnapshotTooLarge is the error of a change refused because the session's
// snapshot would exceed its bound; nothing of the change was recorded.
type SnapshotTooLarge struct {
	Size, Limit int
}

func (e *SnapshotTooLarge) Error() string {
	return fmt.Sprintf("the session's stored state would take %d bytes, more than the %d this server keeps per session (--max-snapshot-bytes)", e.Size, e.Limit)
}

// Timeouts and pacing of snapshot writes.
const (
	// saveTimeout bounds one write.
	saveTimeout = 2 * time.Second
	// saveWait is how long a change that must be durable before it is
	// answered (initialize, setLevel, subscribe) waits for its write. If
	// Redis is slow or down, the session goes on from memory and the write
	// is retried until it lands.
	saveWait = 2 * time.Second
	// retryMin and retryMax pace the retries of a failed write.
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

// persister writes one activation's snapshot: every change bumps a version,
// and a single writer saves the newest version, retrying failed writes
// until they land or the activation is fenced. The writer runs only while
// a version is unwritten: an idle session has no goroutine of its own here.
type persister struct {
	d       *state.Stores
	session string
	epoch   int64
	logger  *slog.Logger
	// fenced is called, once, when a newer activation owns the session.
	fenced func()

	mu      sync.Mutex
	rec     state.Snapshot
	want    uint64        // version of rec
	saved   uint64        // version last written
	savedAt time.Time     // when
	landed  chan struct{} // closed (and replaced) on every write
	failing bool          // the last write failed
	writing bool          // the writer runs (write)
	quit    chan struct{}
	closed  bool
	stopped bool // fenced or closed: the writer is gone
}

func newPersister(d *state.Stores, session string, epoch int64, rec state.Snapshot, logger *slog.Logger, fenced func()) *persister {
	p := &persister{d: d, session: session, epoch: epoch, logger: logger, fenced: fenced,
		rec: rec, landed: make(chan struct{}), quit: make(chan struct{}), savedAt: rec.Active}
	return p
}

// update changes the record and schedules a write; with wait, it returns
// once the write landed, or after saveWait (nil: the write is retried in
// the background), or ErrFenced when a newer activation owns the session.
//
// A change that would make the snapshot exceed the session's bound is
// refused with *SnapshotTooLarge: the record stays as it was, and so does
// the snapshot last written. A nil change only refreshes the record (its
// activity time, its node): it is never refused, so that a session whose
// stored snapshot is over a bound lowered since goes on.
func (p *persister) update(wait bool, change func(*state.Snapshot)) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return state.ErrFenced
	}
	if change != nil {
		next, err := p.bounded(change)
		if err != nil {
			p.mu.Unlock()
			return err
		}
		p.rec = next
	}
	p.rec.Active = time.Now()
	p.want++
	v, landed := p.want, p.landed
	start := !p.writing && !p.closed
	p.writing = p.writing || start
	p.mu.Unlock()
	if start {
		go p.write()
	}
	if !wait {
		return nil
	}
	timer := time.NewTimer(saveWait)
	defer timer.Stop()
	for {
		select {
		case <-landed:
		case <-timer.C:
			p.logger.Warn("session snapshot not yet written; serving from memory while it is retried", "session", p.session)
			return nil
		}
		p.mu.Lock()
		saved, stopped := p.saved >= v, p.stopped
		landed = p.landed
		p.mu.Unlock()
		if saved {
			return nil
		}
		if stopped {
			return state.ErrFenced
		}
	}
}

// bounded returns the record with change applied, or *SnapshotTooLarge if
// its snapshot would exceed the bound (logged and counted). p.rec is left
// as it is. Requires p.mu.
func (p *persister) bounded(change func(*state.Snapshot)) (state.Snapshot, error) {
	next := p.rec
	next.Subscriptions = slices.Clone(p.rec.Subscriptions) // change may edit it in place
	change(&next)
	next.Active = time.Now()
	b, err := json.Marshal(next)
	if err != nil {
		return p.rec, fmt.Errorf("encode session snapshot: %w", err)
	}
	if limit := p.d.SnapshotLimit(); len(b) > limit {
		metrics.Limited.WithLabelValues("snapshot_bytes").Inc()
		p.logger.Warn("session change refused: its snapshot would exceed the bound", "session", p.session, "size", len(b), "limit", limit)
		return p.rec, &SnapshotTooLarge{Size: len(b), Limit: limit}
	}
	return next, nil
}

// fits says whether change would be accepted now (see update), without
// making it: for changes checked before they take effect.
func (p *persister) fits(change func(*state.Snapshot)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.bounded(change)
	return err
}

// stage changes the record without writing it: the change goes out with
// the next write, whose bound it counts in.
func (p *persister) stage(change func(*state.Snapshot)) {
	if p == nil {
		return
	}
	p.mu.Lock()
	change(&p.rec)
	p.mu.Unlock()
}

// touch refreshes the snapshot's expiry when a tenth of the session's
// lifetime passed since the last write, so that an active session does not
// expire while a request costs no write.
func (p *persister) touch() {
	if p == nil {
		return
	}
	ttl := p.d.SessionTTL
	p.mu.Lock()
	due := ttl > 0 && time.Since(p.savedAt) > ttl/10
	p.mu.Unlock()
	if due {
		p.update(false, nil)
	}
}

// clean says every change was written (a nil persister has none).
// isFailing says whether the last write failed (the store refuses it).
func (p *persister) isFailing() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failing
}

func (p *persister) clean() bool {
	if p == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saved == p.want
}

// snapshot returns a copy of the record as it is now.
func (p *persister) snapshot() state.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rec
	r.Subscriptions = slices.Clone(r.Subscriptions)
	return r
}

// flush waits, up to ctx, for every change to be written.
func (p *persister) flush(ctx context.Context) error {
	for {
		p.mu.Lock()
		done, stopped, landed := p.saved == p.want, p.stopped, p.landed
		p.mu.Unlock()
		if done {
			return nil
		}
		if stopped {
			return state.ErrFenced
		}
		select {
		case <-landed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops the writer; what was not written by then is lost with this
// activation (callers flush first).
func (p *persister) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
}

// remove ends the session: its snapshot goes, under the same fencing.
func (p *persister) remove(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.close()
	return p.d.Snapshots.Delete(ctx, p.session, p.epoch)
}

// write saves the newest version until it is the one saved, then ends
// (update starts it again at the next change); it retries a failed write
// until it lands, the activation is fenced or the persister is closed.
func (p *persister) write() {
	backoff := retry.Backoff{Min: retryMin, Max: retryMax}
	for {
		p.mu.Lock()
		v := p.want
		if p.saved == v {
			p.writing = false
			p.mu.Unlock()
			return
		}
		b, err := json.Marshal(p.rec)
		owner := state.Snapshot{Issuer: p.rec.Issuer, Subject: p.rec.Subject}
		p.mu.Unlock()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
			if err = p.d.Snapshots.Save(ctx, p.session, p.epoch, b, p.d.SessionTTL); err == nil {
				// The session stays counted against its user as long
				// as its snapshot lives.
				touchSession(ctx, p.d, p.session, &owner)
			}
			cancel()
		}
		if err == nil {
			p.mu.Lock()
			p.saved, p.savedAt = v, time.Now()
			close(p.landed)
			p.landed = make(chan struct{})
			if p.failing {
				p.failing = false
				p.logger.Info("session snapshot written again", "session", p.session)
			}
			p.mu.Unlock()
			backoff.Reset()
			continue
		}
		if errors.Is(err, state.ErrFenced) {
			p.mu.Lock()
			p.stopped = true
			p.writing = false
			close(p.landed)
			p.landed = make(chan struct{})
			p.mu.Unlock()
			p.fenced()
			return
		}
		metrics.StoreErrors.WithLabelValues("snapshot").Inc()
		p.mu.Lock()
		if !p.failing {
			p.failing = true
			p.logger.Warn("session snapshot write failed; retrying", "session", p.session, "err", err)
		}
		p.mu.Unlock()
		select {
		case <-p.quit:
			p.mu.Lock()
			p.writing = false
			p.mu.Unlock()
			return
		case <-time.After(backoff.Next()):
		}
	}
}

// newSnapshot starts the snapshot of a session created now.
func newSnapshot(owner *auth.Principal) state.Snapshot {
	now := time.Now()
	r := state.Snapshot{Version: state.SnapshotVersion, Created: now, Active: now}
	if owner != nil {
		r.Issuer, r.Subject, r.ClientID = owner.Issuer, owner.Subject, owner.ClientID
	}
	return r
}

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
