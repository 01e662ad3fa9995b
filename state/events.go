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

	"github.com/pingmcp/pingmcp/internal/redisread"
	"github.com/pingmcp/pingmcp/metrics"
)

// RedisEvents is the go-sdk's mcp.EventStore on Redis, so that a client's
// GET with Last-Event-ID replays what it missed on whatever node serves it.
// A session's events, all its streams', are fields of one hash (see
// trimLua; not a Redis stream per stream, whose making cost more than the
// rest of a request's writes), numbered per stream from 1 for the SDK's
// event index 0, each stream bounded to MaxLen events and expiring TTL
// after its last one. The events of all a session's streams together are
// bounded to MaxBytes: the oldest go first, whichever stream they are in.
// A session's keys share one hash tag.
//
// With a Sealer (SetSealer), each event's data is sealed (AES-256-GCM,
// Sealer.SealBytes) bound to its session and stream before it is stored,
// and opened as it is replayed: tool results hold users' data, which a
// reader of Redis (a backup, a replica) does not see, and an event a
// writer of Redis puts in, or moves from another session or stream, does
// not open, so it is never delivered. A stream's empty first event (the
// SDK's priming event) carries nothing and stays empty; an empty event
// after it does not open.
type RedisEvents struct {
	client redis.UniversalClient
	w      writer
	prefix string
	opts   EventOptions
	sealer *Sealer
}

// SetSealer makes the store seal the events it writes from now on, and
// open those it replays: one it cannot open (not sealed, sealed under a
// key no longer among the sealer's, or changed in Redis) fails the
// replay, as a purged one does. Call it before the store is used.
func (r *RedisEvents) SetSealer(s *Sealer) { r.sealer = s }

// seal is data as stored: sealed for session's stream if r seals.
func (r *RedisEvents) seal(session, stream string, data []byte) []byte {
	if r.sealer == nil || len(data) == 0 {
		return data
	}
	return r.sealer.SealBytes(data, eventContext(session, stream))
}

// eventContext binds a sealed event to its session and stream.
func eventContext(session, stream string) []byte {
	return []byte("event\x00" + session + "\x00" + stream)
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
	// counting its data as stored (sealed: 30 bytes and the key id more,
	// see SetSealer) and EventOverhead. Beyond, the session's oldest
	// events are dropped, whichever stream they are in; a stream is bounded
	// by its session's budget. An event larger than the whole budget is not
	// kept at all (nor the events of its stream before it): it is delivered
	// live, and replaying from before it fails with mcp.ErrEventsPurged.
	MaxBytes int64
	// TTL is how long a stream outlives its last event (default 1 h); in
	// Redis, up to an eighth longer, so that a request need not set the
	// TTL of every key it writes.
	TTL time.Duration
	// Linger is how long the write of an answer, behind its delivery,
	// waits for the next request's open to go with it in one round trip
	// when no write is in flight (default 2 ms: behindLinger). A test on a
	// loaded machine lengthens it, so that calls made in a row are sure to
	// meet it.
	Linger time.Duration
	// JournalEntries is the most entries of a session's request journal
	// a node reads at an activation (default DefaultJournalEntries), each
	// counting up to 4 KiB against the bytes it reads: a journal has an
	// entry per stream whose requests are not all answered, so the calls
	// a session may run at once (--max-concurrent-requests) bound it.
	// A larger one is refused unread, and its requests are not answered
	// "interrupted" (PendingRequests).
	JournalEntries int64
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
	DefaultJournalEntries      = 1024
)

