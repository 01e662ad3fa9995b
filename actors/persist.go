package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// Durability is where sessions outlive their actors: the snapshot of each
// session and the events of its streams, in Redis for a cluster or in this
// process's memory for a single node.
type Durability struct {
	Snapshots state.Snapshots
	Events    state.Events
	// Sealer seals the tokens a snapshot holds.
	Sealer *state.Sealer
	// SessionTTL is how long a session lives without a request: its
	// snapshot expires then. Zero: never.
	SessionTTL time.Duration
	// Check, if set, says whether the store is reachable (for /readyz).
	Check func(context.Context) error
	// Revocations are the users an operator revoked.
	Revocations state.Revocations
	// Users count each user's sessions (usersessions.go), at most
	// MaxSessionsPerUser of them (zero: no cap, nothing counted).
	Users              state.UserSessions
	MaxSessionsPerUser int
	// MaxSnapshotBytes bounds a session's snapshot (DefaultMaxSnapshotBytes
	// when zero): a change that would make it larger is refused, and the
	// snapshot last written stays (see persister.update).
	MaxSnapshotBytes int
}

// DefaultMaxSnapshotBytes bounds a snapshot when Durability leaves
// MaxSnapshotBytes zero.
const DefaultMaxSnapshotBytes = state.DefaultMaxSnapshotBytes

func (d *Durability) maxSnapshotBytes() int {
	if d.MaxSnapshotBytes > 0 {
		return d.MaxSnapshotBytes
	}
	return DefaultMaxSnapshotBytes
}

// SnapshotTooLarge is the error of a change refused because the session's
// snapshot would exceed its bound; nothing of the change was recorded.
type SnapshotTooLarge struct {
	Size, Limit int
}

func (e *SnapshotTooLarge) Error() string {
	return fmt.Sprintf("the session's stored state would take %d bytes, more than the %d this server keeps per session (--max-snapshot-bytes)", e.Size, e.Limit)
}

// MemoryDurability keeps sessions in this process, under a key made for it.
func MemoryDurability(ttl time.Duration) *Durability {
	snaps := &state.MemorySnapshots{}
	return &Durability{Snapshots: snaps, Events: state.NewMemoryEvents(snaps), Sealer: state.NewProcessSealer(), SessionTTL: ttl,
		Revocations: &state.MemoryRevocations{}, Users: &state.MemoryUserSessions{}}
}

// record is what a session needs to continue on another activation: its
// snapshot. Tokens in it are sealed, bound to the session and field.
type record struct {
	Version int `json:"v"`
	// Owner: the user the session belongs to (none without auth), and the
	// client it was last used through.
	Issuer   string `json:"iss,omitempty"`
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// Principal is the sealed envelope.Principal last presented: the
	// user's token and its verified claims.
	Principal string `json:"principal,omitempty"`
	// Initialize holds the client's initialize params, replayed into a new
	// server session on rehydration.
	Initialize      json.RawMessage `json:"initialize,omitempty"`
	ProtocolVersion string          `json:"protocol_version,omitempty"`
	Initialized     bool            `json:"initialized,omitempty"`
	LogLevel        string          `json:"log_level,omitempty"`
	Subscriptions   []string        `json:"subscriptions,omitempty"`
	// Delegations is the sealed cache of exchanged tokens.
	Delegations string `json:"delegations,omitempty"`
	// Node is the cluster address of the last activation, Epoch its epoch.
	Node    string    `json:"node,omitempty"`
	Epoch   int64     `json:"epoch,omitempty"`
	Created time.Time `json:"created"`
	Active  time.Time `json:"active"`
}

const recordVersion = 1

// sealContext binds a sealed field to its session, so that it cannot be
// moved into another session's snapshot.
func sealContext(session, field string) []byte { return []byte("pingmcp/" + session + "/" + field) }

func (d *Durability) sealPrincipal(session string, p *envelope.Principal) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return "", err
	}
	return d.Sealer.Seal(b, sealContext(session, "principal")), nil
}

func (d *Durability) openPrincipal(session, sealed string) (*envelope.Principal, error) {
	if sealed == "" {
		return nil, nil
	}
	b, err := d.Sealer.Open(sealed, sealContext(session, "principal"))
	if err != nil {
		return nil, err
	}
	p := &envelope.Principal{}
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *Durability) sealDelegations(session string, ds []storedDelegation) (string, error) {
	if len(ds) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return "", err
	}
	return d.Sealer.Seal(b, sealContext(session, "delegations")), nil
}

