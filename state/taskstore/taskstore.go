// Package taskstore keeps the durable tasks of the MCP tasks extension (see
// package tasks) where they outlive the node running them: in Redis for a
// cluster, in this process's memory for a single node. A package of its own
// (not state's) so that the tasks package and the toolsets using it stay
// free of state's other dependencies.
package taskstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/redisread"
	"github.com/pingmcp/pingmcp/internal/redisscan"
)

// Task is a durable task (the MCP tasks extension, SEP-2663: see the tasks
// package) as the shared store keeps it, under its owner and its id. The
// owner is the key of the actor that serves the task's caller (the
// principal actor of (issuer, subject, client_id)); another owner never
// finds it. A Task expires TTL after its last change.
type Task struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// User names the owner's user (a key: auth.Principal.UserKey), under
	// which the task counts as one of the user's live tasks until it ends;
	// empty when not counted.
	User string `json:"user,omitempty"`
	// Issuer, Subject and ClientID name the principal the task acts for
	// (whose key Owner is), for operators' views (package admin); empty
	// for a task of an unauthenticated principal. In Redis they are
	// sealed with the rest of the record.
	Issuer   string `json:"issuer,omitempty"`
	Subject  string `json:"subject,omitempty"`
	ClientID string `json:"clientId,omitempty"`
	// Status is working, input_required, completed, failed or cancelled;
	// the last three are terminal: a terminal task never changes again.
	Status        string        `json:"status"`
	StatusMessage string        `json:"statusMessage,omitempty"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	TTL           time.Duration `json:"-"` // ttlMs when encoded
	PollInterval  time.Duration `json:"-"` // pollIntervalMs
	// Result is the tools/call result of a completed task; Error the
	// JSON-RPC error object of a failed one.
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
	// InputRequests are the requests of an input_required task still
	// unanswered, by the keys the tool gave them; Responses the answers
	// received so far in this round, RequestState the tool's state of the
	// round (SEP-2322), echoed when the tool runs again.
	InputRequests map[string]json.RawMessage `json:"inputRequests,omitempty"`
	Responses     map[string]json.RawMessage `json:"responses,omitempty"`
	RequestState  string                     `json:"requestState,omitempty"`
	// Request is the tools/call params the task runs (each round runs
	// them again with the round's responses).
	Request json.RawMessage `json:"request,omitempty"`
	// Runner names the activation running the task's current round (node
	// and a random id), LeaseUntil how long it answers for it: a working
	// task whose lease ran out lost its runner (its node died) and is
	// resumed or failed, retryably, by whoever reads it next.
	Runner     string    `json:"runner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil"`
	// Resumes counts the rounds run again after their runner was lost.
	Resumes int `json:"resumes,omitempty"`
}

// Terminal says whether the task reached its final status.
func (t *Task) Terminal() bool {
	switch t.Status {
	case "completed", "failed", "cancelled":
		return true
	}
	return false
}

// Tool is the name of the tool the task calls (from its Request).
func (t *Task) Tool() string {
	var c struct {
		Name string `json:"name"`
	}
	json.Unmarshal(t.Request, &c)
	return c.Name
}

// taskJSON carries the durations in milliseconds.
type taskJSON struct {
	*taskAlias
	TTLMs          int64 `json:"ttlMs"`
	PollIntervalMs int64 `json:"pollIntervalMs"`
}

type taskAlias Task

func encodeTask(t *Task) ([]byte, error) {
	return json.Marshal(taskJSON{(*taskAlias)(t), t.TTL.Milliseconds(), t.PollInterval.Milliseconds()})
}

// Sealer encrypts what a store keeps (state.Sealer: AES-256-GCM under the
// newest of the --state-keys, opened with any of them), bound to a
// context that Open must be given again.
type Sealer interface {
	Seal(plaintext, context []byte) string
	Open(sealed string, context []byte) ([]byte, error)
}

// ErrUnreadable is a stored record that does not open: sealed under a key
// no longer configured, tampered with, or moved from another owner's key
// or another id's (the seal is bound to both). The tasks layer answers it
// as an unknown task.
var ErrUnreadable = errors.New("task record cannot be opened")

// MaxRecordBytes bounds a task record as a node reads it from Redis (Get,
// Update, List): a record keeps at most tasks.MaxResultBytes (1 MiB) of its
// tool's answer (result, error, or input requests with the tool's state),
// and tasks.MaxRequestBytes (64 KiB) each of its call and of the answers to
// its input requests; its JSON may write a byte of them as six (Go escapes
// <, > and & as \u003c), and its seal adds a third: at most about 10 MiB
// (TestMaxRecordBytesHoldsTheLargestRecord). A larger record was not
// written by pingmcp: it is refused in Redis, unread (*TooLarge, an
// ErrUnreadable: the tasks layer answers it as an unknown task), and a
// list leaves it out.
const MaxRecordBytes = 16 << 20

// The bounds of an owner's index of leases as a node reads it (Leases, at
// each sweep): it holds the owner's working tasks, at most MaxKeptPerOwner
// (200) of them and those that expired since, each by its id (22 bytes).
// maxEvict bounds the ended tasks one Create takes away (oldest), one or
// a few but for the tasks created at once, and maxMemberBytes what each
// of them may take of a read (its id, or owner and id: 45 bytes). More was
// not written by pingmcp: refused unread, as unreadable.
const (
	maxLeases      = 10_000
	maxLeaseBytes  = 1 << 20
	maxEvict       = 1000
	maxMemberBytes = 256
)

// unreadable is err, an ErrUnreadable too when it refuses a record for its
// size (redisread.ErrTooLarge).
func unreadable(err error) error {
	if errors.Is(err, redisread.ErrTooLarge) {
		return fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return err
}

// sealContext binds a sealed record to its owner and id.
func sealContext(owner, id string) []byte {
	return []byte("pingmcp task\x00" + owner + "\x00" + id)
}

// seal is the stored form of t: its JSON, sealed by s if there is one.
func seal(s Sealer, t *Task) ([]byte, error) {
	b, err := encodeTask(t)
	if err != nil || s == nil {
		return b, err
	}
	return []byte(s.Seal(b, sealContext(t.Owner, t.ID))), nil
}

// open reads what seal stored under (owner, id).
func open(s Sealer, owner, id string, b []byte) (*Task, error) {
	if s != nil {
		var err error
		if b, err = s.Open(string(b), sealContext(owner, id)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	t, err := decodeTask(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if t.Owner != owner || t.ID != id {
		return nil, fmt.Errorf("%w: it names another task", ErrUnreadable)
	}
	return t, nil
}

func decodeTask(b []byte) (*Task, error) {
	t := &Task{}
	j := taskJSON{taskAlias: (*taskAlias)(t)}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	t.TTL, t.PollInterval = time.Duration(j.TTLMs)*time.Millisecond, time.Duration(j.PollIntervalMs)*time.Millisecond
	return t, nil
}

// MaxKeptPerOwner bounds the tasks one owner (a user's client) keeps,
// those that ended included: they stay readable for their TTL, and
// --max-tasks-per-user counts only the live ones, so a client that makes
// quick tasks at its rate would otherwise keep as many as its rate allows
// in a TTL (each up to its call and its result). Beyond it, Create takes
// away the owner's oldest ended tasks; live ones always stay. A variable
// for the tests.
var MaxKeptPerOwner = 200

// MaxKeptPerUser bounds the tasks one user (issuer, subject) keeps, all
// their clients' together, as MaxKeptPerOwner bounds one client's: a user
// who registers clients gains no room by it. Beyond it, Create takes away
// the user's oldest ended tasks, whichever client's. A variable for the
// tests.
var MaxKeptPerUser = 200

// userOf is the user whose bound t counts against, "" for a task without
// one (a node without authentication): its owner's bound alone holds.
func userOf(t *Task) string {
	if t.Issuer == "" && t.Subject == "" {
		return ""
	}
	return auth.Principal{Issuer: t.Issuer, Subject: t.Subject}.UserKey()
}

// ErrExists is Create's error for an id already taken.
var ErrExists = errors.New("task id already taken")

// Store keeps durable tasks, shared by every node (Redis) or in this
// process (memory).
type Store interface {
	// Create stores a new task; ErrExists if its id is taken. Beyond
	// MaxKeptPerOwner tasks of t's owner, the oldest that ended go
	// (Create keeps what one owner keeps bounded, whatever the rate).
	Create(ctx context.Context, t *Task) error
	// Get returns the task owner's id names, nil if there is none (never
	// was, expired, or another owner's); ErrUnreadable for a record that
	// does not open, or (Redis) is larger than MaxRecordBytes.
	Get(ctx context.Context, owner, id string) (*Task, error)
	// Update applies change to the task atomically (compare and set) and
	// stores the result, refreshing its TTL. change may return an error to
	// leave the task as it is. nil, nil if there is no such task;
	// ErrUnreadable as for Get.
	Update(ctx context.Context, owner, id string, change func(*Task) error) (*Task, error)
	// Leases lists the owner's tasks that were working, with a runner, at
	// their last change, and the leases they had then: what a sweep reads
	// to find the tasks whose runner was lost without reading them all.
	// It may name a task that has since expired or ended (Get tells).
	Leases(ctx context.Context, owner string) (map[string]time.Time, error)
	// List reads a page of stored tasks, owner's (all owners' when
	// empty), about limit of them after cursor ("" at the start), and
	// returns the cursor of the next page ("" at the end); ErrBadCursor
	// for a cursor no page returned. Each task comes as it describes
	// itself to operators, without its arguments, result, input requests
	// and answers, and with at most 1 KiB of its error's message (its
	// record whole: Get). A record that does not open is left out. A page may hold fewer than limit tasks with more to come, and
	// (in Redis, which scans) a task that changes meanwhile may be missed
	// or listed twice.
	List(ctx context.Context, owner, cursor string, limit int) ([]*Task, string, error)
}

// Statuses are the statuses a task may have, in the order of its life.
var Statuses = []string{"working", "input_required", "completed", "failed", "cancelled"}

// CountByStatus counts the tasks s keeps, by status: it reads them all
// (List), page after page.
func CountByStatus(ctx context.Context, s Store) (map[string]int, error) {
	out := map[string]int{}
	cursor := ""
	for {
		page, next, err := s.List(ctx, "", cursor, 500)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			out[t.Status]++
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// ErrBadCursor is a List cursor that no page returned.
var ErrBadCursor = redisscan.ErrBadCursor

// leased says whether t has a runner answering for it (a lease).
func leased(t *Task) bool { return t.Status == "working" && t.Runner != "" }

// Memory keeps tasks in this process. Sealer, if set, seals them as Redis
// does (nothing leaves the process, so the actors' default store does
// without).
type Memory struct {
	Sealer Sealer

	mu sync.Mutex
	m  map[string][]byte // owner\x00id → encoded task
	// expiry by the same key
	exp map[string]time.Time
	// kept are each owner's task ids in the order they were created:
	// what MaxKeptPerOwner bounds; ended are the keys of the tasks that
	// ended (what may go).
	kept  map[string][]string
	ended map[string]bool
	// users are each user's task keys in the order they were created:
	// what MaxKeptPerUser bounds; userOf the user of each key that has one.
	users  map[string][]string
	userOf map[string]string
	// swept is when sweepLocked last walked every task; dirty are the
	// owners with a task found expired (and dropped) since, whose kept ids
	// the next sweepLocked prunes, walk or not.
	swept time.Time
	dirty map[string]struct{}
}

// memorySweepEvery is how often, at most, the memory store walks all its
// tasks to drop the expired ones: between walks, what reads a task checks
// its expiry, and an owner's tasks are found through its kept ids, so that
// an operation costs what its owner has, not what the node has.
const memorySweepEvery = time.Second

func memKey(owner, id string) string { return owner + "\x00" + id }

func (m *Memory) Create(_ context.Context, t *Task) error {
	b, err := seal(m.Sealer, t)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m, m.exp = map[string][]byte{}, map[string]time.Time{}
	}
	k := memKey(t.Owner, t.ID)
	if _, ok := m.getLocked(k); ok {
		return ErrExists
	}
	m.m[k], m.exp[k] = b, time.Now().Add(t.TTL)
	m.sweepLocked()
	if m.kept == nil {
		m.kept, m.ended = map[string][]string{}, map[string]bool{}
	}
	if t.Terminal() {
		m.ended[k] = true
	}
	// An id whose task expired unseen may still be kept: once only.
	ids := slices.DeleteFunc(m.kept[t.Owner], func(id string) bool { return id == t.ID })
	m.keepLocked(t.Owner, append(ids, t.ID))
	if user := userOf(t); user != "" {
		if m.users == nil {
			m.users, m.userOf = map[string][]string{}, map[string]string{}
		}
		m.userOf[k] = user
		keys := slices.DeleteFunc(m.users[user], func(u string) bool { return u == k })
		m.keepUserLocked(user, append(keys, k))
	}
	return nil
}

// keepUserLocked sets user's task keys to keys (in the order they were
// created), bounded as keepLocked bounds an owner's ids (by
// MaxKeptPerUser; the owners of the tasks it deletes get their kept ids
// pruned at the next sweepLocked); a user with none left is forgotten.
func (m *Memory) keepUserLocked(user string, keys []string) {
	if out := m.boundLocked(keys, MaxKeptPerUser, func(k string) string { return k }, true); len(out) > 0 {
		m.users[user] = out
	} else {
		delete(m.users, user)
	}
}

// markDirtyLocked notes that the owner of key k lost a task, for
// sweepLocked to prune its kept ids.
func (m *Memory) markDirtyLocked(k string) {
	if m.dirty == nil {
		m.dirty = map[string]struct{}{}
	}
	owner, _, _ := strings.Cut(k, "\x00")
	m.dirty[owner] = struct{}{}
}

// keepLocked sets owner's kept ids to ids (owner's, in the order they
// were created), bounded by MaxKeptPerOwner (boundLocked); an owner with
// none left is forgotten.
func (m *Memory) keepLocked(owner string, ids []string) {
	if out := m.boundLocked(ids, MaxKeptPerOwner, func(id string) string { return memKey(owner, id) }, false); len(out) > 0 {
		m.kept[owner] = out
	} else {
		delete(m.kept, owner)
	}
}

// boundLocked returns entries (in the order their tasks were created;
// keyOf gives each one's key) without those whose task is gone, and
// without the oldest whose task ended beyond max, which it deletes (and,
// with dirty, marks their owners for sweepLocked). It reuses entries.
func (m *Memory) boundLocked(entries []string, max int, keyOf func(string) string, dirty bool) []string {
	out := entries[:0]
	for _, e := range entries {
		if _, ok := m.getLocked(keyOf(e)); ok {
			out = append(out, e)
		}
	}
	clear(entries[len(out):])
	if excess := len(out) - max; excess > 0 {
		kept := out[:0]
		for _, e := range out {
			if k := keyOf(e); excess > 0 && m.ended[k] {
				m.deleteLocked(k)
				if dirty {
					m.markDirtyLocked(k)
				}
				excess--
				continue
			}
			kept = append(kept, e)
		}
		clear(out[len(kept):])
		out = kept
	}
	return out
}

// deleteLocked forgets the task of key k. Its user's keys keep k until
// that user's next keepUserLocked, which sweepLocked runs for the users of
// the tasks it finds expired.
func (m *Memory) deleteLocked(k string) {
	delete(m.m, k)
	delete(m.exp, k)
	delete(m.ended, k)
}

func (m *Memory) getLocked(k string) ([]byte, bool) {
	b, ok := m.m[k]
	if ok && time.Now().After(m.exp[k]) {
		m.deleteLocked(k)
		m.markDirtyLocked(k)
		return nil, false
	}
	return b, ok
}

// sweepLocked drops expired tasks, so that memory holds only live ones,
// and the kept ids of the owners they were of.
func (m *Memory) sweepLocked() {
	for len(m.dirty) > 0 {
		dirty := m.dirty
		m.dirty = nil
		for o := range dirty {
			if ids, ok := m.kept[o]; ok {
				m.keepLocked(o, ids)
			}
		}
	}
	now := time.Now()
	if now.Sub(m.swept) < memorySweepEvery {
		return
	}
	m.swept = now
	var owners, users []string
	for k, e := range m.exp {
		if now.After(e) {
			m.deleteLocked(k)
			owner, _, _ := strings.Cut(k, "\x00")
			owners = append(owners, owner)
		}
	}
	for _, o := range owners {
		if ids, ok := m.kept[o]; ok {
			m.keepLocked(o, ids)
		}
	}
	for k, u := range m.userOf {
		if _, ok := m.m[k]; !ok {
			delete(m.userOf, k)
			users = append(users, u)
		}
	}
	for _, u := range users {
		if keys, ok := m.users[u]; ok {
			m.keepUserLocked(u, keys)
		}
	}
}

func (m *Memory) Get(_ context.Context, owner, id string) (*Task, error) {
	m.mu.Lock()
	b, ok := m.getLocked(memKey(owner, id))
	m.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return open(m.Sealer, owner, id, b)
}

func (m *Memory) Update(_ context.Context, owner, id string, change func(*Task) error) (*Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(owner, id)
	b, ok := m.getLocked(k)
	if !ok {
		return nil, nil
	}
	t, err := open(m.Sealer, owner, id, b)
	if err != nil {
		return nil, err
	}
	if err := change(t); err != nil {
		return nil, err
	}
	if b, err = seal(m.Sealer, t); err != nil {
		return nil, err
	}
	m.m[k], m.exp[k] = b, time.Now().Add(t.TTL)
	if t.Terminal() {
		if m.ended == nil {
			m.ended = map[string]bool{}
		}
		m.ended[k] = true
	}
	return t, nil
}

func (m *Memory) Leases(_ context.Context, owner string) (map[string]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked()
	out := map[string]time.Time{}
	for _, id := range m.kept[owner] {
		b, ok := m.getLocked(memKey(owner, id))
		if !ok {
			continue
		}
		if t, err := open(m.Sealer, owner, id, b); err == nil && leased(t) {
			out[id] = t.LeaseUntil
		}
	}
	return out, nil
}

func (m *Memory) List(_ context.Context, owner, cursor string, limit int) ([]*Task, string, error) {
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%w %q", ErrBadCursor, cursor)
		}
		after = string(b)
	}
	m.mu.Lock()
	m.sweepLocked()
	var keys []string
	if owner != "" {
		for _, id := range m.kept[owner] {
			if k := memKey(owner, id); k > after {
				keys = append(keys, k)
			}
		}
	} else {
		keys = make([]string, 0, len(m.m))
		for k := range m.m {
			if k > after {
				keys = append(keys, k)
			}
		}
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { _, ok := m.getLocked(k); return !ok })
	slices.Sort(keys)
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[limit-1]))
	}
	records := make([][]byte, len(keys))
	for i, k := range keys {
		records[i] = m.m[k]
	}
	m.mu.Unlock()
	out := make([]*Task, 0, len(keys))
	for i, k := range keys {
		o, id, _ := strings.Cut(k, "\x00")
		if t, err := open(m.Sealer, o, id, records[i]); err == nil {
			out = append(out, listed(t))
		}
	}
	return out, next, nil
}

// Redis keeps each task as one JSON string, sealed (SetSealer), under
// prefix+"task:{"+owner+"}:"+id, expiring TTL after its last change; the
// owner in braces keeps an owner's tasks in one Redis Cluster slot. The
// owner's leased tasks are indexed in the sorted set
// prefix+"tasks:{"+owner+"}" (id → lease end, ms), written with each task
// (Leases).
type Redis struct {
	client redis.UniversalClient
	prefix string
	sealer Sealer
	// replicas must hold each write before it is confirmed (WAIT, on the
	// connection that wrote it), within timeout; none: the master's word.
	replicas int
	timeout  time.Duration
}

// ErrNotReplicated is a write the replicas did not acknowledge in time: it
// may be lost if its master dies, so it is not confirmed.
var ErrNotReplicated = errors.New("redis: the task write was not acknowledged by enough replicas")

// SetReplication makes every write wait for replicas replicas, at most
// timeout (--redis-replicas, as for the session stores).
func (r *Redis) SetReplication(replicas int, timeout time.Duration) {
	r.replicas, r.timeout = replicas, timeout
}

// waited checks a WAIT's answer.
func (r *Redis) waited(cmd *redis.IntCmd) error {
	acked, err := cmd.Result()
	if err != nil {
		return fmt.Errorf("wait for replicas: %w", err)
	}
	if acked < int64(r.replicas) {
		return fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, acked, r.replicas, r.timeout)
	}
	return nil
}

// SetSealer seals every record written from now on under s, bound to its
// owner and id, and opens records with it: a task's arguments, results and
// answers may hold the users' data. Keys rotate as for the session
// snapshots: a record is sealed again under the newest key at each change,
// and expires its TTL after it, so a key dropped from --state-keys a TTL
// after a newer one was added loses nothing.
func (r *Redis) SetSealer(s Sealer) { r.sealer = s }

// NewRedis keeps tasks in client under prefix ("pingmcp:" when empty).
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "pingmcp:"
	}
	return &Redis{client: client, prefix: prefix}
}

func (r *Redis) key(owner, id string) string {
	return r.prefix + "task:{" + owner + "}:" + id
}

// List scans the task keys (redisscan: shard after shard of a Redis
// Cluster), owner's alone when owner is set, and reads each.
func (r *Redis) List(ctx context.Context, owner, cursor string, limit int) ([]*Task, string, error) {
	pattern := r.prefix + "task:{*}:*"
	if owner != "" {
		pattern = r.prefix + "task:{" + globEscape(owner) + "}:*"
	}
	keys, next, err := redisscan.Page(ctx, r.client, pattern, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	out := []*Task{}
	err = redisread.Each(ctx, r.client, "task record", keys, MaxRecordBytes, ListBudget, func(i int, v []byte, _ error) error {
		if v == nil {
			return nil // expired since, or unreadable (over MaxRecordBytes, not a string)
		}
		o, id, ok := strings.Cut(strings.TrimPrefix(keys[i], r.prefix+"task:{"), "}:")
		if !ok {
			return nil
		}
		if t, err := open(r.sealer, o, id, v); err == nil {
			out = append(out, listed(t))
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	return out, next, nil
}

// ListBudget is the most bytes of task records the Redis store's List
// reads in one round trip (but for one record larger than it, read
// alone): a page of 500 records of up to MaxRecordBytes (what pingmcp
// writes for a task whose tool answered a large result, or what a writer
// of Redis put there) would otherwise be in the node's memory at once, on
// every node at each count of the tasks for the metrics. A variable for
// the tests.
var ListBudget int64 = 8 << 20

// maxListedMessage bounds the error message a listed task keeps.
const maxListedMessage = 1 << 10

// listed is t as List returns it: what describes it (owner, user, status
// and its message, times, runner, the tool it calls, a failed one's error
// code and message, at most maxListedMessage bytes of it), without what it
// carries (its call's arguments, its result, its input requests, their
// answers, its tool's state), so that a page of tasks holds little
// however large their results.
func listed(t *Task) *Task {
	s := *t
	s.Result, s.InputRequests, s.Responses, s.RequestState, s.Request, s.Error = nil, nil, nil, "", nil, nil
	if name := t.Tool(); name != "" {
		s.Request, _ = json.Marshal(map[string]string{"name": name})
	}
	if len(t.Error) > 0 {
		var e struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		}
		if json.Unmarshal(t.Error, &e) == nil {
			if len(e.Message) > maxListedMessage {
				e.Message = strings.ToValidUTF8(e.Message[:maxListedMessage], "") + "…"
			}
			s.Error, _ = json.Marshal(e)
		}
	}
	return &s
}

// globEscape quotes the characters a SCAN pattern gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *Redis) leasesKey(owner string) string { return r.prefix + "tasks:{" + owner + "}" }

// index records t's lease in its owner's index, or takes t out of it, and
// keeps the index a TTL.
func (r *Redis) index(ctx context.Context, p redis.Pipeliner, t *Task) {
	k := r.leasesKey(t.Owner)
	if leased(t) {
		p.ZAdd(ctx, k, redis.Z{Score: float64(t.LeaseUntil.UnixMilli()), Member: t.ID})
	} else {
		p.ZRem(ctx, k, t.ID)
	}
	if t.TTL > 0 {
		p.Expire(ctx, k, t.TTL)
	}
	// What MaxKeptPerOwner bounds: the owner's tasks, and those that ended.
	keep(ctx, p, t, t.ID, r.keptKey(t.Owner), r.endedKey(t.Owner))
}

// keep adds t, as member, to the sorted set kept, and to ended if it
// ended, each scored by when it expires (its TTL runs from its last
// change).
func keep(ctx context.Context, p redis.Pipeliner, t *Task, member, kept, ended string) {
	until := redis.Z{Score: float64(time.Now().Add(t.TTL).UnixMilli()), Member: member}
	keys := []string{kept}
	if t.Terminal() {
		keys = append(keys, ended)
	}
	for _, k := range keys {
		p.ZAdd(ctx, k, until)
		if t.TTL > 0 {
			p.Expire(ctx, k, t.TTL)
		}
	}
}

// indexUser records t among its user's tasks, and those that ended, as
// index does among its owner's: for MaxKeptPerUser. Never in a
// transaction with the owner's keys: the user's share a hash tag of their
// own (another slot of a cluster).
func (r *Redis) indexUser(ctx context.Context, p redis.Pipeliner, t *Task, user string) {
	keep(ctx, p, t, userMember(t.Owner, t.ID), r.userKeptKey(user), r.userEndedKey(user))
}

// userKeptKey is the sorted set of a user's tasks, userEndedKey of those
// that ended, each as userMember and by when it expires (indexUser).
func (r *Redis) userKeptKey(user string) string  { return r.prefix + "tasks:user:{" + user + "}:kept" }
func (r *Redis) userEndedKey(user string) string { return r.prefix + "tasks:user:{" + user + "}:ended" }

// userMember names a task among its user's: its owner and id (an id
// holds no newline).
func userMember(owner, id string) string { return owner + "\n" + id }

func (r *Redis) Leases(ctx context.Context, owner string) (map[string]time.Time, error) {
	zs, err := redisread.ZRangeWithScores(ctx, r.client, "task leases", r.leasesKey(owner), maxLeases, maxLeaseBytes)
	if err != nil {
		return nil, fmt.Errorf("task leases: %w", err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		if id, ok := z.Member.(string); ok {
			out[id] = time.UnixMilli(int64(z.Score))
		}
	}
	return out, nil
}

func (r *Redis) Create(ctx context.Context, t *Task) error {
	b, err := seal(r.sealer, t)
	if err != nil {
		return err
	}
	key := r.key(t.Owner, t.ID)
	if r.replicas <= 0 {
		ok, err := r.client.SetNX(ctx, key, b, t.TTL).Result()
		if err != nil {
			return fmt.Errorf("create task: %w", err)
		}
		if !ok {
			return ErrExists
		}
		r.indexCreated(ctx, t)
		return nil
	}
	// SETNX and WAIT on one connection, to the key's master.
	var node redis.UniversalClient = r.client
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return fmt.Errorf("create task: %w", err)
		}
		node = m
	}
	pipe := node.Pipeline()
	set := pipe.SetNX(ctx, key, b, t.TTL)
	wait := redis.NewIntCmd(ctx, "wait", r.replicas, r.timeout.Milliseconds())
	pipe.Process(ctx, wait)
	if _, err := pipe.Exec(ctx); err != nil && set.Err() != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if !set.Val() {
		return ErrExists
	}
	if err := r.waited(wait); err != nil {
		return err
	}
	r.indexCreated(ctx, t)
	return nil
}

// indexCreated indexes a task just created. The index serves the sweep
// alone: a task it misses is still taken over when read.
func (r *Redis) indexCreated(ctx context.Context, t *Task) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	p := r.client.Pipeline()
	r.index(ctx, p, t)
	k := r.keptKey(t.Owner)
	p.ZRemRangeByScore(ctx, k, "-inf", now) // expired
	card := p.ZCard(ctx, k)
	user := userOf(t)
	var userCard *redis.IntCmd
	if user != "" {
		r.indexUser(ctx, p, t, user)
		uk := r.userKeptKey(user)
		p.ZRemRangeByScore(ctx, uk, "-inf", now)
		userCard = p.ZCard(ctx, uk)
	}
	p.Exec(ctx)
	evicted := 0
	if excess := int(card.Val()) - MaxKeptPerOwner; excess > 0 {
		evicted = r.evict(ctx, t.Owner, user, excess)
	}
	if userCard != nil {
		// What evict took went from the user's tasks too.
		if excess := int(userCard.Val()) - evicted - MaxKeptPerUser; excess > 0 {
			r.evictUser(ctx, user, excess)
		}
	}
}

// keptKey is the sorted set of owner's task ids, endedKey of those that
// ended, each by when it expires: what MaxKeptPerOwner bounds (index).
func (r *Redis) keptKey(owner string) string  { return r.prefix + "tasks:{" + owner + "}:kept" }
func (r *Redis) endedKey(owner string) string { return r.prefix + "tasks:{" + owner + "}:ended" }

// evict takes away owner's excess ended tasks that expire first, without
// reading them, and out of user's sets ("": none), and says how many. Every
// key but user's shares the owner's hash tag (one slot of a cluster).
func (r *Redis) evict(ctx context.Context, owner, user string, excess int) int {
	ended := r.endedKey(owner)
	ids := r.oldest(ctx, ended, excess)
	if len(ids) == 0 {
		return 0
	}
	p := r.client.Pipeline()
	members := make([]any, len(ids))
	for i, id := range ids {
		p.Del(ctx, r.key(owner, id))
		members[i] = id
	}
	p.ZRem(ctx, r.keptKey(owner), members...)
	p.ZRem(ctx, ended, members...)
	p.ZRem(ctx, r.leasesKey(owner), members...)
	if user != "" {
		named := make([]any, len(ids))
		for i, id := range ids {
			named[i] = userMember(owner, id)
		}
		p.ZRem(ctx, r.userKeptKey(user), named...)
		p.ZRem(ctx, r.userEndedKey(user), named...)
	}
	p.Exec(ctx)
	return len(ids)
}

// oldestScript: KEYS[1] a sorted set; ARGV[1] now (ms), ARGV[2] n, ARGV[3]
// the most bytes of a member. Drops the members scored before now, and
// returns {1, the n first members}, or {0, 'bytes', size} when one of
// them is longer than ARGV[3] (read in Redis, not sent).
var oldestScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, m in ipairs(out) do
  if string.len(m) > tonumber(ARGV[3]) then return {0, 'bytes', string.len(m)} end
end
return {1, out}`)