// EventOverhead is what each kept event counts besides its data, and
// StreamOverhead what each stream a session keeps counts, so that a flood of
// tiny events, or of POSTs (each opens a stream), is bounded too. They are
// what Redis 7.0 spends (MEMORY USAGE, jemalloc, 2,000 streams of one
// session, stream ids of 17 bytes): an event ~218 bytes besides its data
// (its field of the session's hash and its member of the order), a stream
// ~230 (its record and its member); a stream's empty first event (the
// SDK's priming event) nothing, since Redis keeps it in the stream's record.
// The memory store, which spends less, counts the same.
const (
	EventOverhead  = 224
	StreamOverhead = 256
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
	if o.JournalEntries <= 0 {
		o.JournalEntries = DefaultJournalEntries
	}
	if o.Linger <= 0 {
		o.Linger = behindLinger
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
	opts = opts.withDefaults()
	w := newWriter(client)
	w.batch.linger = opts.Linger
	return &RedisEvents{client: client, w: w, prefix: prefix, opts: opts}
}

// keys are the session's hash (its byte count, its event sequence, its
// streams' records and its kept events), its activation epoch (kept by
// RedisSnapshots under the same prefix), its journal of requests in flight
// and the order of its kept events (a sorted set). A stream has no key of
// its own: a Redis stream per request stream cost redis-server 4.7 KB and
// ~20 µs to make (its first listpack node), more than the rest of the
// request's writes together.
func (r *RedisEvents) keys(session string) []string {
	base := r.prefix + "events:{" + session + "}:"
	return []string{base + "bytes", sessionKey(r.prefix, session, "epoch"), base + "inflight", base + "order"}
}

var (
	// trimLua is shared by openScript and appendScript (same KEYS), with
	// ARGV[1] the stream opened or appended to, which it never drops.
	//
	// A session's hash (KEYS[1]) holds its byte count (field b), its event
	// sequence (q), when its keys' TTL was last set (t, Redis's clock in
	// ms), one record per stream (field "s:"+stream: "n t w", the stream's
	// last event number n, the time t of its open or last event, the name
	// w of its last write, then " i" if its first event is implied), the
	// data of each kept event (field "e:"+n+":"+stream: "q data", q its
	// session sequence number), and the mark of what of a stream was sent
	// (field "m:"+stream: the number of the last event marked, markScript;
	// the standalone stream's alone, in practice, counted in its record's
	// StreamOverhead). A stream's first event, when it is empty
	// (the SDK's priming event, which every request stream of the
	// 2025-11-25 protocol starts with), is implied by the record instead:
	// no field, no member, no bytes counted; a replay from before it gives
	// it, and the count bound drops it (the flag goes) as any other. load()
	// reads the count, the sequence, t and this stream's record in one
	// HMGET; the script changes them in st (new fields in st.h), and
	// store(st) writes back what changed in one HSET.
	//
	// Every kept event has a member "q|size|n|stream" in the order set
	// (KEYS[4]) scored by q; every kept stream a member
	// "0|StreamOverhead|0|stream". The count b is the sum of their sizes.
	// make(st, need, budget, cost, dropped) drops the session's oldest
	// until st.b plus need fits in budget; dropped gets {events, bytes} at
	// [3], [4] and the streams dropped at [5]; cost is StreamOverhead.
	// Dropping the session's oldest pops the order set's first member:
	// O(log N), no scan. An event is deleted only if its q matches, since
	// an expired stream may have been opened again since, its numbers
	// starting again; a member whose event is not there only gives its
	// bytes back. A stream's kept events are always its last ones, without
	// a gap (the oldest go first, in its order as in the session's; an
	// implied first event may outlive the next ones, but a replay from
	// before it needs them and fails all the same). A stream goes (its
	// record) once it has no events left (an implied first event does not
	// count) and answers no request in flight (the journal), unless it is
	// the session's standalone stream "": when its last event goes, or when its own
	// member is the oldest (its member moves to the newest place if the
	// stream is in use). A request stream's member moves behind the answer
	// to its last request when that is appended, so that its events go
	// first and the stream with the last of them, without its member being
	// popped and moved on the way. Once the popped member is one moved in
	// this run, nothing more can go: the session is then over its budget by
	// the streams of its requests in flight at most.
	//
	// A node of the layout before this one (a Redis stream and a counter
	// per stream, and a field "w:"+stream naming its last write) left its
	// members in the same order and counted them in the same b: popped,
	// they find no event or record here, give their bytes back and take
	// their "w:" field along (gone); their keys expire by themselves.
	//
	// A stream expires TTL after its open or its last event (alive, by
	// Redis's clock): it is then unknown to appends and replays, and opened
	// again it starts from its first event; what it kept stays counted
	// until the budget drops it, or the session's keys expire. Those (the
	// hash and the order) expire TTL after the session's last write, and up
	// to an eighth more: their TTL is set to TTL plus an eighth when it was
	// last set half an eighth ago or more (or the order may have been
	// emptied, hence made anew without one), so that a request's scripts
	// need not set it each time; the journal's, TTL plus an eighth after
	// its last entry.
	trimLua = `
local function rec(v)
  if not v then return nil end
  local n, t, w = string.match(v, '^(%d+) (%d+) ?(.*)$')
  if not n then return nil end
  local i = string.sub(w, -2) == ' i'
  if i then w = string.sub(w, 1, -3) end
  return {n = tonumber(n), t = tonumber(t), w = w, i = i}
end
local function alive(st, r)
  return r ~= nil and st.now <= r.t + st.ttl
end
local function ev(n, stream)
  return 'e:' .. n .. ':' .. stream
end
local function put(t, a, b)
  t[#t + 1] = a
  t[#t + 1] = b
end
local function gone(st, stream, cost, dropped)
  redis.call('HDEL', KEYS[1], 's:' .. stream, 'w:' .. stream, 'm:' .. stream)
  redis.call('ZREM', KEYS[4], '0|' .. cost .. '|0|' .. stream)
  st.touched = true
  dropped[5] = dropped[5] + 1
end
local function load(ttl)
  local v = redis.call('HMGET', KEYS[1], 'b', 'q', 't', 's:' .. ARGV[1])
  local clock = redis.call('TIME')
  local b, q = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local slack = math.floor(ttl / 8)
  local st = {b = b, q = q, b0 = b, q0 = q, t = tonumber(v[3] or '0'), ttl = ttl, slack = slack,
    now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000),
    h = {}, z = {}, touched = false, changed = false, had = v[4] ~= false}
  st.s = rec(v[4])
  if not alive(st, st.s) then st.s = nil end
  return st
end
local function store(st)
  local f = {}
  if st.b ~= st.b0 then put(f, 'b', st.b) end
  if st.q ~= st.q0 then put(f, 'q', st.q) end
  if st.changed then put(f, 's:' .. ARGV[1], st.s.n .. ' ' .. st.s.t .. ' ' .. st.s.w .. (st.s.i and ' i' or '')) end
  for k, v in pairs(st.h) do put(f, k, v) end
  local refresh = st.touched or st.now - st.t >= math.floor(st.slack / 2)
  if refresh then put(f, 't', st.now) end
  if #st.z > 0 then redis.call('ZADD', KEYS[4], unpack(st.z)) end
  if #f > 0 then redis.call('HSET', KEYS[1], unpack(f)) end
  if refresh then
    redis.call('PEXPIRE', KEYS[1], st.ttl + st.slack)
    redis.call('PEXPIRE', KEYS[4], st.ttl + st.slack)
  end
end
local function make(st, need, budget, cost, dropped)
  local last = st.q
  while st.b + need > budget do
    local m = redis.call('ZPOPMIN', KEYS[4])
    st.touched = true
    if #m == 0 then
      st.b = 0
      break
    end
    local seq, sz, en, stream = string.match(m[1], '^(%d+)|(%d+)|(%d+)|(.*)$')
    if tonumber(m[2]) > last then
      redis.call('ZADD', KEYS[4], m[2], m[1])
      break
    end
    if en == '0' then
      local r = stream ~= ARGV[1] and rec(redis.call('HGET', KEYS[1], 's:' .. stream))
      if stream ~= ARGV[1] and (not alive(st, r) or stream ~= '' and (r.n == 0 or redis.call('HEXISTS', KEYS[1], ev(r.n, stream)) == 0) and redis.call('HEXISTS', KEYS[3], stream) == 0) then
        gone(st, stream, sz, dropped)
        st.b = st.b - tonumber(sz)
      else
        st.q = st.q + 1
        redis.call('ZADD', KEYS[4], st.q, m[1])
      end
    else
      local f = ev(en, stream)
      local v = redis.call('HGET', KEYS[1], f)
      if v and string.match(v, '^(%d+) ') == seq then
        redis.call('HDEL', KEYS[1], f)
        dropped[3] = dropped[3] + 1
        dropped[4] = dropped[4] + tonumber(sz)
        if stream ~= ARGV[1] and stream ~= '' then
          local r = rec(redis.call('HGET', KEYS[1], 's:' .. stream))
          if r and r.n == tonumber(en) and redis.call('HEXISTS', KEYS[3], stream) == 0 then
            gone(st, stream, cost, dropped)
            st.b = st.b - cost
          end
        end
      end
      st.b = st.b - tonumber(sz)
    end
  end
end
`
	// streamLua is shared by the scripts that open and append (same KEYS,
	// ARGV[1] the stream), after trimLua. fenced(epoch) says a newer
	// activation than epoch ("0": unfenced) exists. open(st, journal,
	// budget, cost, dropped) opens the stream, journalling the requests
	// answered on it (JSON, or "" for none); a new stream counts cost
	// (StreamOverhead) against the budget, making room as an append does;
	// an expired one starts again from its first event, and without a mark
	// (the standalone stream's is deleted whenever it starts, in case a
	// node that knew no marks dropped its record and left the mark).
	// append(st, maxlen,
	// data, budget, overhead, cost, dropped, write, last) appends data as the
	// stream's next event and returns its number n, or -1 for a stream
	// never opened, or expired; overhead is EventOverhead. dropped counts
	// what they dropped, as make's. write names the write (WriteID): the
	// stream's record keeps the last one, and a write of the same name, a
	// retry of one that ran (its answer lost, or its replication
	// unconfirmed), stores nothing and returns the same n. Only the last
	// write of a stream can be retried (the next waits for it), so the last
	// one is all it takes. With last set, data answers the stream's last
	// request: the stream's member moves behind it (trimLua). New members
	// of the order set wait in st.z for store's one ZADD. An empty first
	// event is implied by the record (trimLua); on a stream opened again
	// after it expired, it first deletes the old incarnation's event 1:
	// popped by the budget, that event's member would otherwise find it
	// and drop the new stream as if its last event went (make).
	streamLua = `
local function fenced(epoch)
  return epoch ~= '0' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(epoch)
end
local function open(st, journal, budget, cost, dropped)
  if not st.s then
    if not st.had then
      make(st, cost, budget, cost, dropped)
      st.q = st.q + 1
      put(st.z, st.q, '0|' .. cost .. '|0|' .. ARGV[1])
      st.b = st.b + cost
    end
    if st.had or ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'm:' .. ARGV[1]) end
    st.s = {n = 0, w = ''}
  end
  st.s.t, st.changed = st.now, true
  if journal ~= '' then
    redis.call('HSET', KEYS[3], ARGV[1], journal)
    redis.call('PEXPIRE', KEYS[3], st.ttl + st.slack)
  end
end
local function forget(st, k, why, overhead, dropped)
  if k == 1 and st.s.i then
    st.s.i, st.changed = false, true
    dropped[why] = dropped[why] + 1
    return true
  end
  local f = ev(k, ARGV[1])
  local v = redis.call('HGET', KEYS[1], f)
  if not v then return false end
  local seq = string.match(v, '^(%d+) ')
  local sz = string.len(v) - string.len(seq) - 1 + overhead
  redis.call('HDEL', KEYS[1], f)
  redis.call('ZREM', KEYS[4], seq .. '|' .. sz .. '|' .. k .. '|' .. ARGV[1])
  st.touched = true
  st.b = st.b - sz
  dropped[why] = dropped[why] + 1
  dropped[why + 1] = dropped[why + 1] + sz
  return true
end
local function append(st, maxlen, data, budget, overhead, cost, dropped, write, last)
  if not st.s then return -1 end
  if st.s.w == write then return st.s.n end
  local size = string.len(data) + overhead
  st.s.n, st.s.t, st.s.w, st.changed = st.s.n + 1, st.now, write, true
  local n = st.s.n
  if n == 1 and data == '' then
    st.s.i = true
    if st.had then redis.call('HDEL', KEYS[1], ev(1, ARGV[1])) end
  elseif size > budget then
    -- Not kept: an event n of an earlier incarnation of the stream (it
    -- expired and was opened again) must not pass for it.
    if st.had then redis.call('HDEL', KEYS[1], ev(n, ARGV[1])) end
    local k = n - 1
    while k > 0 and forget(st, k, 3, overhead, dropped) do k = k - 1 end
    dropped[3] = dropped[3] + 1
    dropped[4] = dropped[4] + size
  else
    make(st, size, budget, cost, dropped)
    st.q = st.q + 1
    st.h[ev(n, ARGV[1])] = st.q .. ' ' .. data
    put(st.z, st.q, st.q .. '|' .. size .. '|' .. n .. '|' .. ARGV[1])
    st.b = st.b + size
    if n > maxlen then forget(st, n - maxlen, 1, overhead, dropped) end
  end
  if last then
    st.q = st.q + 1
    put(st.z, st.q, '0|' .. cost .. '|0|' .. ARGV[1])
  end
  return n
end
`
	// KEYS hash, epoch, journal, order; ARGV[1] stream id, ARGV[2] ttl ms,
	// ARGV[3] the requests answered on it (JSON) or "", ARGV[4] the
	// opener's epoch ("0": unfenced), ARGV[5] the session's byte budget,
	// ARGV[6] StreamOverhead, ARGV[7] "1" to find the first event kept
	// and the mark. Returns {1, 0, 0, events and bytes dropped, streams
	// dropped, the stream's last event number, its first kept event's
	// number (1 without ARGV[7]), the number of its last event marked sent
	// (0: none, or without ARGV[7])}, or {-2} when fenced.
	openScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[4]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local st = load(tonumber(ARGV[2]))
open(st, ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6]), dropped)
store(st)
local first, mark = 1, 0
if ARGV[7] == '1' then
  mark = tonumber(redis.call('HGET', KEYS[1], 'm:' .. ARGV[1]) or '0')
  if mark > st.s.n then mark = 0 end
  -- The first event kept: kept events are the stream's last ones, without
  -- a gap (see make), so a binary search finds it.
  local lo, hi = 1, st.s.n + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if (mid == 1 and st.s.i) or redis.call('HEXISTS', KEYS[1], ev(mid, ARGV[1])) == 1 then hi = mid else lo = mid + 1 end
  end
  first = lo
