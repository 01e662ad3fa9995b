package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Support is how a tool takes part in tasks: Optional tools run as a task
// for a client that negotiated the extension and synchronously for one that
// did not; Required tools refuse the latter with -32021 (Missing Required
// Client Capability). A tool not added through this package never runs as a
// task (the SEP's "forbidden").
type Support string

const (
	Optional Support = "optional"
	Required Support = "required"
)

// supports is the task support of every task-capable tool of the process,
// by name. Tool names are unique across a process's toolsets (the command
// refuses two toolsets offering one name), and every server of the process
// installs the same toolsets, so one table serves them all.
var supports sync.Map // string → declared

type declared struct {
	support   Support
	resumable bool
}

func supportOf(tool string) (Support, bool) {
	d, ok := supports.Load(tool)
	if !ok {
		return "", false
	}
	return d.(declared).support, true
}

// resumable says whether tool's rounds may run again after their runner
// was lost.
func resumable(tool string) bool {
	d, ok := supports.Load(tool)
	return ok && d.(declared).resumable
}

// An Option qualifies a task-capable tool.
type Option func(*declared)

// Resumable says the tool's rounds may run again, from their start, when
// the node running one dies: they are idempotent (pure, or they make each
// effect once, say by an idempotency key). A task of another tool fails,
// retryably, instead. At most maxResumes times.
func Resumable() Option { return func(d *declared) { d.resumable = true } }

// Add adds a task-capable tool to s. A call of it from a client that
// negotiated the extension becomes a task before h runs: the client gets a
// CreateTaskResult at once, and h's result (or its input requests, or its
// error) becomes the task's. Without the extension, h runs synchronously
// (Optional) or the call is refused (Required).
//
// The tool's task support is declared in its _meta under the extension's
// id ({"taskSupport": ...}): the SDK's Tool has no execution member, and
// SEP-2663 puts no other declaration on the 2026-07-28 wire the suite reads.
func Add(s *mcp.Server, t *mcp.Tool, support Support, h mcp.ToolHandler, opts ...Option) {
	add(s, t, support, h, true, opts)
}

// AddDeferred is Add for a tool that decides itself when its call becomes a
// task: it may answer synchronously first (an input_required round of
// SEP-2322, say) and call Start once it is about to do the long work; the
// client gets the CreateTaskResult then. A call that returns without Start
// is answered as a synchronous call.
func AddDeferred(s *mcp.Server, t *mcp.Tool, support Support, h mcp.ToolHandler, opts ...Option) {
	add(s, t, support, h, false, opts)
}

func add(s *mcp.Server, t *mcp.Tool, support Support, h mcp.ToolHandler, auto bool, opts []Option) {
	d := declared{support: support}
	for _, o := range opts {
		o(&d)
	}
	supports.Store(t.Name, d)
	p := prepare(t, support)
	schema := p.schema
	s.AddTool(p.def, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		// Arguments are checked against the tool's input schema (as the
		// SDK checks a typed tool's) before anything else, so that a call
		// with invalid ones never becomes a task: it gets the same tool
		// error as a synchronous call, and nothing is stored.
		if res := validate(schema, req.Params.Arguments); res != nil {
			return res, nil
		}
		r := runOf(req)
		if r == nil {
			if support == Required {
				return nil, missingExtension()
			}
			return h(ctx, req)
		}
		// A round outlives the HTTP request that started it (whose end
		// the SDK passes on to the handler, PropagateRequestCancellation):
		// the round's context (a cancel, the activation's end) ends it too.
		ctx, cancel := context.WithCancel(context.WithValue(ctx, runKey{}, r))
		defer cancel()
		defer context.AfterFunc(r.ctx, cancel)()
		if auto {
			if err := r.escalate(); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	})
}

// prepared is a task-capable tool's definition as servers list it (its
// task support in its _meta) and its input schema, resolved.
type prepared struct {
	def    *mcp.Tool
	schema *jsonschema.Resolved
}

// preparedTools are the definitions add prepared, by the tool's JSON and
// task support. A toolset installs its tools in every session's server:
// each is prepared once per process, and the servers share it (the SDK
// keeps the *Tool it is given and never changes it; a Resolved is
// read-only, shared as the SDK's SchemaCache shares them).
var preparedTools sync.Map // string → *prepared

func prepare(t *mcp.Tool, support Support) *prepared {
	b, err := json.Marshal(t)
	if err != nil {
		panic("tasks: the definition of " + t.Name + ": " + err.Error())
	}
	key := string(support) + "\x00" + string(b)
	if p, ok := preparedTools.Load(key); ok {
		return p.(*prepared)
	}
	def := *t
	def.Meta = maps.Clone(t.Meta)
	if def.Meta == nil {
		def.Meta = mcp.Meta{}
	}
	def.Meta[Extension] = map[string]any{"taskSupport": string(support)}
	p, _ := preparedTools.LoadOrStore(key, &prepared{def: &def, schema: resolveInput(t)})
	return p.(*prepared)
}

