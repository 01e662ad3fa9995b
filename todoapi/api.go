// Package todoapi is the downstream demo API: the Todo API of Ping's
// Cloudflare demo, made safe. It owns the HTTP contract (GET/POST
// /api/todos, PATCH/DELETE /api/todos/{id}, each answering the caller's list
// as far as the token may read it: whole with todo_api:read, else only the
// todo written), its OpenAPI document (openapi.yaml, served at
// /openapi.yaml), the checks a resource server makes on the token presented to it
// (audience, scope per route, the RFC 8693 "act" claim of a delegated token),
// input validation, and the per-user stores (memory, Redis). Verifying a
// token's signature and claims is left to package auth; running it as a
// process (`pingmcp todo-api`, `pingmcp dev`) is left to cmd.
package todoapi

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/auth"
)

// Scopes the routes need: reading the list, and changing it.
const (
	ScopeRead  = "todo_api:read"
	ScopeWrite = "todo_api:write"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 16 << 10
	DefaultMaxTodos     = 1000
	DefaultMaxTextRunes = 500
)

// Options configure the API. Only Verifier is required; every other zero
// value means the default.
type Options struct {
	// Verifier checks bearer tokens. In production: auth.NewJWTVerifier with
	// this API's own audience and the issuer's discovered JWKS.
	Verifier auth.Verifier
	// AllowUndelegated accepts tokens without an RFC 8693 "act" claim. By
	// default they are refused (403): the API serves only tokens minted for
	// a delegate by token exchange, never a user's own token.
	AllowUndelegated bool
	// AllowedActors, when set, are the only actor subjects ("act.sub", the
	// current actor) whose delegated tokens are accepted.
	AllowedActors []string
	// Store keeps the lists (default: a new MemoryStore).
	Store Store
	// Logger (default slog.Default()). Token values are never logged.
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body (default 16 KiB; more is 413).
	MaxBodyBytes int64
	// MaxTodos bounds one user's list (default 1000; more is 409).
	MaxTodos int
	// MaxTextRunes bounds a todo's text, after trimming (default 500).
	MaxTextRunes int
	// Now is the clock that dates new todos (default time.Now).
	Now func() time.Time
}

// bounded is a store whose reads follow the API's bounds (RedisStore).
type bounded interface {
	setBounds(maxTodos, maxTextRunes int)
}

// API serves the Todo API. It is an http.Handler for the paths /api/todos
// and /api/todos/{id}, and its OpenAPI document at DocumentPath; anything
// else is 404.
type API struct {
	opts Options
	log  *slog.Logger
}

