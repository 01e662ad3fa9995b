// Package todo is the Todo toolset: the six tools of Ping's MCP demo, made
// safe, and import_todos, a long one that runs as a task (package tasks). The model reads and edits the user's todo list through the Todo API
// with a token obtained for that API by exchanging the user's token (RFC
// 8693), never with the user's own token, and no tool ever returns a token:
// who_am_I and peek_api_token show claims only.
//
// It owns the tool definitions and the calls to the Todo API; the tokens and
// their exchange belong to the session actor (tools.Caller).
package todo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/tasks"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/answer"
)

// Options configure the toolset.
type Options struct {
	// APIURL is the Todo API's base URL; it is also its resource URI, the
	// audience of the exchanged token.
	APIURL string
	// HTTPClient calls the API (default: a 10 s timeout).
	HTTPClient *http.Client
}

// New returns the toolset named "todo".
func New(opts Options) tools.Toolset {
	// No redirect is followed (Go would send the delegated token on to
	// another port or scheme of the host), and each call to the API is a
	// client span.
	opts.HTTPClient = outbound.Client(opts.HTTPClient, "todo-api")
	opts.APIURL = strings.TrimSuffix(opts.APIURL, "/")
	return &toolset{opts: opts}
}

type toolset struct{ opts Options }

func (*toolset) Name() string                 { return "todo" }
func (*toolset) Configure(*mcp.ServerOptions) {}

// apiScopes are what the exchanged token is asked for: the API's scopes,
// narrowed by the actor to those the user holds.
var apiScopes = []string{todoapi.ScopeRead, todoapi.ScopeWrite}

var scopes = map[string][]string{
	"peek_api_token":     {todoapi.ScopeRead},
	"get_my_todo_list":   {todoapi.ScopeRead},
	"create_new_todo":    {todoapi.ScopeWrite},
	"toggle_todo_status": {todoapi.ScopeWrite},
	"delete_todo":        {todoapi.ScopeWrite},
	"import_todos":       {todoapi.ScopeWrite},
}

func (*toolset) Scopes() map[string][]string { return scopes }

