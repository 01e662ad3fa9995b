package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/metrics"
)

// RedisEvents is the go-sdk's mcp.EventStore on Redis Streams, so that a
// client's GET with Last-Event-ID replays what it missed on whatever node
// serves it. Each (session, stream) is a Redis stream whose entry ids are
// "0-<n>" for the SDK's event index n-1, bounded to MaxLen entries and
// expiring TTL after its last append. The events of all a session's streams
// together are bounded to MaxBytes: the oldest go first, whichever stream
// they are in (see appendScript). A session's keys share one hash tag.
type RedisEvents struct {
	client redis.UniversalClient
	w      writer
	prefix string
	opts   EventOptions
}

// EventOptions bound what a stream and a session keep; zero fields take the
// defaults.
type EventOptions struct {
	// MaxLen is how many events a stream keeps (default 1000); older ones
	// are dropped, and replaying from before them fails with
	// mcp.ErrEventsPurged.
	MaxLen int64
	// MaxBytes is how many bytes the events of one session may take, all
	// its streams together (default DefaultEventsMaxBytes), each event
	// counting its data and EventOverhead. Beyond, the session's oldest
	// events are dropped, whichever stream they are in; a stream is bounded
	// by its session's budget. An event larger than the whole budget is not
	// kept at all (nor the events of its stream before it): it is delivered
	// live, and replaying from before it fails with mcp.ErrEventsPurged.
	MaxBytes int64
	// TTL is how long a stream outlives its last event (default 1 h).
	TTL time.Duration
	// MaxTotalBytes bounds the events of all sessions together, in a
	// memory store only (default DefaultEventsMaxTotalBytes); Redis has its
	// own maxmemory. See MemoryEvents for who gives way.
	MaxTotalBytes int64
}

// Defaults of EventOptions.
const (
	DefaultEventsMaxLen        = 1000
	DefaultEventsMaxBytes      = 4 << 20
	DefaultEventsTTL           = time.Hour
	DefaultEventsMaxTotalBytes = 256 << 20
)

// EventOverhead is what each kept event counts besides its data, and
// StreamOverhead what each stream a session keeps counts, so that a flood of
// tiny events, or of POSTs (each opens a stream), is bounded too. They are
// what Redis 7.0 spends (MEMORY USAGE, jemalloc): an entry of a stream ~56
// bytes, its member of the session's order ~134; a stream ~4.7 KB as soon as
// it holds an entry (a listpack node preallocates stream-node-max-bytes,
// 4096), its count ~72, its members of the session's streams and order
// ~200. The memory store, which spends less, counts the same.
const (
	EventOverhead  = 192
	StreamOverhead = 5 << 10
)

// withDefaults fills the zero fields of o.
func (o EventOptions) withDefaults() EventOptions {
	if o.MaxLen <= 0 {
		o.MaxLen = DefaultEventsMaxLen
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultEventsMaxBytes
	}
	if o.TTL <= 0 {
		o.TTL = DefaultEventsTTL
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = DefaultEventsMaxTotalBytes
	}
	return o
}

var _ mcp.EventStore = (*RedisEvents)(nil)

// A WriteID names one write of an event, the same on each try of it, so
// that a store can tell a retry of a write it already made from a new one
// (Events.AppendAt).
type WriteID string

// NewWriteID returns a name no other write has: 128 random bits.
func NewWriteID() WriteID {
	var b [16]byte
	rand.Read(b[:])
	return WriteID(hex.EncodeToString(b[:]))
}

// orNew is w, or a new name if w is "".
func (w WriteID) orNew() string {
	if w == "" {
		return string(NewWriteID())
	}
	return string(w)
}

// ErrStreamGone means an append found its stream never opened, or expired:
// retrying cannot help.
var ErrStreamGone = errors.New("event stream was never opened or has expired")

// NewRedisEvents keeps event streams under keys prefix+"events:{session}:…".
func NewRedisEvents(client redis.UniversalClient, prefix string, opts EventOptions) *RedisEvents {
	if prefix == "" {
		prefix = "pingmcp:"
	}
	return &RedisEvents{client: client, w: newWriter(client), prefix: prefix, opts: opts.withDefaults()}
}