// resolveInput resolves t's input schema, nil if it has none usable (the
// tool validates its arguments itself then).
func resolveInput(t *mcp.Tool) *jsonschema.Resolved {
	if t.InputSchema == nil {
		return nil
	}
	b, err := json.Marshal(t.InputSchema)
	if err != nil {
		panic("tasks: the input schema of " + t.Name + ": " + err.Error())
	}
	var sc jsonschema.Schema
	if err := json.Unmarshal(b, &sc); err != nil {
		panic("tasks: the input schema of " + t.Name + ": " + err.Error())
	}
	res, err := sc.Resolve(nil)
	if err != nil {
		panic("tasks: the input schema of " + t.Name + ": " + err.Error())
	}
	return res
}

// validate is the tool error of arguments that schema refuses, nil if it
// takes them, worded as the SDK words it for a typed tool.
func validate(schema *jsonschema.Resolved, args json.RawMessage) *mcp.CallToolResult {
	if schema == nil {
		return nil
	}
	v := map[string]any{}
	var err error
	if len(args) > 0 && string(args) != "null" {
		err = json.Unmarshal(args, &v)
	}
	if err == nil {
		err = schema.Validate(v)
	}
	if err == nil {
		return nil
	}
	var res mcp.CallToolResult
	res.SetError(fmt.Errorf("validating \"arguments\": %v", err))
	return &res
}

// Start makes the tool call of ctx a task now, if it runs as one (a
// deferred tool's call from a client that negotiated the extension): the
// task is stored and the client answered with its CreateTaskResult. It does
// nothing for a synchronous call, or one that is a task already.
func Start(ctx context.Context) error {
	if r, _ := ctx.Value(runKey{}).(*run); r != nil {
		return r.escalate()
	}
	return nil
}

type runKey struct{}

// runHeader names, in the request a task's round sends through the MCP
// handler, the round it is (a key of runs); the layer sets it on its own
// requests and removes it from every other.
const runHeader = "X-Pingmcp-Task-Run"

// runs are the rounds running in this process, by id (128 random bits).
var runs sync.Map // string → *run

func runOf(req *mcp.CallToolRequest) *run {
	extra := req.GetExtra()
	if extra == nil || extra.Header == nil {
		return nil
	}
	id := extra.Header.Get(runHeader)
	if id == "" {
		return nil
	}
	r, _ := runs.Load(id)
	rr, _ := r.(*run)
	return rr
}

// missingExtension is -32021 naming the extension (SEP-2575 "Missing
// Required Client Capability"; HTTP 400 on the 2026-07-28 protocol).
func missingExtension() *jsonrpc.Error {
	return &jsonrpc.Error{
		Code:    mcp.CodeMissingRequiredClientCapabilities,
		Message: "this request needs the " + Extension + " extension, which the client did not declare",
		Data:    missingExtensionData,
	}
}

var missingExtensionData = json.RawMessage(`{"requiredCapabilities":{"extensions":{"` + Extension + `":{}}}}`)

// stripRunHeader removes a run header a client sent: only the layer names
// its rounds.
func stripRunHeader(h http.Header) { h.Del(runHeader) }

// ID is the id of the task the tool call of ctx runs as, "" when it runs
// synchronously (or has not become a task yet). It is the same in every
// round of the task, a resumed one included: a resumable tool derives the
// idempotency keys of its effects from it, so that a round run again makes
// each effect once.
func ID(ctx context.Context) string {
	r, _ := ctx.Value(runKey{}).(*run)
	if r == nil || !r.isTask() {
		return ""
	}
	return r.taskID
}

// Of is the id of the task a tools/call request runs as, "" when it runs
// synchronously (or has not become a task, or its round ended): for those
// around the tool's handler, which do not see its context (the audit
// record of each round names its task).
func Of(req *mcp.CallToolRequest) string {
	r := runOf(req)
	if r == nil || !r.isTask() {
		return ""
	}
	return r.taskID
}

// Progress records msg as the statusMessage of the task the tool call of
// ctx runs as (tasks/get shows it while it works); nothing for a
// synchronous call. Best effort: a store error is logged, not returned.
func Progress(ctx context.Context, msg string) {
	r, _ := ctx.Value(runKey{}).(*run)
	if r == nil || !r.isTask() {
		return
	}
	r.l.progress(ctx, r, msg)
}
