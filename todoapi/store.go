package todoapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Todo is one item of a user's list, in the shape the API answers with. The
// field names are the demo's (id, text, completed) plus createdAt, which
// orders the list now that ids are random.
type Todo struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Completed bool      `json:"completed"`
	CreatedAt time.Time `json:"createdAt"`
}

// Errors a Store returns for the cases the API answers differently.
var (
	// ErrNotFound: the user has no todo with that id (whether or not
	// another user has one).
	ErrNotFound = errors.New("todo not found")
	// ErrListFull: the user's list already holds the most todos allowed.
	ErrListFull = errors.New("todo list is full")
	// ErrExists: Create found a todo with that id in the user's list.
	ErrExists = errors.New("a todo with this id exists")
)

// Store keeps every user's todo list. user is an opaque key (the API passes
// a hash of issuer and subject); any string must be safe, and two different
// keys must never reach the same list.
//
// Each mutation is atomic with respect to every other call on the same user:
// no concurrent write is lost, the bound of Create holds under concurrency,
// and the list a mutation returns is the user's list right after that
// mutation. Lists are returned in no particular order; the caller sorts.
type Store interface {
	// List returns the user's todos (an empty list for an unknown user).
	List(ctx context.Context, user string) ([]Todo, error)
	// Create adds todo to the user's list, unless the list already holds
	// limit todos (ErrListFull). It never replaces a todo with the same id:
	// that is ErrExists.
	Create(ctx context.Context, user string, todo Todo, limit int) ([]Todo, error)
	// SetCompleted sets the completed flag of the user's todo id
	// (ErrNotFound if the user has none).
	SetCompleted(ctx context.Context, user, id string, completed bool) ([]Todo, error)
	// Delete removes the user's todo id (ErrNotFound if the user has none).
	Delete(ctx context.Context, user, id string) ([]Todo, error)
}

// MemoryStore is a Store in this process's memory: the default, for one node
// and for `pingmcp dev`. The zero value is an empty store.
type MemoryStore struct {
	mu    sync.Mutex
	lists map[string]map[string]Todo
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{}
}

func (s *MemoryStore) List(ctx context.Context, user string) ([]Todo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot(user), nil
}

func (s *MemoryStore) Create(ctx context.Context, user string, todo Todo, limit int) ([]Todo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lists == nil {
		s.lists = make(map[string]map[string]Todo)
	}
	list := s.lists[user]
	if _, dup := list[todo.ID]; dup {
		return nil, fmt.Errorf("create todo %s: %w", todo.ID, ErrExists)
	}
	if len(list) >= limit {
		return nil, ErrListFull
	}
	if list == nil {
		list = make(map[string]Todo)
		s.lists[user] = list
	}
	list[todo.ID] = todo
	return s.snapshot(user), nil
}

func (s *MemoryStore) SetCompleted(ctx context.Context, user, id string, completed bool) ([]Todo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	todo, ok := s.lists[user][id]
	if !ok {
		return nil, ErrNotFound
	}
	todo.Completed = completed
	s.lists[user][id] = todo
	return s.snapshot(user), nil
}

func (s *MemoryStore) Delete(ctx context.Context, user, id string) ([]Todo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.lists[user]
	if _, ok := list[id]; !ok {
		return nil, ErrNotFound
	}
	delete(list, id)
	if len(list) == 0 {
		delete(s.lists, user)
	}
	return s.snapshot(user), nil
}

// snapshot copies the user's list; s.mu must be held.
func (s *MemoryStore) snapshot(user string) []Todo {
	list := s.lists[user]
	out := make([]Todo, 0, len(list))
	for _, t := range list {
		out = append(out, t)
	}
	return out
}
