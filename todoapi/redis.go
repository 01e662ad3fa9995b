package todoapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redisread"
)

// RedisStore is a Store in Redis, for a cluster of nodes: one hash per user
// (field: todo id, value: the todo as JSON). Every mutation is one Lua script,
// so it is atomic in Redis and no read-modify-write happens in Go.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
	// maxTodos and maxTextRunes are the API's bounds (setBounds), whence
	// what the store reads (readBounds).
	maxTodos, maxTextRunes int
}

// setBounds tells the store the API's bounds of a list and of a todo's
// text (Options.MaxTodos, MaxTextRunes), whence what it reads.
func (s *RedisStore) setBounds(maxTodos, maxTextRunes int) {
	s.maxTodos, s.maxTextRunes = maxTodos, maxTextRunes
}

// readBounds are the most todos, and bytes of them (ids and JSON), that
// the store reads of a list: twice the larger of the API's bound and its
// default; a todo's JSON takes at most 6 bytes a rune of its text (a
// character JSON escapes as \u00XX) and 512 for the rest. A larger list
// was not written by the API (a writer of Redis, or a bug): refused in
// Redis, unread (*redisread.TooLarge), and the call fails as the store
// does (500), changing nothing.
func (s *RedisStore) readBounds() (todos, bytes int64) {
	todos = redisread.Bound(int64(s.maxTodos), DefaultMaxTodos)
	return todos, todos * (6*max(int64(s.maxTextRunes), DefaultMaxTextRunes) + 512)
}

// NewRedisStore returns a store keeping its hashes under prefix (default
// "todoapi:"). A user's key is prefix + "user:" + a SHA-256 of the user key,
// so user keys of any content can neither collide nor inject key syntax.
func NewRedisStore(client redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "todoapi:"
	}
	return &RedisStore{client: client, prefix: prefix}
}

func (s *RedisStore) key(user string) string {
	sum := sha256.Sum256([]byte(user))
	return s.prefix + "user:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Each script answers {status, todo JSON...}: status "ok" followed by the
// user's whole list after the change, or a single failure status; or
// {"over", unit, size} when the list is over the read bounds (the last
// two ARGV: todos, bytes), before anything changed.
var (
	listScript = redis.NewScript(redisread.HashLua + `
local over = hashover(KEYS[1], tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV]))
if over then return {'over', over[1], tostring(over[2])} end
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
	createScript = redis.NewScript(redisread.HashLua + `
local over = hashover(KEYS[1], tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV]))
if over then return {'over', over[1], tostring(over[2])} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'duplicate'} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {'full'} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
	setCompletedScript = redis.NewScript(redisread.HashLua + `
local over = hashover(KEYS[1], tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV]))
if over then return {'over', over[1], tostring(over[2])} end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {'missing'} end
local todo = cjson.decode(v)
todo['completed'] = (ARGV[2] == '1')
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(todo))
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
	deleteScript = redis.NewScript(redisread.HashLua + `
local over = hashover(KEYS[1], tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV]))
if over then return {'over', over[1], tostring(over[2])} end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return {'missing'} end
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
)

func (s *RedisStore) List(ctx context.Context, user string) ([]Todo, error) {
	return s.run(ctx, "list todos", listScript, user)
}

func (s *RedisStore) Create(ctx context.Context, user string, todo Todo, limit int) ([]Todo, error) {
	value, err := json.Marshal(todo)
	if err != nil {
		return nil, fmt.Errorf("create todo: %w", err)
	}
	return s.run(ctx, "create todo", createScript, user, todo.ID, value, strconv.Itoa(limit))
}

func (s *RedisStore) SetCompleted(ctx context.Context, user, id string, completed bool) ([]Todo, error) {
	flag := "0"
	if completed {
		flag = "1"
	}
	return s.run(ctx, "update todo", setCompletedScript, user, id, flag)
}

func (s *RedisStore) Delete(ctx context.Context, user, id string) ([]Todo, error) {
	return s.run(ctx, "delete todo", deleteScript, user, id)
}

func (s *RedisStore) run(ctx context.Context, what string, script *redis.Script, user string, args ...any) ([]Todo, error) {
	key := s.key(user)
	todos, bytes := s.readBounds()
	reply, err := script.Run(ctx, s.client, []string{key}, append(args, todos, bytes)...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%s in redis: %w", what, err)
	}
	if len(reply) == 0 {
		return nil, fmt.Errorf("%s in redis: empty reply", what)
	}
	switch reply[0] {
	case "over":
		big := &redisread.TooLarge{What: "todo list", Key: key, Limit: todos, Unit: "todos"}
		if len(reply) == 3 {
			if reply[1] == "bytes" {
				big.Limit, big.Unit = bytes, "bytes"
			}
			big.Size, _ = strconv.ParseInt(reply[2], 10, 64)
		}
		return nil, fmt.Errorf("%s in redis: %w", what, big)
	case "ok":
		return decodeTodos(reply[1:])
	case "missing":
		return nil, ErrNotFound
	case "full":
		return nil, ErrListFull
	case "duplicate":
		return nil, fmt.Errorf("%s in redis: todo %s: %w", what, args[0], ErrExists)
	}
	return nil, fmt.Errorf("%s in redis: unexpected status %q", what, reply[0])
}

func decodeTodos(vals []string) ([]Todo, error) {
	out := make([]Todo, 0, len(vals))
	for _, v := range vals {
		var t Todo
		if err := json.Unmarshal([]byte(v), &t); err != nil {
			return nil, fmt.Errorf("decode stored todo: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}
