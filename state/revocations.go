package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redisread"
)

// Revocation refuses a user's tokens issued at or before At, until Until.
type Revocation struct {
	At    time.Time `json:"at"`
	Until time.Time `json:"until"`
}

// Revocations are the users an operator revoked, shared by every node.
// Keys are "issuer\x00subject".
type Revocations interface {
	// Revoke records r for key, merged with the revocation already there:
	// r's time, and the later end of the two, so that revoking again never
	// shortens a revocation. It refuses a key longer than
	// MaxRevocationKey, and (ErrRevocationsFull) a new user once as many
	// are revoked and in force as a store reads: recorded, either would
	// make every node refuse the whole list, and stop learning of
	// revocations.
	Revoke(ctx context.Context, key string, r Revocation) error
	// All returns the revocations still in force; *TooLarge when they are
	// more than a store reads (RedisRevocations: maxRevocations,
	// maxRevocationBytes).
	All(ctx context.Context) (map[string]Revocation, error)
}

// merge is the revocation that holds once next is recorded over r: next's
// time, and the later end of the two.
func (r Revocation) merge(next Revocation) Revocation {
	if r.Until.After(next.Until) {
		next.Until = r.Until
	}
	return next
}

// RevocationKey is the key of a user's revocation.
func RevocationKey(issuer, subject string) string { return issuer + "\x00" + subject }

// RedisRevocations keeps revocations in one Redis hash.
type RedisRevocations struct {
	client redis.UniversalClient
	w      writer
	key    string
	purged atomic.Int64 // when All last purged (Unix ns; purgeDue)
}

// checkRevocationKey refuses a key over MaxRevocationKey, in every store.
func checkRevocationKey(key string) error {
	if len(key) > MaxRevocationKey {
		return fmt.Errorf("revoke: a user's issuer and subject take %d bytes, over %d", len(key), MaxRevocationKey)
	}
	return nil
}

// purgeEvery is how often, at most, All purges a list past its bound.
const purgeEvery = time.Minute

// purgeDue says whether All may purge now, and notes that it does.
func (r *RedisRevocations) purgeDue() bool {
	now, last := time.Now().UnixNano(), r.purged.Load()
	return now-last >= int64(purgeEvery) && r.purged.CompareAndSwap(last, now)
}

// NewRedisRevocations keeps revocations under prefix+"revocations".
func NewRedisRevocations(client redis.UniversalClient, prefix string) *RedisRevocations {
	if prefix == "" {
		prefix = "pingmcp:"
	}
	return &RedisRevocations{client: client, w: newWriter(client), key: prefix + "revocations"}
}

// redisRevocation is a revocation as Redis keeps it: its end in Unix
// milliseconds too, which revokeScript compares.
type redisRevocation struct {
	Revocation
	UntilMS int64 `json:"until_ms"`
}

// purgeLua defines purge(key): it drops the fields of hash key that are
// no revocation in force, those that ended (until_ms past Redis's clock)
// and those that do not decode, as All does with what it reads; a record
// without until_ms (written before it existed) stays.
const purgeLua = `
local function purge(key)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', key, cursor, 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do
      local ok, o = pcall(cjson.decode, page[2][i + 1])
      if not ok or type(o) ~= 'table' or (tonumber(o.until_ms) and tonumber(o.until_ms) <= now) then
        redis.call('HDEL', key, page[2][i])
      end
    end
  until cursor == '0'
end
`

// purgeScript drops from hash KEYS[1] what is no revocation in force
// (purgeLua), and returns how many fields are left.
var purgeScript = redis.NewScript(purgeLua + `
purge(KEYS[1])
return redis.call('HLEN', KEYS[1])
`)

// ErrRevocationsFull is Revoke's refusal of a revocation the store would
// not read back (see Revoke).
var ErrRevocationsFull = errors.New("the revocations in force are as many as a node reads")

// MaxRevocationKey bounds a revocation's key (its user's issuer and
// subject), so that the revocations a store reads (maxRevocations) stay
// within the bytes it reads (maxRevocationBytes) as their number does.
const MaxRevocationKey = 512

// revokeScript records ARGV[2], a redisRevocation, in field ARGV[1] of hash
// KEYS[1], keeping the end of the revocation already there if it is later
// (Revocation.merge, in one step). A record without until_ms (written
// before it existed) is replaced. A new field, with ARGV[4] fields there
// already, is recorded only once those that ended (until_ms past Redis's
// clock) are dropped and leave room: else it returns -1, changing nothing
// more.
var revokeScript = redis.NewScript(purgeLua + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  purge(KEYS[1])
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
    return -1
  end
end
local new = ARGV[2]
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, o = pcall(cjson.decode, old)
  if ok and type(o) == 'table' and tonumber(o.until_ms) and tonumber(o.until_ms) > tonumber(ARGV[3]) then
    local n = cjson.decode(new)
    n['until'] = o['until']
    n['until_ms'] = o['until_ms']
    new = cjson.encode(n)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], new)