func (d *Durability) openDelegations(session, sealed string) ([]storedDelegation, error) {
	if sealed == "" {
		return nil, nil
	}
	b, err := d.Sealer.Open(sealed, sealContext(session, "delegations"))
	if err != nil {
		return nil, err
	}
	var ds []storedDelegation
	return ds, json.Unmarshal(b, &ds)
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
// until they land or the activation is fenced.
type persister struct {
	d       *Durability
	session string
	epoch   int64
	logger  *slog.Logger
	// fenced is called, once, when a newer activation owns the session.
	fenced func()

	mu      sync.Mutex
	rec     record
	want    uint64        // version of rec
	saved   uint64        // version last written
	savedAt time.Time     // when
	landed  chan struct{} // closed (and replaced) on every write
	failing bool          // the last write failed
	kick    chan struct{}
	quit    chan struct{}
	closed  bool
	stopped bool // fenced or closed: the writer is gone
}

func newPersister(d *Durability, session string, epoch int64, rec record, logger *slog.Logger, fenced func()) *persister {
	p := &persister{d: d, session: session, epoch: epoch, logger: logger, fenced: fenced,
		rec: rec, landed: make(chan struct{}), kick: make(chan struct{}, 1), quit: make(chan struct{}), savedAt: rec.Active}
	go p.run()
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
func (p *persister) update(wait bool, change func(*record)) error {
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
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
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
func (p *persister) bounded(change func(*record)) (record, error) {
	next := p.rec
	next.Subscriptions = slices.Clone(p.rec.Subscriptions) // change may edit it in place
	change(&next)
	next.Active = time.Now()
	b, err := json.Marshal(next)
	if err != nil {
		return p.rec, fmt.Errorf("encode session snapshot: %w", err)
	}
	if limit := p.d.maxSnapshotBytes(); len(b) > limit {
		metrics.Limited.WithLabelValues("snapshot_bytes").Inc()
		p.logger.Warn("session change refused: its snapshot would exceed the bound", "session", p.session, "size", len(b), "limit", limit)
		return p.rec, &SnapshotTooLarge{Size: len(b), Limit: limit}
	}
	return next, nil
}

// fits says whether change would be accepted now (see update), without
// making it: for changes checked before they take effect.
func (p *persister) fits(change func(*record)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.bounded(change)
	return err
}

// stage changes the record without writing it: the change goes out with
// the next write, whose bound it counts in.
func (p *persister) stage(change func(*record)) {
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
func (p *persister) clean() bool {
	if p == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saved == p.want
}

// snapshot returns a copy of the record as it is now.
func (p *persister) snapshot() record {
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

func (p *persister) run() {
	backoff := retryMin
	for {
		select {
		case <-p.quit:
			return
		case <-p.kick:
		}
		for {
			p.mu.Lock()
			v := p.want
			if p.saved == v {
				p.mu.Unlock()
				break
			}
			b, err := json.Marshal(p.rec)
			owner := record{Issuer: p.rec.Issuer, Subject: p.rec.Subject}
			p.mu.Unlock()
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
				if err = p.d.Snapshots.Save(ctx, p.session, p.epoch, b, p.d.SessionTTL); err == nil {
					// The session stays counted against its user as long
					// as its snapshot lives.
					p.d.touchSession(ctx, p.session, &owner)
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
				backoff = retryMin
				continue
			}
			if errors.Is(err, state.ErrFenced) {
				p.mu.Lock()
				p.stopped = true
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
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, retryMax)
		}
	}
}

// newRecord starts the record of a session created now.
func newRecord(owner *principalID) record {
	now := time.Now()
	r := record{Version: recordVersion, Created: now, Active: now}
	if owner != nil {
		r.Issuer, r.Subject, r.ClientID = owner.issuer, owner.subject, owner.clientID
	}
	return r
}

// decodeRecord reads a snapshot.
func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode session snapshot: %w", err)
	}
	if r.Version != recordVersion {
		return r, fmt.Errorf("session snapshot has version %d, this node reads %d", r.Version, recordVersion)
	}
	return r, nil
}

// SessionInfo is what an operator may see of a stored session: never a
// token value.
type SessionInfo struct {
	ID              string    `json:"id"`
	Issuer          string    `json:"issuer,omitempty"`
	Subject         string    `json:"subject,omitempty"`
	ClientID        string    `json:"client_id,omitempty"`
	ProtocolVersion string    `json:"protocol_version,omitempty"`
	ClientName      string    `json:"client_name,omitempty"`
	ClientVersion   string    `json:"client_version,omitempty"`
	LogLevel        string    `json:"log_level,omitempty"`
	Subscriptions   []string  `json:"subscriptions,omitempty"`
	Created         time.Time `json:"created"`
	Active          time.Time `json:"last_active"`
	// Node is the cluster address of the session's last activation and
	// Epoch its epoch; Live says whether its actor is running there now,
	// with its open streams and requests in flight.
	Node        string           `json:"node,omitempty"`
	Epoch       int64            `json:"epoch,omitempty"`
	Live        bool             `json:"live"`
	Streams     int              `json:"streams"`
	InFlight    int              `json:"in_flight"`
	Delegations []DelegationInfo `json:"delegations,omitempty"`
}

// DelegationInfo describes one cached exchanged token: for whom, what, until
// when, through whom; not the token.
type DelegationInfo struct {
	Audience string         `json:"audience"`
	Scopes   []string       `json:"scopes,omitempty"`
	Expiry   time.Time      `json:"expiry"`
	Act      map[string]any `json:"act,omitempty"`
	JTI      string         `json:"jti,omitempty"`
}

// Describe reads a stored snapshot for an operator. With details, the
// cached exchanged tokens are opened and described.
func (d *Durability) Describe(id string, snapshot []byte, details bool) (SessionInfo, error) {
	rec, err := decodeRecord(snapshot)
	if err != nil {
		return SessionInfo{}, err
	}
	info := SessionInfo{ID: id, Issuer: rec.Issuer, Subject: rec.Subject, ClientID: rec.ClientID,
		ProtocolVersion: rec.ProtocolVersion, LogLevel: rec.LogLevel, Subscriptions: rec.Subscriptions,
		Created: rec.Created, Active: rec.Active, Node: rec.Node, Epoch: rec.Epoch}
	var params struct {
		ClientInfo struct{ Name, Version string } `json:"clientInfo"`
	}
	if json.Unmarshal(rec.Initialize, &params) == nil {
		info.ClientName, info.ClientVersion = params.ClientInfo.Name, params.ClientInfo.Version
	}
	if details {
		ds, err := d.openDelegations(id, rec.Delegations)
		if err != nil {
			return info, fmt.Errorf("open cached tokens: %w", err)
		}
		for _, s := range ds {
			audience, _, _ := strings.Cut(s.Key, "\x00")
			di := DelegationInfo{Audience: audience, Scopes: s.Scopes, Expiry: s.Expiry}
			di.Act, _ = s.Claims["act"].(map[string]any)
			di.JTI, _ = s.Claims["jti"].(string)
			info.Delegations = append(info.Delegations, di)
		}
	}
	return info, nil
}

// Delegated returns the values of the exchanged tokens a stored session
// holds, so that an operator ending it can revoke them at the authorization
// server. Never log or show them.
func (d *Durability) Delegated(id string, snapshot []byte) ([]string, error) {
	rec, err := decodeRecord(snapshot)
	if err != nil {
		return nil, err
	}
	ds, err := d.openDelegations(id, rec.Delegations)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, 0, len(ds))
	for _, s := range ds {
		tokens = append(tokens, s.Token)
	}
	return tokens, nil
}

// End ends a session for an operator: its snapshot and events go, and its
// live activation, if any, is fenced at its next write.
func (d *Durability) End(ctx context.Context, id string) error {
	var owner record
	if d.Users != nil {
		if snap, err := d.Snapshots.Get(ctx, id); err == nil && snap != nil {
			owner, _ = decodeRecord(snap)
		}
	}
	if err := d.Snapshots.End(ctx, id); err != nil {
		return err
	}
	if user := d.userOf(owner.Issuer, owner.Subject); user != "" {
		if err := d.Users.Release(ctx, user, id); err != nil {
			return err
		}
	}
	return d.Events.SessionClosed(ctx, id)
}
