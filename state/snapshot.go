package state

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/internal/redisread"
	"github.com/pingmcp/pingmcp/internal/redisscan"
	"github.com/redis/go-redis/v9"
)

// ErrFenced means a newer activation of the session exists: the caller's
// activation lost ownership and must stop serving (it may not write).
var ErrFenced = errors.New("session is owned by a newer activation")

// Snapshots keep the last snapshot of each session, fenced by activation
// epochs: every activation of a session takes an epoch greater than all
// earlier ones, and only the newest may write. Snapshot bytes are opaque here
// (the actor seals the tokens in them).
type Snapshots interface {
	// Activate starts a new activation of session: it returns its epoch and
	// the last snapshot saved (nil if there is none). From then on, writes of
	// earlier activations fail with ErrFenced. Unless create is set, a
	// session without a snapshot is not activated: Activate returns epoch 0
	// and writes nothing, so that probing unknown ids leaves no trace. A
	// snapshot larger than the store reads (RedisSnapshots.SetMaxBytes) is
	// activated as any other, but not read: the epoch comes with a nil
	// snapshot and a *TooLarge, for a snapshot that cannot be restored.
	Activate(ctx context.Context, session string, create bool) (epoch int64, snapshot []byte, err error)
	// Save replaces the snapshot if epoch is still the newest activation,
	// and makes it expire after ttl without a further save (never if ttl is
	// zero).
	Save(ctx context.Context, session string, epoch int64, snapshot []byte, ttl time.Duration) error
	// Delete removes the snapshot of an ended session, under the same
	// fencing. The epoch counter moves on and outlives it for a while
	// (endedFenceTTL), so that no earlier activation can write after a later
	// one ended the session; once it is gone its absence fences as well.
	Delete(ctx context.Context, session string, epoch int64) error
	// End ends session whatever activation holds it (an operator's kill):
	// the snapshot goes and the epoch moves on, so that the live activation,
	// if any, is fenced at its next write and stops.
	End(ctx context.Context, session string) error
	// Get reads session's snapshot (nil if none) without activating it;
	// one larger than the store reads is a *TooLarge, one that is not a
	// string in Redis a *WrongType (both ErrUnreadable).
	Get(ctx context.Context, session string) ([]byte, error)
	// List pages through the sessions that have a snapshot, in no set
	// order: up to limit of them after cursor ("" to start), and the
	// cursor of the next page ("" at the end). A snapshot the store does
	// not read (larger than it reads, or not a string in Redis) is listed
	// without its bytes, with Unreadable saying why, so that an operator
	// may see it and end it.
	List(ctx context.Context, cursor string, limit int) (sessions []Stored, next string, err error)
	// Count is how many sessions have a snapshot, live or passivated.
	Count(ctx context.Context) (int, error)
}

// Stored is one session's snapshot as listed.
type Stored struct {
	Session  string
	Snapshot []byte
	// Unreadable, when set, is why the snapshot was not read (a *TooLarge
	// or a *WrongType: ErrUnreadable); Snapshot is then nil.
	Unreadable error
}

// fenceTTL is how long an epoch counter outlives its session's last write:
// longer than any activation can go unfenced.
const fenceTTL = 24 * time.Hour

// endedFenceTTL is how long the epoch counter of a session that ended
// (deleted, or ended by an operator) outlives it, and unsavedFenceTTL that
// of a session created and not saved yet (its initialize's snapshot still
// on its way, Redis perhaps away meanwhile). A missing counter fences every
// write as a newer one does (no activation holds epoch 0), so what such a
// counter adds is only that a session created again under the same id
// starts above every earlier activation; the edge mints each new session's
// id, so only a request of the first creation still on its way could. They
// are short so that a user who opens and deletes sessions in a loop, or
// sends requests that create nothing, leaves nothing behind for long:
// fenceTTL would keep ~140 bytes a session in a node's memory, or a key in
// Redis, for a day. In Redis an unsaved session's is the longer, so that
// its first save may still land after an hour of Redis being away (its
// activation would be fenced by the counter's absence); in memory, where a
// save cannot fail, both are endedFenceTTL.
const (
	endedFenceTTL   = 10 * time.Minute
	unsavedFenceTTL = time.Hour
)

