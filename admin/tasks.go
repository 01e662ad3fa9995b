package admin

// Operators' views of durable tasks (the MCP tasks extension, package
// tasks): every node's admin API reads the task store that every node
// shares, so any node lists every task and cancels any, wherever its round
// runs.
//
//	GET  /admin/v1/tasks?user=&client=&issuer=&session=&status=&cursor=&limit=
//	GET  /admin/v1/tasks/{owner}/{id}
//	POST /admin/v1/tasks/{owner}/{id}/cancel

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
)

// TaskInfo is what an operator may see of a stored task: who it acts for,
// which tool, its state and its runner. Never the call's arguments, the
// tool's result or pending input, nor a token; of a failed task's error,
// its code and message alone. Its JSON is the admin API's.
type TaskInfo struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// Issuer, Subject and ClientID name the principal the task acts for
	// (empty for a task of an unauthenticated principal).
	Issuer        string    `json:"issuer,omitempty"`
	Subject       string    `json:"subject,omitempty"`
	ClientID      string    `json:"client_id,omitempty"`
	Tool          string    `json:"tool"`
	Status        string    `json:"status"`
	StatusMessage string    `json:"status_message,omitempty"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	// Expires is when the task's record goes unless it changes again
	// (its TTL after its last change).
	Expires time.Time `json:"expires"`
	// Node is the cluster address of the node running the task's round,
	// Runner the round's name in the lease it renews until LeaseUntil; a
	// lease in the past is a runner lost (its node died), which the
	// owner's next read or sweep takes over.
	Node       string     `json:"node,omitempty"`
	Runner     string     `json:"runner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	Resumes    int        `json:"resumes,omitempty"`
	// Error is a failed task's JSON-RPC error: code and message.
	Error *TaskError `json:"error,omitempty"`
}

// TaskError is a failed task's error, without its data.
type TaskError struct {
	Code    int64  `json:"code"`
	Message string `json:"message"`
}

// taskStatuses are the statuses a task may have, in the order of its life.
var taskStatuses = taskstore.Statuses

// describeTask is what an operator sees of t.
func describeTask(t *taskstore.Task) TaskInfo {
	info := TaskInfo{ID: t.ID, Owner: t.Owner, Issuer: t.Issuer, Subject: t.Subject, ClientID: t.ClientID,
		Tool: t.Tool(), Status: t.Status, StatusMessage: t.StatusMessage, Created: t.CreatedAt, Updated: t.UpdatedAt,
		Runner: t.Runner, Resumes: t.Resumes}
	if t.TTL > 0 {
		info.Expires = t.UpdatedAt.Add(t.TTL)
	}
	if t.Runner != "" {
		// A runner is "node/activation/round" (tasks.Options.Runner).
		info.Node, _, _ = strings.Cut(t.Runner, "/")
		until := t.LeaseUntil
		info.LeaseUntil = &until
	}
	if len(t.Error) > 0 {
		var e TaskError
		if json.Unmarshal(t.Error, &e) == nil {
			info.Error = &e
		}
	}
	return info
}

// taskFilter selects tasks: each field empty selects any.
type taskFilter struct {
	// Owner narrows the scan to one principal's tasks (a session's).
	Owner                        string
	User, Client, Issuer, Status string
}

func (f *taskFilter) keeps(t *taskstore.Task) bool {
	return (f.User == "" || t.Subject == f.User) && (f.Client == "" || t.ClientID == f.Client) &&
		(f.Issuer == "" || t.Issuer == f.Issuer) && (f.Status == "" || t.Status == f.Status)
}

// parseTaskFilter reads a list's filters from q. A session names its
// principal (its snapshot's issuer, subject and client), whose actor owns
// the tasks of that principal: tasks belong to the stateless protocol's
// principal actors, so a session's tasks are those its user made through
// the same client. A session, or a user, client and issuer given together,
// narrows the scan to that principal's keys. The error is the answer's
// status and message.
func (a *api) parseTaskFilter(ctx context.Context, q url.Values) (taskFilter, int, error) {
	f := taskFilter{User: q.Get("user"), Client: q.Get("client"), Issuer: q.Get("issuer"), Status: q.Get("status")}
	if f.Status != "" && !slices.Contains(taskStatuses, f.Status) {
		return f, http.StatusBadRequest, errors.New("status must be one of " + strings.Join(taskStatuses, ", "))
	}
	if f.User != "" && f.Client != "" && f.Issuer != "" {
		f.Owner = auth.Principal{Issuer: f.Issuer, Subject: f.User, ClientID: f.Client}.Key()
	}
	id := q.Get("session")
	if id == "" {
		return f, 0, nil
	}
	snap, err := a.opts.Stores.Snapshots.Get(ctx, id)
	if errors.Is(err, state.ErrUnreadable) {
		return f, http.StatusInternalServerError, errors.New("the session's snapshot cannot be read: " + snapshotWhy(err))
	}
	if err != nil {
		return f, http.StatusServiceUnavailable, errors.New("the session store cannot be read: " + err.Error())
	}
	if snap == nil {
		return f, http.StatusNotFound, errors.New("no such session")
	}
	info, err := a.opts.Stores.Describe(id, snap, false)
	if err != nil {
		return f, http.StatusInternalServerError, errors.New("the session's snapshot cannot be read: " + snapshotWhy(err))
	}
	// The user, client and issuer given besides still filter (keeps).
	f.Owner = auth.Principal{Issuer: info.Issuer, Subject: info.Subject, ClientID: info.ClientID}.Key()
	return f, 0, nil
}