end
return {1, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5], st.s.n, first, mark}`)
	// KEYS as openScript's; ARGV[1] to [6] as openScript's, ARGV[7] max
	// length, ARGV[8] data, ARGV[9] EventOverhead, ARGV[10] the write's
	// name: opens the stream and appends data as its first event (implied
	// by the record when data is empty). Returns
	// appendScript's result; run again with the same name (a retry), the
	// open changes nothing and the append stores nothing.
	openAppendScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[4]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local cost = tonumber(ARGV[6])
local st = load(tonumber(ARGV[2]))
local n
if st.s and st.s.w == ARGV[10] then
  n = st.s.n
else
  open(st, ARGV[3], tonumber(ARGV[5]), cost, dropped)
  n = append(st, tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[5]), tonumber(ARGV[9]), cost, dropped, ARGV[10], false)
end
store(st)
return {n, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5]}`)
	// KEYS as openScript's; ARGV[1] stream id, ARGV[2] ttl ms, ARGV[3] max
	// length, ARGV[4] data, ARGV[5] the writer's epoch ("0": unfenced),
	// ARGV[6] the session's byte budget, ARGV[7] EventOverhead, ARGV[8]
	// StreamOverhead, ARGV[9] "1" to drop the stream's journal entry once
	// data is in (its requests are all answered), ARGV[10] the write's
	// name. Returns {n, events and bytes dropped for the count bound,
	// events and bytes dropped for the byte bound, streams dropped}, or
	// {-1} for a stream never opened or expired, {-2} when fenced; run
	// again with the same name (a retry), it stores nothing and returns
	// the same n.
	appendScript = redis.NewScript(trimLua + streamLua + `
if fenced(ARGV[5]) then return {-2} end
local dropped = {0, 0, 0, 0, 0}
local st = load(tonumber(ARGV[2]))
local n = append(st, tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), dropped, ARGV[10], ARGV[9] == '1')
if n < 0 then return {-1} end
if ARGV[9] == '1' then redis.call('HDEL', KEYS[3], ARGV[1]) end
store(st)
return {n, dropped[1], dropped[2], dropped[3], dropped[4], dropped[5]}`)
	// KEYS epoch, journal; ARGV[1] stream id, ARGV[2] the writer's epoch
	// ("0": unfenced). Drops the stream's journal entry; returns 1, or -2
	// when fenced (nothing dropped).
	finishScript = redis.NewScript(`
if ARGV[2] ~= '0' and tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return -2 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`)
	// KEYS hash, epoch; ARGV[1] stream id, ARGV[2] ttl ms, ARGV[3] the
	// writer's epoch ("0": unfenced), ARGV[4] an event number. Raises the
	// stream's mark (trimLua) to ARGV[4], never lowering it, unless the
	// stream is unknown or expired or its last event comes before ARGV[4]
	// (the number is an earlier incarnation's: the stream expired and was
	// opened anew). It neither refreshes the stream's expiry nor sets the
	// hash's TTL (the hash exists: the stream's record is in it). Returns
	// 1, or -2 when fenced (nothing marked).
	markScript = redis.NewScript(`
if ARGV[3] ~= '0' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[3]) then return -2 end
local v = redis.call('HGET', KEYS[1], 's:' .. ARGV[1])
if not v then return 1 end
local count, t = string.match(v, '^(%d+) (%d+)')
if not count then return 1 end
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) > tonumber(t) + tonumber(ARGV[2]) then return 1 end
local n = tonumber(ARGV[4])
if n > tonumber(count) or n <= tonumber(redis.call('HGET', KEYS[1], 'm:' .. ARGV[1]) or '0') then return 1 end
redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], n)
return 1`)
	// KEYS hash; ARGV[1] index, ARGV[2] stream id, ARGV[3] ttl ms, ARGV[4]
	// and ARGV[5] the most events and bytes (of their stored values) a
	// replay reads. Returns {count, 0, data...} (the events after index),
	// {count, 1} when one of them was dropped, {count, 2} when index is
	// past the one after the stream's last event, {count, 3, events} or
	// {count, 4, bytes} when the events after index are more than ARGV[4]
	// or ARGV[5] (counted before any is read: HSTRLEN), or -1 for an
	// unknown or expired stream (see trimLua). Kept events are the
	// stream's last ones, without a gap (see make), so that the first one
	// asked for is there unless one was dropped, and then the rest are.
	afterScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 's:' .. ARGV[2])