// keys are the session's set of streams, the stream's entries and count,
// the session's activation epoch (kept by RedisSnapshots under the same
// prefix), its journal of requests in flight, its byte count and event
// sequence (a hash), and the order of its kept events (a sorted set).
func (r *RedisEvents) keys(session, stream string) []string {
	base := r.eventsBase(session)
	return []string{base + "streams", base + "s:" + stream, base + "n:" + stream,
		sessionKey(r.prefix, session, "epoch"), base + "inflight", base + "bytes", base + "order"}
}

// eventsBase is the start of the names of a session's event keys; a
// stream's entries are under eventsBase+"s:"+stream.
func (r *RedisEvents) eventsBase(session string) string {
	return r.prefix + "events:{" + session + "}:"
}

var (
	// trimLua is shared by openScript and appendScript (same KEYS), with
	// ARGV[1] the stream opened or appended to, which it never drops.
	// load() reads the session's bytes hash once per script: its byte count
	// st.b, its sequence st.q and the stream's last write st.w; the script
	// changes them in st, and store(st) writes them back once, if changed.
	// make(st, need, budget, base, cost, dropped) drops the session's
	// oldest until st.b plus need fits in budget; dropped gets {events,
	// bytes} at [3], [4] and the streams dropped at [5]; cost is
	// StreamOverhead. expire(ttl, keys) sets the TTL of the keys a script
	// wrote, each once.
	//
	// Every kept event has its data in field d and its session sequence
	// number in q, and a member "q|size|n|stream" in the order set scored
	// by q; every kept stream a member "0|StreamOverhead|0|stream". The
	// bytes hash counts their sizes (field b) and the sequence (field q),
	// and names each stream's last write (field "w:"+stream, see append).
	// Dropping the session's oldest pops the order set's first member:
	// O(log N), no scan. A member whose entry is gone (its stream expired)
	// only gives its bytes back; an entry is deleted only if its q matches,
	// since an expired stream's id may have been opened again since. A
	// stream goes, its keys and its place in the streams set, once it has
	// no events left and answers no request in flight (the journal), unless
	// it is the session's standalone stream "": when its last event goes,
	// or when its own member is the oldest (its member moves to the newest
	// place if the stream is in use). Once the popped member is one moved in this run,
	// nothing more can go: the session is then over its budget by the
	// streams of its requests in flight at most.
	trimLua = `
local function unused(stream, entries)
  return stream ~= '' and redis.call('XLEN', entries) == 0 and redis.call('HEXISTS', KEYS[5], stream) == 0
end
local function gone(stream, entries, count, cost, dropped)
  redis.call('DEL', entries, count)
  redis.call('HDEL', KEYS[6], 'w:' .. stream)
  redis.call('SREM', KEYS[1], stream)
  redis.call('ZREM', KEYS[7], '0|' .. cost .. '|0|' .. stream)
  dropped[5] = dropped[5] + 1
end
local function load()
  local v = redis.call('HMGET', KEYS[6], 'b', 'q', 'w:' .. ARGV[1])
  local b, q = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  return {b = b, q = q, w = v[3], wrote = false, b0 = b, q0 = q}
end
local function store(st)
  if st.wrote then
    redis.call('HSET', KEYS[6], 'b', st.b, 'q', st.q, 'w:' .. ARGV[1], st.w)
  elseif st.b ~= st.b0 or st.q ~= st.q0 then
    redis.call('HSET', KEYS[6], 'b', st.b, 'q', st.q)
  end
end
local function make(st, need, budget, base, cost, dropped)
  local last = st.q
  while st.b + need > budget do
    local m = redis.call('ZPOPMIN', KEYS[7])
    if #m == 0 then
      st.b = 0
      break
    end
    local seq, sz, en, stream = string.match(m[1], '^(%d+)|(%d+)|(%d+)|(.*)$')
    if tonumber(m[2]) > last then
      redis.call('ZADD', KEYS[7], m[2], m[1])
      break
    end
    local entries, count = base .. 's:' .. stream, base .. 'n:' .. stream
    if en == '0' then
      if stream ~= ARGV[1] and (redis.call('EXISTS', count) == 0 or unused(stream, entries)) then
        gone(stream, entries, count, sz, dropped)
        st.b = st.b - tonumber(sz)
      else
        st.q = st.q + 1
        redis.call('ZADD', KEYS[7], st.q, m[1])
      end
    else
      local e = redis.call('XRANGE', entries, '0-' .. en, '0-' .. en)
      if #e > 0 and e[1][2][4] == seq then
        redis.call('XDEL', entries, '0-' .. en)
        dropped[3] = dropped[3] + 1
        dropped[4] = dropped[4] + tonumber(sz)
        if stream ~= ARGV[1] and unused(stream, entries) then
          gone(stream, entries, count, cost, dropped)
          st.b = st.b - cost
        end
      end
      st.b = st.b - tonumber(sz)
    end
  end
end
local function expire(ttl, keys)
  for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ttl) end
end
`
	// streamLua is shared by the scripts that open and append (same KEYS,
	// ARGV[1] the stream), after trimLua. fenced(epoch) says a newer
	// activation than epoch ("0": unfenced) exists. open(st, journal,
	// budget, base, cost, dropped) opens the stream, journalling the
	// requests answered on it (JSON, or "" for none); a new stream counts
	// cost (StreamOverhead) against the budget, making room as an append
	// does. append(st, maxlen, data, budget, base, overhead, cost, dropped,
	// write, opened) appends data as the stream's next event and returns its
	// number n, or -1 for a stream never opened (not checked when opened is
	// set: the script has just opened it); overhead is EventOverhead.
	// dropped counts what they dropped, as make's. write names the write
	// (WriteID): the stream's last one is kept, with its n, in the bytes
	// hash (field "w:"+stream), and a write of the same name, a retry of one
	// that ran (its answer lost, or its replication unconfirmed), stores
	// nothing and returns the same n. Only the last write of a stream can be
	// retried (the next waits for it), so the last one is all it takes.
	// Neither sets a TTL: each script expires the keys it wrote once, at its
	// end (expire).
	streamLua = `
local function fenced(epoch)
  return epoch ~= '0' and tonumber(redis.call('GET', KEYS[4]) or '0') ~= tonumber(epoch)
end
local function open(st, journal, budget, base, cost, dropped)
  if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    make(st, cost, budget, base, cost, dropped)
    st.q = st.q + 1
    redis.call('ZADD', KEYS[7], st.q, '0|' .. cost .. '|0|' .. ARGV[1])
    st.b = st.b + cost
  end
  redis.call('SET', KEYS[3], 0, 'NX')
  if journal ~= '' then
    redis.call('HSET', KEYS[5], ARGV[1], journal)
  end
end
local function append(st, maxlen, data, budget, base, overhead, cost, dropped, write, opened)
  if not opened and redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
  if st.w then
    local w, n = string.match(st.w, '^(.*) (%d+)$')
    if w == write then return tonumber(n) end
  end
  local size = string.len(data) + overhead
  local function forget(entries, stream, e, why)
    local seq = e[2][4]
    redis.call('XDEL', entries, e[1])
    if seq then
      local sz = string.len(e[2][2]) + overhead
      redis.call('ZREM', KEYS[7], seq .. '|' .. sz .. '|' .. string.match(e[1], '-(%d+)$') .. '|' .. stream)
      st.b = st.b - sz
      dropped[why] = dropped[why] + 1
      dropped[why + 1] = dropped[why + 1] + sz
    end
  end
  local n = redis.call('INCR', KEYS[3])
  st.w, st.wrote = write .. ' ' .. n, true
  if size > budget then
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do forget(KEYS[2], ARGV[1], e, 3) end
    dropped[3] = dropped[3] + 1
    dropped[4] = dropped[4] + size
  else
    make(st, size, budget, base, cost, dropped)
    st.q = st.q + 1
    redis.call('XADD', KEYS[2], '0-' .. n, 'd', data, 'q', st.q)
    redis.call('ZADD', KEYS[7], st.q, st.q .. '|' .. size .. '|' .. n .. '|' .. ARGV[1])
    st.b = st.b + size
    if n > maxlen and redis.call('XLEN', KEYS[2]) > maxlen then
      forget(KEYS[2], ARGV[1], redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1], 1)
    end
  end
  return n
end
`
	// KEYS streams, entries, count, epoch, journal, bytes, order; ARGV[1]
	// stream id, ARGV[2] ttl ms, ARGV[3] the requests answered on it (JSON)
	// or "", ARGV[4] the opener's epoch ("0": unfenced), ARGV[5] the
	// session's byte budget, ARGV[6] the session's key base, ARGV[7]
	// StreamOverhead. Returns {1, 0, 0, events and bytes dropped, streams
	// dropped}, or {-2} when fenced.
	openScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[4]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local st = load()
open(st, ARGV[3], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), dropped)
store(st)
local keys = {KEYS[1], KEYS[3], KEYS[6], KEYS[7]}
if ARGV[3] ~= '' then table.insert(keys, KEYS[5]) end
expire(ARGV[2], keys)
return {1, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5]}`)
	// KEYS as openScript's; ARGV[1] to [7] as openScript's, ARGV[8] max
	// length, ARGV[9] data, ARGV[10] EventOverhead, ARGV[11] the write's
	// name: opens the stream and appends data as its first event. Returns
	// appendScript's result; run again with the same name (a retry), the
	// open changes nothing and the append stores nothing.
	openAppendScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[4]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local cost = tonumber(ARGV[7])
local st = load()
open(st, ARGV[3], tonumber(ARGV[5]), ARGV[6], cost, dropped)
local n = append(st, tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[10]), cost, dropped, ARGV[11], true)
store(st)
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7]}
if ARGV[3] ~= '' then table.insert(keys, KEYS[5]) end
expire(ARGV[2], keys)
return {n, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5]}`)
	// KEYS as openScript's; ARGV[1] stream id, ARGV[2] ttl ms, ARGV[3] max
	// length, ARGV[4] data, ARGV[5] the writer's epoch ("0": unfenced),
	// ARGV[6] the session's byte budget, ARGV[7] the session's key base,
	// ARGV[8] EventOverhead, ARGV[9] StreamOverhead, ARGV[10] "1" to drop
	// the stream's journal entry once data is in (its requests are all
	// answered), ARGV[11] the write's name. Returns {n, events and bytes
	// dropped for the count bound, events and bytes dropped for the byte
	// bound, streams dropped}, or {-1} for a stream never opened, {-2} when
	// fenced; run again with the same name (a retry), it stores nothing
	// and returns the same n.
	appendScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[5]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local st = load()
