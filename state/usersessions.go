package state

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redisread"
	"github.com/pingmcp/pingmcp/internal/redisscan"
)

// UserSessions count each user's sessions, for --max-sessions-per-user,
// wherever they were created: in Redis for a cluster, so that the cap holds
// across edges and nodes. A session counts from its creation until it ends
// (Release) or has been idle for ttl, the session idle timeout, after which
// its snapshot is gone too; Touch keeps an active session counted. Users
// are named by a key (auth.Principal.UserKey), never by their identifiers.
type UserSessions interface {
	// Claim counts session as one of user's, unless user already has max
	// others: then ok is false, and retry says when the least recently
	// active of them expires if idle until then (zero when ttl is zero).
	// The count and the add are one atomic step, so that two nodes
	// creating sessions of one user at once cannot both pass at max-1. A
	// session already counted is refreshed and admitted.
	Claim(ctx context.Context, user, session string, max int, ttl time.Duration) (ok bool, retry time.Duration, err error)
	// Touch marks a counted session active now; one no longer counted
	// (ended meanwhile) is not counted again.
	Touch(ctx context.Context, user, session string, ttl time.Duration) error
	// Release stops counting session, which ended.
	Release(ctx context.Context, user, session string) error
	// Sessions are the sessions counted under user, those idle for the
	// ttl perhaps among them: so that a revocation finds the user's
	// sessions whose snapshots cannot say whose they are. max is the cap
	// the sessions are counted under (what a Claim was given): the store
	// reads at most twice as many, and at least minSessionsRead (nodes
	// configured apart, a cap lowered since), and refuses more as
	// unreadable (*TooLarge).
	Sessions(ctx context.Context, user string, max int) ([]string, error)
	// Forget stops counting session whichever user's it is: for a session
	// that ended whose user cannot be known (its snapshot cannot be read).
	// It looks at every user's count: as costly as a listing of them all.
	Forget(ctx context.Context, session string) error
}

// RedisUserSessions keep per user a sorted set of session ids scored by
// their last activity (Redis server time, in ms, so that nodes' clocks do
// not matter), expiring with the newest of them.
type RedisUserSessions struct {
	client redis.UniversalClient
	w      writer
	prefix string
	what   string // "sessions" or "tasks": the sets' names
}

// NewRedisUserSessions keeps the sets under prefix+"user:{key}:sessions".
func NewRedisUserSessions(client redis.UniversalClient, prefix string) *RedisUserSessions {
	if prefix == "" {
		prefix = "pingmcp:"
	}
	return &RedisUserSessions{client: client, w: newWriter(client), prefix: prefix, what: "sessions"}
}

// NewRedisUserTasks counts each user's live tasks (--max-tasks-per-user) as
// NewRedisUserSessions counts sessions, by task id, under
// prefix+"user:{key}:tasks": the user's hash tag, whatever client (and
// actor) owns the task, so one atomic script counts them all.
func NewRedisUserTasks(client redis.UniversalClient, prefix string) *RedisUserSessions {
	r := NewRedisUserSessions(client, prefix)
	r.what = "tasks"
	return r
}

func (r *RedisUserSessions) key(user string) string {
	return r.prefix + "user:{" + user + "}:" + r.what
}

var (
	// KEYS set; ARGV[1] session, ARGV[2] max, ARGV[3] ttl ms (0: never).
	// Returns {1, 0} when counted, {0, ms until the oldest expires}.
	claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl)) end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
  return {1, 0}
end
if ttl == 0 then return {0, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + ttl - now}`)
	// KEYS set; ARGV[1] session, ARGV[2] ttl ms.
	touchScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 1 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1`)
)