// New returns the API; it fails only on unusable options.
func New(opts Options) (*API, error) {
	if opts.Verifier == nil {
		return nil, errors.New("todoapi: Options.Verifier is required")
	}
	if opts.MaxBodyBytes < 0 || opts.MaxTodos < 0 || opts.MaxTextRunes < 0 {
		return nil, errors.New("todoapi: limits must not be negative")
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxTodos == 0 {
		opts.MaxTodos = DefaultMaxTodos
	}
	if opts.MaxTextRunes == 0 {
		opts.MaxTextRunes = DefaultMaxTextRunes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.AllowedActors = slices.Clone(opts.AllowedActors)
	if b, ok := opts.Store.(bounded); ok {
		// What a Redis store reads of a list follows what the API writes.
		b.setBounds(opts.MaxTodos, opts.MaxTextRunes)
	}
	return &API{opts: opts, log: opts.Logger}, nil
}

// List is the body of every successful answer: the caller's list after the
// operation, incomplete todos first, then by creation time. A write by a
// token without ScopeRead answers only the todo it wrote (none for a
// delete): the write scope does not read the list.
type List struct {
	Todos []Todo `json:"todos"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

const collectionPath = "/api/todos"

// serve is ServeHTTP inside its server span (tracing.go).
func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The escaped path, so that an id cannot smuggle "/" or ".." as %2F.
	path := r.URL.EscapedPath()
	switch {
	case path == DocumentPath:
		serveDocument(w, r)
	case path == collectionPath:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.list(w, r)
		case http.MethodPost:
			a.create(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD, POST")
		}
	case strings.HasPrefix(path, collectionPath+"/"):
		rawID := path[len(collectionPath)+1:]
		if rawID == "" || strings.Contains(rawID, "/") {
			writeError(w, http.StatusNotFound, "not_found", "no such resource")
			return
		}
		switch r.Method {
		case http.MethodPatch:
			a.update(w, r, rawID)
		case http.MethodDelete:
			a.remove(w, r, rawID)
		default:
			methodNotAllowed(w, "PATCH, DELETE")
		}
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such resource")
	}
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.authenticate(w, r, ScopeRead)
	if !ok {
		return
	}
	todos, err := a.opts.Store.List(r.Context(), caller.user)
	a.answer(w, r, caller, "list", "", todos, err)
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.authenticate(w, r, ScopeWrite)
	if !ok {
		return
	}
	body, ok := a.readJSON(w, r)
	if !ok {
		return
	}
	text, err := parseCreate(body, a.opts.MaxTextRunes)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	todo := Todo{ID: newID(), Text: text, CreatedAt: a.opts.Now().UTC()}
	// With an Idempotency-Key, the id comes from (user, key): a retried
	// create finds the todo its first attempt made and answers as it did.
	key, keyed := r.Header.Get("Idempotency-Key"), len(r.Header.Values("Idempotency-Key")) > 0
	if keyed {
		if len(r.Header.Values("Idempotency-Key")) != 1 || !validIdempotencyKey(key) {
			writeError(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key must be one value of 1 to 128 visible ASCII characters")
			return
		}
		todo.ID = idempotentID(caller.user, key)
	}
	todos, err := a.opts.Store.Create(r.Context(), caller.user, todo, a.opts.MaxTodos)
	if keyed && errors.Is(err, ErrExists) {
		if todos, err = a.opts.Store.List(r.Context(), caller.user); err == nil {
			i := slices.IndexFunc(todos, func(t Todo) bool { return t.ID == todo.ID })
			if i < 0 || todos[i].Text != text {
				// Deleted since, or the key was used for another todo.
				writeError(w, http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used for another request")
				return
			}
			a.log.DebugContext(r.Context(), "todo create replayed", "user", caller.user)
		}
	}
	a.answer(w, r, caller, "create", todo.ID, todos, err)
}

func (a *API) update(w http.ResponseWriter, r *http.Request, id string) {
	caller, ok := a.authenticate(w, r, ScopeWrite)
	if !ok || !checkID(w, id) {
		return
	}
	body, ok := a.readJSON(w, r)
	if !ok {
		return
	}
	completed, err := parseUpdate(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	todos, err := a.opts.Store.SetCompleted(r.Context(), caller.user, id, completed)
	a.answer(w, r, caller, "update", id, todos, err)
}

func (a *API) remove(w http.ResponseWriter, r *http.Request, id string) {
	caller, ok := a.authenticate(w, r, ScopeWrite)
	if !ok || !checkID(w, id) {
		return
	}
	todos, err := a.opts.Store.Delete(r.Context(), caller.user, id)
	a.answer(w, r, caller, "delete", id, todos, err)
}

// answer writes the outcome of a store call: the sorted list, or the error.
// written names the todo a write touched: a caller who may not read the
// list gets only that one back.
func (a *API) answer(w http.ResponseWriter, r *http.Request, c *caller, op, written string, todos []Todo, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no todo with this id")
		return
	case errors.Is(err, ErrListFull):
		writeError(w, http.StatusConflict, "too_many_todos",
			fmt.Sprintf("a list holds at most %d todos: delete some first", a.opts.MaxTodos))
		return
	case err != nil:
		a.log.ErrorContext(r.Context(), "todo store failed", "op", op, "user", c.user, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the todo store failed")
		return
	}
	if !c.mayRead {
		todos = slices.DeleteFunc(todos, func(t Todo) bool { return t.ID != written })
	}
	a.log.DebugContext(r.Context(), "todo request", "op", op, "user", c.user, "actor", c.actor, "todos", len(todos))
	if todos == nil {
		todos = []Todo{}
	}
	sortTodos(todos)
	writeJSON(w, http.StatusOK, List{Todos: todos})
}

// sortTodos orders a list as the API answers it: incomplete first, then by
// creation time, then by id so that equal times still order the same way.
func sortTodos(todos []Todo) {
	slices.SortFunc(todos, func(x, y Todo) int {
		if x.Completed != y.Completed {
			if x.Completed {
				return 1
			}
			return -1
		}
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
}

// userKey names the owner of a list: the subject at its issuer (not the
// client, so that the user reaches the same list through any client). The
// issuer's length is hashed in, so no (issuer, subject) pair can pose as
// another.
func userKey(t *auth.Token) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(t.Issuer)))
	h.Write(n[:])
	h.Write([]byte(t.Issuer))
	h.Write([]byte(t.Subject))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "allowed methods: "+allow)
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, ErrorBody{Error: code, Description: description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"server_error","error_description":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