// Definitions are shared by every server of the process.
var (
	noArgs     = json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`)
	createArgs = json.RawMessage(`{"type":"object","properties":{"text":{"type":"string","minLength":1,"maxLength":500,"description":"What to do"},"requestKey":{"type":"string","minLength":1,"maxLength":128,"pattern":"^[!-~]+$","description":"Optional idempotency key: creates retried with the same key add the todo once"}},"required":["text"],"additionalProperties":false}`)
	toggleArgs = json.RawMessage(`{"type":"object","properties":{"todoId":{"type":"string","description":"The todo's id, from get_my_todo_list"},"completed":{"type":"boolean","description":"The new status"}},"required":["todoId","completed"],"additionalProperties":false}`)
	importArgs = json.RawMessage(`{"type":"object","properties":{"items":{"type":"array","minItems":1,"maxItems":` + strconv.Itoa(maxImport) + `,"items":{"type":"string","minLength":1,"maxLength":500},"description":"The todos to add, in order"}},"required":["items"],"additionalProperties":false}`)
	deleteArgs = json.RawMessage(`{"type":"object","properties":{"todoId":{"type":"string","description":"The todo's id, from get_my_todo_list"}},"required":["todoId"],"additionalProperties":false}`)

	readOnly = &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}

	defs = map[string]*mcp.Tool{
		"who_am_I":           {Name: "who_am_I", Description: "Shows who you are logged in as: the verified claims of your token (subject, client, scopes, expiry). Never the token itself.", InputSchema: noArgs, Annotations: readOnly},
		"peek_api_token":     {Name: "peek_api_token", Description: "Shows the claims of the token this server uses to call the Todo API on your behalf, including the act (actor) claim. Never the token itself.", InputSchema: noArgs, Annotations: readOnly},
		"get_my_todo_list":   {Name: "get_my_todo_list", Description: "Lists your todos, incomplete first.", InputSchema: noArgs, Annotations: readOnly},
		"create_new_todo":    {Name: "create_new_todo", Description: "Adds a todo to your list.", InputSchema: createArgs},
		"toggle_todo_status": {Name: "toggle_todo_status", Description: "Marks one of your todos completed or not.", InputSchema: toggleArgs, Annotations: &mcp.ToolAnnotations{IdempotentHint: true}},
		"import_todos":       {Name: "import_todos", Description: "Adds many todos to your list, one by one. For a client of the tasks extension it runs as a task: its progress shows in the task's status, and if the server running it fails, another one finishes it, adding each todo once.", InputSchema: importArgs},
		"delete_todo":        {Name: "delete_todo", Description: "Deletes one of your todos.", InputSchema: deleteArgs, Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true}},
	}
)

func ptr[T any](v T) *T { return &v }

func (t *toolset) Install(s *mcp.Server, caller tools.Caller) {
	c := &calls{opts: t.opts, caller: caller}
	for name, h := range map[string]mcp.ToolHandler{
		"who_am_I":           c.whoAmI,
		"peek_api_token":     c.peekAPIToken,
		"get_my_todo_list":   c.list,
		"create_new_todo":    c.create,
		"toggle_todo_status": c.toggle,
		"delete_todo":        c.delete,
	} {
		s.AddTool(defs[name], h)
	}
	// Each todo is created under an idempotency key of the task's, so a
	// round run again after its node died adds each once: resumable.
	tasks.Add(s, defs["import_todos"], tasks.Optional, c.importTodos, tasks.Resumable())
}

// maxImport bounds the todos one import_todos adds.
const maxImport = 200

// importTodos adds the items one by one. As a task, each create carries
// the Idempotency-Key "<task id>/<index>", the same in every round of the
// task, and the task's status says how far it got; synchronously, nothing
// makes a retried call idempotent (the client's retry adds again).
func (c *calls) importTodos(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Items []string `json:"items"`
	}
	if err := decode(req, &in); err != nil {
		return failure(err), nil
	}
	if len(in.Items) == 0 || len(in.Items) > maxImport {
		return failure(fmt.Errorf("items must hold 1 to %d todos", maxImport)), nil
	}
	for i, text := range in.Items {
		if text == "" || len(text) > 500 {
			return failure(fmt.Errorf("item %d must be 1 to 500 characters", i)), nil
		}
	}
	task := tasks.ID(ctx)
	var last *mcp.CallToolResult
	for i, text := range in.Items {
		if err := ctx.Err(); err != nil {
			return nil, err // cancelled
		}
		var h http.Header
		if task != "" {
			h = http.Header{"Idempotency-Key": {task + "/" + strconv.Itoa(i)}}
		}
		res, err := c.api(ctx, http.MethodPost, "/api/todos", map[string]any{"todoText": text}, h)
		if err != nil {
			return nil, err
		}
		if res.IsError {
			if err := ctx.Err(); err != nil {
				// Stopped mid-create (cancelled, or its actor stopping: a
				// resumable task's next round carries on), not failed.
				return nil, err
			}
			res.Content = append([]mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("added %d of %d todos, then:", i, len(in.Items))}}, res.Content...)
			return res, nil
		}
		last = res
		tasks.Progress(ctx, fmt.Sprintf("added %d of %d todos", i+1, len(in.Items)))
	}
	return last, nil
}

// calls are the handlers of one server, bound to its session's caller.
type calls struct {
	opts   Options
	caller tools.Caller // nil without authentication
}

var errNoUser = errors.New("this server runs without authentication: there is no user to act for")

func (c *calls) whoAmI(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if c.caller == nil {
		return failure(errNoUser), nil
	}
	return jsonResult(describe(c.caller.Claims(ctx))), nil
}

func (c *calls) peekAPIToken(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	d, err := c.delegate(ctx)
	if err != nil {
		return failure(err), nil
	}
	out := describe(d.Claims)
	out["granted_scopes"] = d.Scopes
	return jsonResult(out), nil
}

func (c *calls) list(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return c.api(ctx, http.MethodGet, "/api/todos", nil, nil)
}

func (c *calls) create(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Text       string `json:"text"`
		RequestKey string `json:"requestKey"`
	}
	if err := decode(req, &in); err != nil {
		return failure(err), nil
	}
	var h http.Header
	if in.RequestKey != "" {
		h = http.Header{"Idempotency-Key": {in.RequestKey}}
	}
	return c.api(ctx, http.MethodPost, "/api/todos", map[string]any{"todoText": in.Text}, h)
}

func (c *calls) toggle(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		TodoID    string `json:"todoId"`
		Completed *bool  `json:"completed"`
	}
	if err := decode(req, &in); err != nil {
		return failure(err), nil
	}
	if in.Completed == nil {
		return failure(errors.New("completed is required")), nil
	}
	if err := checkID(in.TodoID); err != nil {
		return failure(err), nil
	}
	return c.api(ctx, http.MethodPatch, "/api/todos/"+url.PathEscape(in.TodoID), map[string]any{"completed": *in.Completed}, nil)
}

func (c *calls) delete(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		TodoID string `json:"todoId"`
	}
	if err := decode(req, &in); err != nil {
		return failure(err), nil
	}
	if err := checkID(in.TodoID); err != nil {
		return failure(err), nil
	}
	return c.api(ctx, http.MethodDelete, "/api/todos/"+url.PathEscape(in.TodoID), nil, nil)
}

func (c *calls) delegate(ctx context.Context) (*tools.Delegation, error) {
	if c.caller == nil {
		return nil, errNoUser
	}
	return c.caller.Delegate(ctx, c.opts.APIURL, apiScopes)
}

// api calls the Todo API with a delegated token and returns its list, or a
// tool error saying what went wrong (never with a token in it).
//
// A token the API refuses (401: revoked before its expiry, say) is told
// refused, and the request sent once more with a token exchanged anew: a
// 401 is the API's refusal before it acts.
func (c *calls) api(ctx context.Context, method, path string, body any, header http.Header) (*mcp.CallToolResult, error) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	var d *tools.Delegation
	var resp *http.Response
	for try := 1; ; try++ {
		var err error
		if d, err = c.delegate(ctx); err != nil {
			return failure(fmt.Errorf("could not get a token for the Todo API: %w", err)), nil
		}
		hr, err := http.NewRequestWithContext(ctx, method, c.opts.APIURL+path, bytes.NewReader(b))
		if err != nil {
			return failure(err), nil
		}
		for k, v := range header {
			hr.Header[k] = v
		}
		hr.Header.Set("Authorization", "Bearer "+d.Token)
		hr.Header.Set("Accept", "application/json")
		if body != nil {
			hr.Header.Set("Content-Type", "application/json")
		}
		if resp, err = c.opts.HTTPClient.Do(hr); err != nil {
			return failure(fmt.Errorf("the Todo API could not be reached: %w", outbound.Failed(err))), nil
		}
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
		c.caller.Refused(ctx, d)
		if try == 2 {
			break
		}
		resp.Body.Close()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return failure(fmt.Errorf("reading the Todo API's answer: %w", outbound.Failed(err))), nil
	}
	// What the API says is shown as the --apis tools show it (tools/answer):
	// the status's standard text, never its reason phrase; a bounded
	// excerpt of its error; never the token it was sent, should it echo it.
	if resp.StatusCode != http.StatusOK {
		var e todoapi.ErrorBody
		json.Unmarshal(raw, &e)
		msg := "the Todo API answered " + outbound.Answered(resp.StatusCode)
		if e.Error != "" {
			detail := e.Error
			if e.Description != "" {
				detail += ": " + e.Description
			}
			msg += ": " + answer.ErrorExcerpt([]byte(detail), d.Token)
		}
		return failure(errors.New(msg)), nil
	}
	clean, ok := answer.Cleaned(raw, d.Token)
	if !ok {
		return failure(errors.New(answer.Echoed)), nil
	}
	var list todoapi.List
	if err := json.Unmarshal(clean, &list); err != nil {
		return failure(fmt.Errorf("the Todo API's answer is not a todo list: %w", err)), nil
	}
	return jsonResult(list), nil
}

// checkID refuses anything but the ids the Todo API mints (128 random bits,
// base64url), so that no path can be smuggled into the request.
func checkID(id string) error {
	if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 16 {
		return fmt.Errorf("%q is not a todo id (ids come from get_my_todo_list)", id)
	}
	return nil
}

func decode(req *mcp.CallToolRequest, v any) error {
	args := req.Params.Arguments
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid arguments: %w", err)
	}
	return nil
}

// describe renders claims for display: dates as RFC 3339, scope as a list,
// keys sorted by the encoder. Tokens carry no token values in their claims.
func describe(claims map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		switch k {
		case "exp", "iat", "nbf", "auth_time":
			if f, ok := v.(float64); ok {
				v = time.Unix(int64(f), 0).UTC().Format(time.RFC3339)
			}
		case "scope":
			if s, ok := v.(string); ok {
				fs := strings.Fields(s)
				sort.Strings(fs)
				v = fs
			}
		}
		out[k] = v
	}
	return out
}

func jsonResult(v any) *mcp.CallToolResult {
	b, _ := json.MarshalIndent(v, "", "  ")
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}

func failure(err error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
}