if not v then return -1 end
local count, t = string.match(v, '^(%d+) (%d+)')
if not count then return -1 end
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) > tonumber(t) + tonumber(ARGV[3]) then return -1 end
count = tonumber(count)
if tonumber(ARGV[1]) > count then return {count, 2} end
local out = {count, 0}
local from = tonumber(ARGV[1]) + 2
if from == 1 and count >= 1 and string.sub(v, -2) == ' i' then
  out[3] = ''
  from = 2
end
if from <= count and redis.call('HEXISTS', KEYS[1], 'e:' .. from .. ':' .. ARGV[2]) == 0 then return {count, 1} end
local n = count - from + 1 + #out - 2
if n > tonumber(ARGV[4]) then return {count, 3, n} end
local size = 0
for k = from, count do size = size + redis.call('HSTRLEN', KEYS[1], 'e:' .. k .. ':' .. ARGV[2]) end
if size > tonumber(ARGV[5]) then return {count, 4, size} end
while from <= count do
  local to = math.min(count, from + 499)
  local fields = {}
  for k = from, to do table.insert(fields, 'e:' .. k .. ':' .. ARGV[2]) end
  for _, d in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
    if not d then return {count, 1} end
    table.insert(out, string.sub(d, string.find(d, ' ', 1, true) + 1))
  end
  from = to + 1