return 1
`)

func (r *RedisRevocations) Revoke(ctx context.Context, key string, rev Revocation) error {
	if err := checkRevocationKey(key); err != nil {
		return err
	}
	ms := rev.Until.UnixMilli()
	b, _ := json.Marshal(redisRevocation{Revocation: rev, UntilMS: ms})
	n, err := r.w.run(ctx, revokeScript, []string{r.key}, key, b, ms, maxRevocations).Int64()
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if n < 0 {
		return fmt.Errorf("revoke: %d users are revoked and in force: %w", maxRevocations, ErrRevocationsFull)
	}
	return nil
}

// The bounds of the revocations as a node reads them (All, every
// revocationRefresh on every node): a revocation is a field of about 100
// bytes besides its user's issuer and subject, and lasts at most 30 days
// (the admin API's longest), so 100,000 users revoked at once, far more
// than operators revoke, take about 20 MB (61 MiB with every issuer and
// subject at MaxRevocationKey). More was not written by pingmcp (Revoke
// refuses beyond): refused unread (*TooLarge), as unreadable, and the
// nodes keep the revocations they last read (RevocationCache).
const (
	maxRevocations     = 100_000
	maxRevocationBytes = maxRevocations * (MaxRevocationKey + 128) // a record is ~100 bytes
)

func (r *RedisRevocations) All(ctx context.Context) (map[string]Revocation, error) {
	all, err := redisread.HGetAll(ctx, r.client, "revocations", r.key, maxRevocations, maxRevocationBytes)
	var big *TooLarge
	if errors.As(err, &big) && big.Unit == "entries" && r.purgeDue() {
		// Past the bound in number (an older node's writes, or ones
		// that ended while it was), what ended, or is no revocation,
		// goes first, in Redis, and the list is read again: else it
		// stayed refused for good, since only a read drops what ended.
		// At most once a minute per node: a list in force past the bound
		// is refused without a scan of it every refresh. (Past the bytes
		// bound, each record of pingmcp's being bounded, is not pingmcp's
		// doing.)
		if perr := r.w.run(ctx, purgeScript, []string{r.key}).Err(); perr == nil {
			all, err = redisread.HGetAll(ctx, r.client, "revocations", r.key, maxRevocations, maxRevocationBytes)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	out := map[string]Revocation{}
	now := time.Now()
	var over []string
	for k, v := range all {
		var rev Revocation
		if json.Unmarshal([]byte(v), &rev) != nil || !now.Before(rev.Until) {
			over = append(over, k)
			continue
		}
		out[k] = rev
	}
	if len(over) > 0 {
		r.client.HDel(ctx, r.key, over...) // best effort: they are ignored anyway
	}
	return out, nil
}

// MemoryRevocations keeps revocations in this process.
type MemoryRevocations struct {
	mu  sync.Mutex
	all map[string]Revocation
}

func (m *MemoryRevocations) Revoke(_ context.Context, key string, rev Revocation) error {
	if err := checkRevocationKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.all == nil {
		m.all = map[string]Revocation{}
	}
	m.all[key] = m.all[key].merge(rev)
	return nil
}

func (m *MemoryRevocations) All(context.Context) (map[string]Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]Revocation{}
	now := time.Now()
	for k, rev := range m.all {
		if now.Before(rev.Until) {
			out[k] = rev
		} else {
			delete(m.all, k)
		}
	}
	return out, nil
}

// RevocationCache is a node's copy of the revocations, refreshed every
// interval, so that checking a request costs no round trip: a revocation
// reaches every node within one interval.
type RevocationCache struct {
	src      Revocations
	interval time.Duration

	mu  sync.RWMutex
	all map[string]Revocation
	// refused is set while the store's revocations are refused for their
	// size (ErrTooLarge): said once in the log, until they are read again.
	refused bool
}

// NewRevocationCache returns a cache of src; Run keeps it fresh.
func NewRevocationCache(src Revocations, interval time.Duration) *RevocationCache {
	return &RevocationCache{src: src, interval: interval}
}

// Run refreshes the cache until ctx is done.
func (c *RevocationCache) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reloads the cache now; on error the previous copy stays. A
// store whose revocations are refused for their size (ErrTooLarge) is
// said in the log (slog.Default) as an error, once until they are read
// again: new revocations reach no node meanwhile.
func (c *RevocationCache) Refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, c.interval)
	defer cancel()
	all, err := c.src.All(rctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.all, c.refused = all, false
		return
	}
	if errors.Is(err, ErrTooLarge) && !c.refused {
		c.refused = true
		slog.Default().Error("the revocations in the store are refused: they are larger than pingmcp writes; the ones read last stay in force, and new ones reach no node until the store's are read again", "err", err)
	}
}

// Revoked says whether a token of issuer/subject issued at iat is refused
// now. A token without iat counts as issued before any revocation.
func (c *RevocationCache) Revoked(issuer, subject string, iat time.Time) bool {
	c.mu.RLock()
	rev, ok := c.all[RevocationKey(issuer, subject)]
	c.mu.RUnlock()
	return ok && time.Now().Before(rev.Until) && !iat.After(rev.At)
}

// SetReplication makes every write of the store wait for rep's replicas
// before it is confirmed (Replication).
func (r *RedisRevocations) SetReplication(rep Replication) { r.w.Replication = rep }