// DefaultMaxSnapshotBytes is the default bound of a session's snapshot
// (--max-snapshot-bytes): far above a normal session's (a few KiB, with an
// initialize of at most --max-initialize-bytes), far below what a session
// could otherwise make its node and Redis keep.
const DefaultMaxSnapshotBytes = 256 << 10

// RedisSnapshots keeps snapshots in Redis: per session an epoch counter and
// a snapshot, under one hash tag (one Redis Cluster slot), changed only by
// the scripts below so that each check and write is atomic. The snapshot
// expires with the session's idle timeout; the counter lives on, so that a
// stale activation cannot write even after the snapshot is gone.
type RedisSnapshots struct {
	client redis.UniversalClient
	w      writer
	prefix string
	// maxBytes is the nodes' bound of a snapshot (SetMaxBytes; zero:
	// DefaultMaxSnapshotBytes), whence the read bound (readBound).
	maxBytes int
}

// SetMaxBytes tells the store the bound of a session's snapshot
// (--max-snapshot-bytes, Stores.MaxSnapshotBytes), whence what it reads:
// a snapshot over readBound is refused unread (*TooLarge).
func (r *RedisSnapshots) SetMaxBytes(n int) { r.maxBytes = n }

// readBound is the most bytes of a snapshot the store reads (Activate,
// Get, List): twice the larger of the nodes' bound and its default
// (redisread.Bound). A larger one was not written by pingmcp (a writer of
// Redis, or a bug): refused as unreadable (its session as if its snapshot
// did not decode), and never sent to the node, which would otherwise
// allocate it whole, each time the session is activated again.
func (r *RedisSnapshots) readBound() int64 {
	return redisread.Bound(int64(r.maxBytes), DefaultMaxSnapshotBytes)
}

// NewRedisSnapshots keeps snapshots under keys prefix+"session:{id}:…".
func NewRedisSnapshots(client redis.UniversalClient, prefix string) *RedisSnapshots {
	if prefix == "" {
		prefix = "pingmcp:"
	}
	return &RedisSnapshots{client: client, w: newWriter(client), prefix: prefix}
}

func (r *RedisSnapshots) keys(session string) []string {
	return []string{sessionKey(r.prefix, session, "epoch"), sessionKey(r.prefix, session, "snap")}
}

// sessionKey names a key of session's durable state. Every key of a session
// carries its id as the hash tag, so that scripts touching several of them
// stay in one Redis Cluster slot.
func sessionKey(prefix, session, name string) string {
	return prefix + "session:{" + session + "}:" + name
}