// oldest are the n first members of the sorted set ended (by when their
// tasks expire), those expired dropped first; at most maxEvict of them,
// each at most maxMemberBytes long: a member longer was not written by
// pingmcp, and the set is refused as unreadable (nothing goes, and the
// node's log says so).
func (r *Redis) oldest(ctx context.Context, ended string, n int) []string {
	res, err := oldestScript.Run(ctx, r.client, []string{ended}, time.Now().UnixMilli(), min(n, maxEvict), maxMemberBytes).Slice()
	if err == nil {
		err = redisread.Over(res, "ended tasks", ended, map[string]int64{"bytes": maxMemberBytes})
	}
	if err != nil {
		if errors.Is(err, redisread.ErrTooLarge) {
			slog.Default().Error("task store: ended tasks not taken away", "err", err)
		}
		return nil
	}
	members, _ := res[1].([]any)
	out := make([]string, 0, len(members))
	for _, m := range members {
		if s, ok := m.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// evictUser takes away user's excess ended tasks that expire first,
// whichever owner's, without reading them, and out of their owners' sets.
// A pipeline, not a transaction: the owners' keys are in other slots of a
// cluster than the user's.
func (r *Redis) evictUser(ctx context.Context, user string, excess int) {
	ended := r.userEndedKey(user)
	named := r.oldest(ctx, ended, excess)
	if len(named) == 0 {
		return
	}
	p := r.client.Pipeline()
	members := make([]any, len(named))
	for i, m := range named {
		members[i] = m
		sep := strings.LastIndexByte(m, '\n')
		if sep < 0 {
			continue
		}
		owner, id := m[:sep], m[sep+1:]
		p.Del(ctx, r.key(owner, id))
		p.ZRem(ctx, r.keptKey(owner), id)
		p.ZRem(ctx, r.endedKey(owner), id)
		p.ZRem(ctx, r.leasesKey(owner), id)
	}
	p.ZRem(ctx, r.userKeptKey(user), members...)
	p.ZRem(ctx, ended, members...)
	p.Exec(ctx)
}

func (r *Redis) Get(ctx context.Context, owner, id string) (*Task, error) {
	b, err := redisread.Get(ctx, r.client, "task record", r.key(owner, id), MaxRecordBytes)
	if err != nil {
		return nil, fmt.Errorf("get task: %w", unreadable(err))
	}
	if b == nil {
		return nil, nil
	}
	return open(r.sealer, owner, id, b)
}

// Update is optimistic: WATCH the key, change, MULTI/SET; a concurrent
// change makes it start again (at most a few times).
func (r *Redis) Update(ctx context.Context, owner, id string, change func(*Task) error) (*Task, error) {
	key := r.key(owner, id)
	var out *Task
	for range 16 {
		out = nil
		err := r.client.Watch(ctx, func(tx *redis.Tx) error {
			b, err := redisread.Get(ctx, tx, "task record", key, MaxRecordBytes)
			if err != nil {
				return unreadable(err)
			}
			if b == nil {
				// Expired: out of the index too (what a sweep finds there
				// it updates).
				return tx.ZRem(ctx, r.leasesKey(owner), id).Err()
			}
			t, err := open(r.sealer, owner, id, b)
			if err != nil {
				return err
			}
			if err := change(t); err != nil {
				return err
			}
			if b, err = seal(r.sealer, t); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, t.TTL)
				r.index(ctx, p, t)
				return nil
			})
			if err != nil {
				return err
			}
			if r.replicas > 0 {
				if err := r.waited(tx.Wait(ctx, r.replicas, r.timeout)); err != nil {
					return err
				}
			}
			out = t
			return nil
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if out != nil {
			if user := userOf(out); user != "" {
				// Its user's sets, behind the change: what they miss (a
				// failed write) only leaves the task to its owner's bound.
				p := r.client.Pipeline()
				r.indexUser(ctx, p, out, user)
				p.Exec(ctx)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("update task %s: too many concurrent changes", id)
}