func (r *RedisUserSessions) Claim(ctx context.Context, user, session string, max int, ttl time.Duration) (bool, time.Duration, error) {
	res, err := r.w.run(ctx, claimScript, []string{r.key(user)}, session, max, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("count the user's sessions: %w", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

func (r *RedisUserSessions) Touch(ctx context.Context, user, session string, ttl time.Duration) error {
	if err := r.w.run(ctx, touchScript, []string{r.key(user)}, session, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("mark the user's session active: %w", err)
	}
	return nil
}

func (r *RedisUserSessions) Release(ctx context.Context, user, session string) error {
	if err := r.client.ZRem(ctx, r.key(user), session).Err(); err != nil {
		return fmt.Errorf("uncount the user's session: %w", err)
	}
	return nil
}

// maxMemberBytes bounds a member of a user's count as Sessions reads it:
// a session id is 22 bytes, a task's owner and id 45. A longer one was not
// written by pingmcp. minSessionsRead is the fewest members Sessions reads
// whatever the cap (twice the default --max-sessions-per-user, 100, and
// more): at most 256 KiB.
const (
	maxMemberBytes  = 256
	minSessionsRead = 1000
)

func (r *RedisUserSessions) Sessions(ctx context.Context, user string, max int) ([]string, error) {
	bound := redisread.Bound(int64(max), minSessionsRead/2)
	zs, err := redisread.ZRangeWithScores(ctx, r.client, "user's "+r.what, r.key(user), bound, bound*maxMemberBytes)
	if err != nil {
		return nil, fmt.Errorf("read the user's %s: %w", r.what, err)
	}
	out := make([]string, 0, len(zs))
	for _, z := range zs {
		if m, ok := z.Member.(string); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// forgetPage is how many users' counts Forget scans at a time.
const forgetPage = 1000

// Forget scans every user's count (redisscan: shard after shard of a
// Redis Cluster), a page at a time, and removes session from each, one
// pipeline a page.
func (r *RedisUserSessions) Forget(ctx context.Context, session string) error {
	cursor := ""
	for {
		keys, next, err := redisscan.Page(ctx, r.client, r.prefix+"user:{*}:"+r.what, cursor, forgetPage)
		if err != nil {
			return fmt.Errorf("uncount an ended session: %w", err)
		}
		if len(keys) > 0 {
			pipe := r.client.Pipeline()
			for _, k := range keys {
				pipe.ZRem(ctx, k, session)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("uncount an ended session: %w", err)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// MemoryUserSessions count sessions in this process: the embedded default
// of a single node. Sessions idle for the ttl are forgotten when their user
// claims another, and all of them by a sweep of the whole table at most
// once a ttl (on any Claim, Touch or Release), so that users who never come
// back do not stay: the table holds the users active within two ttls.
type MemoryUserSessions struct {
	Now func() time.Time // default time.Now

	mu    sync.Mutex
	users map[string]map[string]time.Time // user → session → last active
	ttl   time.Duration                   // the last one given (Release is given none)
	swept time.Time                       // the last sweep
}

// sweep forgets every user's idle sessions, if the last sweep is a ttl
// ago. Requires mu.
func (m *MemoryUserSessions) sweep(ttl time.Duration, now time.Time) {
	m.ttl = ttl
	if ttl <= 0 || now.Sub(m.swept) < ttl {
		return
	}
	m.swept = now
	for user := range m.users {
		m.live(user, ttl, now)
	}
}

func (m *MemoryUserSessions) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// live returns user's sessions, forgetting those idle for ttl. Requires mu.
func (m *MemoryUserSessions) live(user string, ttl time.Duration, now time.Time) map[string]time.Time {
	s := m.users[user]
	for id, active := range s {
		if ttl > 0 && now.Sub(active) > ttl {
			delete(s, id)
		}
	}
	if len(s) == 0 {
		delete(m.users, user)
		return nil
	}
	return s
}

func (m *MemoryUserSessions) Claim(_ context.Context, user, session string, max int, ttl time.Duration) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(ttl, now)
	s := m.live(user, ttl, now)
	if _, ok := s[session]; ok || len(s) < max {
		if s == nil {
			if m.users == nil {
				m.users = map[string]map[string]time.Time{}
			}
			s = map[string]time.Time{}
			m.users[user] = s
		}
		s[session] = now
		return true, 0, nil
	}
	if ttl == 0 {
		return false, 0, nil
	}
	oldest := now
	for _, active := range s {
		if active.Before(oldest) {
			oldest = active
		}
	}
	return false, oldest.Add(ttl).Sub(now), nil
}

func (m *MemoryUserSessions) Touch(_ context.Context, user, session string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(ttl, now)
	if _, ok := m.users[user][session]; ok {
		m.users[user][session] = now
	}
	return nil
}

func (m *MemoryUserSessions) Release(_ context.Context, user, session string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(m.ttl, m.now())
	if s := m.users[user]; s != nil {
		delete(s, session)
		if len(s) == 0 {
			delete(m.users, user)
		}
	}
	return nil
}

func (m *MemoryUserSessions) Sessions(_ context.Context, user string, _ int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.users[user] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

func (m *MemoryUserSessions) Forget(_ context.Context, session string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for user, s := range m.users {
		delete(s, session)
		if len(s) == 0 {
			delete(m.users, user)
		}
	}
	return nil
}

// SetReplication makes every write of the store wait for rep's replicas
// before it is confirmed (Replication).
func (r *RedisUserSessions) SetReplication(rep Replication) { r.w.Replication = rep }
