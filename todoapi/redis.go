package todoapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, for a cluster of nodes: one hash per user
// (field: todo id, value: the todo as JSON). Every mutation is one Lua script,
// so it is atomic in Redis and no read-modify-write happens in Go.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
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
// user's whole list after the change, or a single failure status.
var (
	createScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'duplicate'} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {'full'} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
	setCompletedScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {'missing'} end
local todo = cjson.decode(v)
todo['completed'] = (ARGV[2] == '1')
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(todo))
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
	deleteScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return {'missing'} end
local all = redis.call('HVALS', KEYS[1])
table.insert(all, 1, 'ok')
return all
`)
)

func (s *RedisStore) List(ctx context.Context, user string) ([]Todo, error) {
	vals, err := s.client.HVals(ctx, s.key(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("list todos in redis: %w", err)
	}
	return decodeTodos(vals)
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
	reply, err := script.Run(ctx, s.client, []string{s.key(user)}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%s in redis: %w", what, err)
	}
	if len(reply) == 0 {
		return nil, fmt.Errorf("%s in redis: empty reply", what)
	}
	switch reply[0] {
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