end
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
	_, _, _, err := r.open(ctx, session, stream, epoch, ids, false)
	return err
}

// OpenLast implements Events.
func (r *RedisEvents) OpenLast(ctx context.Context, session, stream string, epoch int64) (first, last, sent int, err error) {
	return r.open(ctx, session, stream, epoch, nil, true)
}

// MarkSent implements Events: one script, which changes nothing else.
func (r *RedisEvents) MarkSent(ctx context.Context, session, stream string, epoch int64, index int) error {
	keys := r.keys(session)
	res, err := r.w.run(ctx, markScript, keys[:2], stream, r.opts.TTL.Milliseconds(), epoch, index+1).Int64()
	if err != nil {
		return fmt.Errorf("mark events sent: %w", err)
	}
	if res == -2 {
		return fmt.Errorf("mark events sent: %w", ErrFenced)
	}
	return nil
}

// open is OpenFor; with span, it returns the indexes of the stream's first
// kept and last events, and of its last event marked sent.
func (r *RedisEvents) open(ctx context.Context, session, stream string, epoch int64, ids []json.RawMessage, span bool) (first, last, sent int, err error) {
	journal, err := encodeIDs(ids)
	if err != nil {
		return 0, 0, 0, err
	}
	want := "0"
	if span {
		want = "1"
	}
	res, err := r.w.run(ctx, openScript, r.keys(session), stream, r.opts.TTL.Milliseconds(), journal, epoch,
		r.opts.MaxBytes, StreamOverhead, want).Int64Slice()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open event stream: %w", err)
	}
	if res[0] == -2 {
		return 0, 0, 0, fmt.Errorf("open event stream: %w", ErrFenced)
	}
	trimmedAll(res)
	return int(res[7]) - 1, int(res[6]) - 1, int(res[8]) - 1, nil
}