// taskPage reads a page of stored tasks, about limit after cursor, keeping
// those f selects, and the cursor of the next page ("" at the end). A page
// may thus hold fewer than limit tasks with more to come.
func (a *api) taskPage(ctx context.Context, f taskFilter, cursor string, limit int) ([]TaskInfo, string, error) {
	page, next, err := a.opts.Stores.Tasks.List(ctx, f.Owner, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	out := []TaskInfo{}
	for _, t := range page {
		if f.keeps(t) {
			out = append(out, describeTask(t))
		}
	}
	return out, next, nil
}

// parseLimit reads a list's ?limit= (defaultLimit when absent); false when
// it wrote the answer to a bad one.
func parseLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultLimit, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		writeError(w, http.StatusBadRequest, "limit must be between 1 and "+strconv.Itoa(maxLimit))
		return 0, false
	}
	return n, true
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request) {
	limit, ok := parseLimit(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f, status, err := a.parseTaskFilter(r.Context(), q)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	out, next, err := a.taskPage(r.Context(), f, q.Get("cursor"), limit)
	if errors.Is(err, taskstore.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor must be a next cursor of an earlier page")
		return
	}
	if err != nil {
		a.opts.Logger.Warn("admin: list tasks", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the task store cannot be read: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out, "next": next})
}

// findTask reads the task named in the path, or writes why not: 404 for
// none, 500 for a record that does not open, 503 for the store.
func (a *api) findTask(w http.ResponseWriter, r *http.Request) (*taskstore.Task, bool) {
	t, err := a.opts.Stores.Tasks.Get(r.Context(), r.PathValue("owner"), r.PathValue("id"))
	status, msg := taskFailure(t, err)
	if status != 0 {
		writeError(w, status, msg)
		return nil, false
	}
	return t, true
}

// taskFailure is the status and message of a failed read of a task (t,
// err), 0 when it was read.
func taskFailure(t *taskstore.Task, err error) (int, string) {
	switch {
	case errors.Is(err, taskstore.ErrUnreadable):
		return http.StatusInternalServerError, "the task's record cannot be opened (sealed under a key no longer configured, or tampered with)"
	case err != nil:
		return http.StatusServiceUnavailable, "the task store cannot be read: " + err.Error()
	case t == nil:
		return http.StatusNotFound, "no such task: it expired, or never was"
	}
	return 0, ""
}

func (a *api) showTask(w http.ResponseWriter, r *http.Request) {
	if t, ok := a.findTask(w, r); ok {
		writeJSON(w, http.StatusOK, describeTask(t))
	}
}

// errTaskEnded is the cancel of a task that already ended.
var errTaskEnded = errors.New("the task already ended")

// cancelTask cancels a task for operator op: recorded cancelled
// ("cancelled by an operator"), its user's place freed, its round
// cancelled wherever it runs at its next lease renewal (within a third of
// the lease). It returns the task as it is now; errTaskEnded (with the
// task) for one that had already ended, which stays as it was.
func (a *api) cancelTask(r *http.Request, op *Operator, owner, id string) (*taskstore.Task, error) {
	o := tasks.Options{Store: a.opts.Stores.Tasks, Owner: owner, Logger: a.opts.Logger}
	if a.opts.Stores.UserTasks != nil {
		o.Live = a.opts.Stores.UserTasks
	}
	t, cancelled, err := tasks.Cancel(context.WithoutCancel(r.Context()), o, id, "cancelled by an operator")
	if err != nil || t == nil {
		return t, err
	}
	if !cancelled {
		return t, errTaskEnded
	}
	a.opts.Logger.Info("admin: task cancelled", "owner", owner, "task", id, "tool", t.Tool(),
		"subject", t.Subject, "client_id", t.ClientID, "operator", op.String())
	return t, nil
}

// cancelTaskAPI answers 200 with the cancelled task; 409 with the task for
// one that already ended (a cancel changes nothing then); 404, 500, 503 as
// a read does.
func (a *api) cancelTaskAPI(w http.ResponseWriter, r *http.Request) {
	t, err := a.cancelTask(r, OperatorOf(r.Context()), r.PathValue("owner"), r.PathValue("id"))
	if errors.Is(err, errTaskEnded) {
		writeJSON(w, http.StatusConflict, map[string]any{"error": "the task already ended (" + t.Status + "): nothing to cancel", "task": describeTask(t)})
		return
	}
	if status, msg := taskFailure(t, err); status != 0 {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusOK, describeTask(t))
}