var (
	// KEYS epoch, snap; ARGV[1] fence TTL ms, ARGV[2] "1" to create,
	// ARGV[3] the fence TTL ms of a session without a snapshot, ARGV[4]
	// the most bytes of a snapshot read (the read bound).
	// Returns {epoch, snapshot|false}, epoch 0 when not activated, or
	// {epoch, false, size} for a snapshot over the read bound: activated
	// as any other (it is then refused as unreadable), but not sent.
	activateScript = redis.NewScript(`
local size = redis.call('STRLEN', KEYS[2])
local snap
if size > tonumber(ARGV[4]) then snap = true else snap = redis.call('GET', KEYS[2]) end
if not snap and ARGV[2] ~= '1' then return {0, false} end
local epoch = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) ~= -1 or epoch == 1 or not snap then
  redis.call('PEXPIRE', KEYS[1], snap and ARGV[1] or ARGV[3])
end
if snap == true then return {epoch, false, size} end
return {epoch, snap}`)
	// KEYS epoch, snap; ARGV[1] epoch, ARGV[2] snapshot, ARGV[3] ttl ms,
	// ARGV[4] fence TTL ms (ttl 0: the snapshot never expires).
	saveScript = redis.NewScript(`
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('PERSIST', KEYS[1])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1`)
	// KEYS epoch, snap; ARGV[1] epoch, ARGV[2] the fence TTL ms of a
	// session without a snapshot. The epoch moves on, so that a save of the
	// deleting activation still on its way is fenced.
	deleteScript = redis.NewScript(`
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)
)

func (r *RedisSnapshots) Activate(ctx context.Context, session string, create bool) (int64, []byte, error) {
	c := "0"
	if create {
		c = "1"
	}
	keys := r.keys(session)
	res, err := r.w.run(ctx, activateScript, keys, fenceTTL.Milliseconds(), c, unsavedFenceTTL.Milliseconds(), r.readBound()).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("activate session %s: %w", session, err)
	}
	epoch, _ := res[0].(int64)
	if len(res) > 2 {
		size, _ := res[2].(int64)
		return epoch, nil, &TooLarge{What: "session snapshot", Key: keys[1], Size: size, Limit: r.readBound(), Unit: "bytes"}
	}
	var snap []byte
	if s, ok := res[1].(string); ok {
		snap = []byte(s)
	}
	return epoch, snap, nil
}

func (r *RedisSnapshots) Save(ctx context.Context, session string, epoch int64, snapshot []byte, ttl time.Duration) error {
	fence := max(ttl, fenceTTL)
	ok, err := r.w.run(ctx, saveScript, r.keys(session), epoch, snapshot, ttl.Milliseconds(), fence.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("save session %s: %w", session, err)
	}
	if ok == 0 {
		return ErrFenced
	}
	return nil
}

// KEYS epoch, snap.
var endScript = redis.NewScript(`
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

func (r *RedisSnapshots) Get(ctx context.Context, session string) ([]byte, error) {
	b, err := redisread.Get(ctx, r.client, "session snapshot", r.keys(session)[1], r.readBound())
	if err != nil {
		return nil, fmt.Errorf("read session %s: %w", session, err)
	}
	return b, nil
}

func (r *RedisSnapshots) End(ctx context.Context, session string) error {
	if err := r.w.run(ctx, endScript, r.keys(session), endedFenceTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("end session %s: %w", session, err)
	}
	return nil
}

// Count scans the snapshot keys, as List does, on every shard.
func (r *RedisSnapshots) Count(ctx context.Context) (int, error) {
	n, err := redisscan.Count(ctx, r.client, r.prefix+"session:{*}:snap")
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return n, nil
}

// List scans the snapshot keys, shard after shard of a Redis Cluster (SCAN:
// a session may be missed or listed twice if keys change meanwhile, or the
// cluster's masters change between two pages).
func (r *RedisSnapshots) List(ctx context.Context, cursor string, limit int) ([]Stored, string, error) {
	keys, next, err := redisscan.Page(ctx, r.client, r.prefix+"session:{*}:snap", cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	values, refused, err := redisread.Values(ctx, r.client, "session snapshot", keys, r.readBound())
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	var out []Stored
	for i, k := range keys {
		if values[i] == nil && refused[i] == nil {
			continue // expired since
		}
		id := strings.TrimSuffix(strings.TrimPrefix(k, r.prefix+"session:{"), "}:snap")
		out = append(out, Stored{Session: id, Snapshot: values[i], Unreadable: refused[i]})
	}
	return out, next, nil
}

func (r *RedisSnapshots) Delete(ctx context.Context, session string, epoch int64) error {
	ok, err := r.w.run(ctx, deleteScript, r.keys(session), epoch, endedFenceTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("delete session %s: %w", session, err)
	}
	if ok == 0 {
		return ErrFenced
	}
	return nil
}

// MemorySnapshots keeps snapshots in this process: the embedded default of
// a single node, where fencing guards against this node's own stale
// activations.
type MemorySnapshots struct {
	Now func() time.Time // default time.Now

	mu       sync.Mutex
	sessions map[string]*memorySnapshot
	// bare are the entries given a bare fence (endedFenceTTL: created and
	// not saved, or ended), oldest first, so in the order they expire:
	// forgotten then unless saved since (collectLocked). get forgets only
	// the entries looked up again, and an ended session's is not.
	bare     []bareEntry
	bareHead int
}

type bareEntry struct {
	session string
	expiry  time.Time
}

// farFuture is the expiry of what never expires.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

type memorySnapshot struct {
	epoch       int64
	fenceExpiry time.Time
	snap        []byte
	snapExpiry  time.Time
}

func (m *MemorySnapshots) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// get returns session's entry, forgetting what expired. Requires m.mu.
func (m *MemorySnapshots) get(session string) *memorySnapshot {
	if m.sessions == nil {
		m.sessions = map[string]*memorySnapshot{}
	}
	e := m.sessions[session]
	now := m.now()
	if e != nil && !now.Before(e.fenceExpiry) {
		delete(m.sessions, session)
		return nil
	}
	if e != nil && e.snap != nil && !now.Before(e.snapExpiry) {
		e.snap = nil
	}
	return e
}

func (m *MemorySnapshots) Activate(_ context.Context, session string, create bool) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.collectLocked(now)
	e := m.get(session)
	if !create && (e == nil || e.snap == nil) {
		return 0, nil, nil
	}
	if e == nil {
		e = &memorySnapshot{}
		m.sessions[session] = e
	}
	e.epoch++
	switch {
	case e.snap == nil:
		m.bareLocked(session, e, now)
	case e.fenceExpiry != farFuture:
		e.fenceExpiry = now.Add(fenceTTL)
	}
	return e.epoch, e.snap, nil
}

// bareLocked gives e, session's entry, a bare fence from now on, to be
// forgotten once it expires unless saved meanwhile. Requires m.mu.
func (m *MemorySnapshots) bareLocked(session string, e *memorySnapshot, now time.Time) {
	e.fenceExpiry = now.Add(endedFenceTTL)
	m.bare = append(m.bare, bareEntry{session, e.fenceExpiry})
}

// collectLocked forgets the bare entries that expired and were not saved
// since: a few each call, in the order they expire, so that no call pays
// for a pass over every session. Requires m.mu.
func (m *MemorySnapshots) collectLocked(now time.Time) {
	for m.bareHead < len(m.bare) && !now.Before(m.bare[m.bareHead].expiry) {
		b := m.bare[m.bareHead]
		m.bare[m.bareHead] = bareEntry{}
		m.bareHead++
		if e := m.sessions[b.session]; e != nil && !now.Before(e.fenceExpiry) {
			delete(m.sessions, b.session)
		}
	}
	if m.bareHead > 1024 && m.bareHead*2 > len(m.bare) {
		m.bare = append(m.bare[:0], m.bare[m.bareHead:]...)
		m.bareHead = 0
	}
}

// endLocked drops e's (session's) snapshot and moves its epoch on, fencing
// every activation so far; the entry stays for endedFenceTTL. Requires m.mu.
func (m *MemorySnapshots) endLocked(session string, e *memorySnapshot) {
	e.snap = nil
	e.epoch++
	m.bareLocked(session, e, m.now())
}

// epoch is session's newest activation, 0 if none.
func (m *MemorySnapshots) epoch(session string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.get(session); e != nil {
		return e.epoch
	}
	return 0
}

func (m *MemorySnapshots) Save(_ context.Context, session string, epoch int64, snapshot []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.get(session)
	if e == nil || e.epoch != epoch {
		return ErrFenced
	}
	now := m.now()
	e.snap, e.snapExpiry = append([]byte(nil), snapshot...), now.Add(ttl)
	e.fenceExpiry = now.Add(max(ttl, fenceTTL))
	if ttl == 0 {
		e.snapExpiry, e.fenceExpiry = farFuture, farFuture
	}
	return nil
}

func (m *MemorySnapshots) Get(_ context.Context, session string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.get(session); e != nil && e.snap != nil {
		return slices.Clone(e.snap), nil
	}
	return nil, nil
}

func (m *MemorySnapshots) End(_ context.Context, session string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.get(session); e != nil {
		m.endLocked(session, e)
	}
	return nil
}

func (m *MemorySnapshots) Count(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id := range m.sessions {
		if e := m.get(id); e != nil && e.snap != nil {
			n++
		}
	}
	return n, nil
}

// List pages through the sessions in id order. A cursor is the last id of
// a page, base64url-encoded; one that does not decode is
// redisscan.ErrBadCursor, as in Redis.
func (m *MemorySnapshots) List(_ context.Context, cursor string, limit int) ([]Stored, string, error) {
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("%w %q", redisscan.ErrBadCursor, cursor)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.sessions))
	for id := range m.sessions {
		if id > string(after) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []Stored
	for _, id := range ids {
		if len(out) == limit {
			return out, base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].Session)), nil
		}
		if e := m.get(id); e != nil && e.snap != nil {
			out = append(out, Stored{Session: id, Snapshot: slices.Clone(e.snap)})
		}
	}
	return out, "", nil
}

func (m *MemorySnapshots) Delete(_ context.Context, session string, epoch int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.get(session)
	if e == nil || e.epoch != epoch {
		return ErrFenced
	}
	m.endLocked(session, e)
	return nil
}

// SetReplication makes every write of the store wait for rep's replicas
// before it is confirmed (Replication).
func (r *RedisSnapshots) SetReplication(rep Replication) { r.w.Replication = rep }