// trimmedAll counts what a script's result {n, count bound's events and
// bytes, byte bound's events and bytes, streams, then the open's own} says
// it dropped.
func trimmedAll(res []int64) {
	if len(res) >= 6 {
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
	res, err := r.w.run(ctx, appendScript, r.keys(session), stream, r.opts.TTL.Milliseconds(), r.opts.MaxLen,
		r.seal(session, stream, data), epoch, r.opts.MaxBytes, EventOverhead, StreamOverhead, flag, write.orNew()).Int64Slice()
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
	res, err := r.w.run(ctx, openAppendScript, r.keys(session), stream, r.opts.TTL.Milliseconds(), journal, epoch,
		r.opts.MaxBytes, StreamOverhead, r.opts.MaxLen, r.seal(session, stream, data), EventOverhead, write.orNew()).Int64Slice()
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
	keys := r.keys(session)
	res, err := r.w.run(ctx, finishScript, []string{keys[1], keys[2]}, stream, epoch).Int64()
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
	all, err := redisread.HGetAll(ctx, r.client, "request journal", r.keys(session)[2], r.opts.JournalEntries, r.opts.JournalEntries*journalEntryBytes)
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

// journalEntryBytes is what each entry of a session's request journal may
// take as a node reads it (PendingRequests, at each activation; entries
// are bounded by EventOptions.JournalEntries): the ids of one POST (at
// most --max-batch, 16 by default, each of at most rpcbody.MaxIDBytes:
// about 4 KiB). A larger journal was not written by pingmcp: it is refused
// unread (*TooLarge), as unreadable, and expires with the session's
// events.
const journalEntryBytes = 4 << 10

// replayBounds are the most events, and bytes of them, that one replay
// (After) reads: twice the larger of the stream's bound (MaxLen) and its
// default, and of the session's (MaxBytes) and its default
// (redisread.Bound). The events kept after an index are within the
// bounds of the node that wrote them, so more were not written by
// pingmcp: the replay fails (*TooLarge), as one of dropped events does,
// and nothing of them is sent to the node.
func (r *RedisEvents) replayBounds() (events, bytes int64) {
	return redisread.Bound(r.opts.MaxLen, DefaultEventsMaxLen), redisread.Bound(r.opts.MaxBytes, DefaultEventsMaxBytes)
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
// mcp.ErrEventsPurged at once if any of them was dropped, or *TooLarge if
// they are more than a replay reads (replayBounds).
func (r *RedisEvents) After(ctx context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		key := r.keys(session)[0]
		maxEvents, maxBytes := r.replayBounds()
		res, err := afterScript.Run(ctx, r.client, []string{key}, index, stream, r.opts.TTL.Milliseconds(), maxEvents, maxBytes).Result()
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
		switch purged, _ := out[1].(int64); purged {
		case 1:
			yield(nil, fmt.Errorf("replay events after %d of stream %q: %w", index, stream, mcp.ErrEventsPurged))
			return
		case 2:
			yield(nil, beyondEnd(index, stream, out[0]))
			return
		case 3, 4:
			big := &TooLarge{What: fmt.Sprintf("replay of event stream %q", stream), Key: key, Limit: maxEvents, Unit: "events"}
			if purged == 4 {
				big.Limit, big.Unit = maxBytes, "bytes"
			}
			if len(out) > 2 {
				big.Size, _ = out[2].(int64)
			}
			yield(nil, fmt.Errorf("replay events: %w", big))
			return
		}
		for i, d := range out[2:] {
			s, _ := d.(string)
			data := []byte(s)
			if n := index + 1 + i; r.sealer != nil && (len(data) > 0 || n > 0) {
				// Only a stream's first event (the SDK's priming event)
				// is stored empty, unsealed: an empty one after it was
				// not stored by pingmcp, and the SDK would leave it out
				// of the stream without a word.
				var err error
				if data, err = r.sealer.OpenBytes(data, eventContext(session, stream)); err != nil {
					yield(nil, fmt.Errorf("replay events of stream %q: its event %d does not open (not sealed, sealed under a key no longer in --state-keys, or changed in the store): %w", stream, n, err))
					return
				}
			}
			if !yield(data, nil) {
				return
			}
		}
	}
}

// SessionClosed implements mcp.EventStore: the session's streams go.
func (r *RedisEvents) SessionClosed(ctx context.Context, session string) error {
	keys := r.keys(session)
	if err := r.client.Unlink(ctx, keys[0], keys[2], keys[3]).Err(); err != nil {
		return fmt.Errorf("close session events: %w", err)
	}
	return nil
}

// SetReplication makes every write of the store wait for rep's replicas
// before it is confirmed (Replication).
func (r *RedisEvents) SetReplication(rep Replication) { r.w.Replication = rep }