local n = append(st, tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), dropped, ARGV[11], false)
if n < 0 then return {-1} end
if ARGV[10] == '1' then redis.call('HDEL', KEYS[5], ARGV[1]) end
store(st)
expire(ARGV[2], {KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7]})
return {n, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5]}`)
	// KEYS epoch, journal; ARGV[1] stream id, ARGV[2] the writer's epoch
	// ("0": unfenced). Drops the stream's journal entry; returns 1, or -2
	// when fenced (nothing dropped).
	finishScript = redis.NewScript(`
if ARGV[2] ~= '0' and tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return -2 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`)
	// KEYS streams, entries, count; ARGV[1] index. Returns {count, first
	// retained n or 0, data...}, or -1 for an unknown stream.
	afterScript = redis.NewScript(`
local count = redis.call('GET', KEYS[3])
if not count then return -1 end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local firstN = 0
if #first > 0 then firstN = tonumber(string.match(first[1][1], '-(%d+)$')) end
local out = {tonumber(count), firstN}
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. (tonumber(ARGV[1]) + 1), '+')
for _, e in ipairs(entries) do table.insert(out, e[2][2]) end
return out`)
)

// Remote implements Events: every write is a round trip to Redis.
func (*RedisEvents) Remote() bool { return true }

// Open implements mcp.EventStore.
func (r *RedisEvents) Open(ctx context.Context, session, stream string) error {
	return r.OpenFor(ctx, session, stream, "", 0, nil)
}

// OpenFor opens stream as activation epoch (0: unfenced) and journals the
// requests it answers (JSON-RPC ids), in one round trip, until
// FinishRequests. It fails with ErrFenced if a newer activation exists. A
// new stream counts StreamOverhead against its session's MaxBytes. Redis
// bounds each session, not users: user is not used (a user's bound is the
// sessions it may have times MaxBytes).
func (r *RedisEvents) OpenFor(ctx context.Context, session, stream, _ string, epoch int64, ids []json.RawMessage) error {
	journal, err := encodeIDs(ids)
	if err != nil {
		return err
	}
	res, err := r.w.run(ctx, openScript, r.keys(session, stream), stream, r.opts.TTL.Milliseconds(), journal, epoch,
		r.opts.MaxBytes, r.eventsBase(session), StreamOverhead).Int64Slice()
	if err != nil {
		return fmt.Errorf("open event stream: %w", err)
	}
	if res[0] == -2 {
		return fmt.Errorf("open event stream: %w", ErrFenced)
	}
	trimmedAll(res)
	return nil
}

// trimmedAll counts what a script's result {n, count bound's events and
// bytes, byte bound's events and bytes, streams} says it dropped.
func trimmedAll(res []int64) {
	if len(res) == 6 {
		trimmed("count", res[1], res[2])
		trimmed("bytes", res[3], res[4])
		if res[5] > 0 {
			metrics.EventStreamsTrimmed.Add(float64(res[5]))
		}
	}
}

// Append implements mcp.EventStore.
func (r *RedisEvents) Append(ctx context.Context, session, stream string, data []byte) error {
	return r.AppendAt(ctx, session, stream, 0, "", data)
}

// AppendAt appends as the activation epoch of the session, and fails with
// ErrFenced if a newer activation exists. Epoch 0 appends unfenced. Events
// dropped to keep the stream and the session within their bounds are
// counted in metrics.EventsTrimmed. A try of write that was stored already
// stores nothing (see Events).
func (r *RedisEvents) AppendAt(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte) error {
	return r.append(ctx, session, stream, epoch, write, data, false)
}

// AppendFinish is AppendAt then FinishRequests, in one script: data
// answers the last request journalled for stream.
func (r *RedisEvents) AppendFinish(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte) error {
	return r.append(ctx, session, stream, epoch, write, data, true)
}

func (r *RedisEvents) append(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte, finish bool) error {
	flag := "0"
	if finish {
		flag = "1"
	}
	res, err := r.w.run(ctx, appendScript, r.keys(session, stream), stream, r.opts.TTL.Milliseconds(), r.opts.MaxLen,
		data, epoch, r.opts.MaxBytes, r.eventsBase(session), EventOverhead, StreamOverhead, flag, write.orNew()).Int64Slice()
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return appended(res, stream)
}

// OpenAppend is OpenFor then AppendAt, in one script: data is the
// stream's first event (the SDK's priming event), stored with the fencing
// check and the journal entry.
func (r *RedisEvents) OpenAppend(ctx context.Context, session, stream, _ string, epoch int64, ids []json.RawMessage, write WriteID, data []byte) error {
	journal, err := encodeIDs(ids)
	if err != nil {
		return err
	}
	res, err := r.w.run(ctx, openAppendScript, r.keys(session, stream), stream, r.opts.TTL.Milliseconds(), journal, epoch,
		r.opts.MaxBytes, r.eventsBase(session), StreamOverhead, r.opts.MaxLen, data, EventOverhead, write.orNew()).Int64Slice()
	if err != nil {
		return fmt.Errorf("open event stream: %w", err)
	}
	return appended(res, stream)
}

// appended reads an append script's result.
func appended(res []int64, stream string) error {
	switch res[0] {
	case -1:
		return fmt.Errorf("append event to stream %q: %w", stream, ErrStreamGone)
	case -2:
		return fmt.Errorf("append event: %w", ErrFenced)
	}
	trimmedAll(res)
	return nil
}

// trimmed counts events dropped to keep within a bound.
func trimmed(bound string, events, bytes int64) {
	if events > 0 {
		metrics.EventsTrimmed.WithLabelValues(bound).Add(float64(events))
		metrics.EventsTrimmedBytes.WithLabelValues(bound).Add(float64(bytes))
	}
}

// FinishRequests forgets the requests journalled for stream: they were
// answered, or their answer is in the stream. It is fenced as appends are:
// a stale activation drops nothing of a newer one's journal.
func (r *RedisEvents) FinishRequests(ctx context.Context, session, stream string, epoch int64) error {
	keys := r.keys(session, stream)
	res, err := r.w.run(ctx, finishScript, []string{keys[3], keys[4]}, stream, epoch).Int64()
	if err != nil {
		return fmt.Errorf("finish requests: %w", err)
	}
	if res == -2 {
		return fmt.Errorf("finish requests: %w", ErrFenced)
	}
	return nil
}

// PendingRequests returns the journal: per stream, the requests it was
// opened for and that were not finished.
func (r *RedisEvents) PendingRequests(ctx context.Context, session string) (map[string][]json.RawMessage, error) {
	all, err := r.client.HGetAll(ctx, r.keys(session, "")[4]).Result()
	if err != nil {
		return nil, fmt.Errorf("read request journal: %w", err)
	}
	out := make(map[string][]json.RawMessage, len(all))
	for stream, v := range all {
		var ids []json.RawMessage
		if json.Unmarshal([]byte(v), &ids) == nil {
			out[stream] = ids
		}
	}
	return out, nil
}

func encodeIDs(ids []json.RawMessage) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return "", fmt.Errorf("journal request ids: %w", err)
	}
	return string(b), nil
}

// After implements mcp.EventStore: the events after index, or
// mcp.ErrEventsPurged at once if any of them was dropped.
func (r *RedisEvents) After(ctx context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		res, err := afterScript.Run(ctx, r.client, r.keys(session, stream), index).Result()
		if err != nil {
			yield(nil, fmt.Errorf("replay events: %w", err))
			return
		}
		out, ok := res.([]any)
		if !ok {
			// Never opened, expired, or dropped to keep its session within
			// its bytes: either way, its events are gone.
			yield(nil, fmt.Errorf("replay events: stream %q of session %q is unknown or dropped: %w", stream, session, mcp.ErrEventsPurged))
			return
		}
		count, _ := out[0].(int64)
		first, _ := out[1].(int64)
		// Events index+1 … count-1 must all be there: the first one kept
		// (numbered from 1) may be no later than index+2.
		if int64(index)+1 < count && (first == 0 || first > int64(index)+2) {
			yield(nil, fmt.Errorf("replay events after %d of stream %q: %w", index, stream, mcp.ErrEventsPurged))
			return
		}
		for _, d := range out[2:] {
			s, _ := d.(string)
			if !yield([]byte(s), nil) {
				return
			}
		}
	}
}

// SessionClosed implements mcp.EventStore: the session's streams go.
func (r *RedisEvents) SessionClosed(ctx context.Context, session string) error {
	keys := r.keys(session, "")
	streams, err := r.client.SMembers(ctx, keys[0]).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("close session events: %w", err)
	}
	del := []string{keys[0], keys[4], keys[5], keys[6]}
	for _, s := range streams {
		k := r.keys(session, s)
		del = append(del, k[1], k[2])
	}
	if err := r.client.Del(ctx, del...).Err(); err != nil {
		return fmt.Errorf("close session events: %w", err)
	}
	return nil
}

// SetReplication makes every write of the store wait for rep's replicas
// before it is confirmed (Replication).
func (r *RedisEvents) SetReplication(rep Replication) { r.w.Replication = rep }
