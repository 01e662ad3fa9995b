// Package openapi turns the OpenAPI 3.0 and 3.1 documents of
// PingFederate-secured APIs into MCP tools, one per selected operation: the
// toolset of --apis. It owns the format of the APIs file, loading and
// checking the documents (with kin-openapi), the tools' definitions (names,
// input schemas, annotations, the scopes each needs) and the calls: the
// arguments checked against the tool's schema before anything else, a
// request to the configured base URL only (an operation's own servers
// followed only within it), path parameters as single segments, the
// answer bounded.
//
// A reload (SIGHUP, or an operator's POST /admin/v1/apis/reload) calls New
// again with the file read again: the node swaps the toolset for the new one
// only if New succeeded (actors.Tools.Replace), so that a refused reload
// leaves the tools as they were.
//
// Tokens are the caller's business (tools.Caller.Delegate): each call asks
// for a token for the API's resource with its operation's scopes, which the
// session's actor obtains by RFC 8693 exchange, caches and narrows to the
// scopes the user holds. The package never sees the user's own token, and
// never puts a token in a result or an error.
package openapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/tools"
)

// Defaults of Options.
const (
	DefaultMaxResultBytes   = 256 << 10
	DefaultMaxDocumentBytes = 32 << 20
	DefaultTimeout          = 10 * time.Second
)

// Options configure the toolset; nil or zero fields mean the defaults.
type Options struct {
	// HTTPClient calls the APIs and fetches documents given as URLs. Its
	// Timeout bounds each call (--upstream-timeout; 10 s when it has none).
	// It is copied: redirects are never followed, the token could follow
	// them.
	HTTPClient *http.Client
	// MaxResultBytes bounds what a call keeps of an answer (default 256
	// KiB): more is cut, and said to be cut.
	MaxResultBytes int
	// MaxDocumentBytes bounds a document fetched from a URL (default 32 MiB).
	MaxDocumentBytes int64
	// Checker, when set, makes the command of a process that runs
	// CheckMain (killed when ctx ends): each document is loaded and checked
	// there first, within the time New is given and 4 GiB of memory, and
	// then loaded here from the bytes it read. Without one, a document
	// costlier than the time given is refused all the same, but its
	// loading runs on in this process until it ends (and no other document
	// is loaded meanwhile).
	Checker func(ctx context.Context) *exec.Cmd
}

// Toolset is the tools of every API of an APIs file.
type Toolset struct {
	tools  []*operationTool
	scopes map[string][]string
}

// New loads each API's document (a file, or a URL fetched now), checks it
// and builds a tool per selected operation. An operation that cannot become
// a tool, a document that does not load or validate, a tool name given
// twice: each is an error naming the API, the operation and why, all of
// them joined; nothing is offered then.
func New(ctx context.Context, apis []API, opts Options) (*Toolset, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if opts.MaxResultBytes <= 0 {
		opts.MaxResultBytes = DefaultMaxResultBytes
	}
	if opts.MaxDocumentBytes <= 0 {
		opts.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	ts := &Toolset{scopes: map[string][]string{}}
	var errs []error
	byName := map[string]string{} // tool name → "api operation", for duplicates
	for _, api := range apis {
		if err := api.check(); err != nil {
			errs = append(errs, err)
			continue
		}
		doc, err := load(ctx, api.Document, api.dir, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("api %q: %w", api.Name, err))
			continue
		}
		client := *opts.HTTPClient
		if client.Timeout <= 0 {
			client.Timeout = DefaultTimeout // every call is bounded
		}
		client.Transport = boundHeaders(client.Transport)
		target := &upstream{name: api.Name, resource: api.resource(), client: outbound.Client(&client, "api "+api.Name), maxResult: opts.MaxResultBytes}
		target.base, _ = parseBaseURL(api.BaseURL) // checked by api.check
		built, err := build(api, doc, target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range built {
			where := fmt.Sprintf("api %q operation %s", api.Name, t.operation)
			if other, dup := byName[t.def.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: tool name %q is also %s's: rename one of them (tools: <operationId>: name: in the APIs file)", where, t.def.Name, other))
				continue
			}
			byName[t.def.Name] = where
			ts.tools = append(ts.tools, t)
			ts.scopes[t.def.Name] = t.scopes
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ts, nil
}

// maxResponseHeaderBytes bounds the headers of an API's answer (Go's
// default is 1 MiB; its reason phrase alone could be most of it).
const maxResponseHeaderBytes = 64 << 10

// boundHeaders is rt (the default transport when nil) with the answer's
// headers bounded; a RoundTripper that is not an *http.Transport is the
// caller's to bound.
func boundHeaders(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	tr = tr.Clone()
	if tr.MaxResponseHeaderBytes <= 0 || tr.MaxResponseHeaderBytes > maxResponseHeaderBytes {
		tr.MaxResponseHeaderBytes = maxResponseHeaderBytes
	}
	return tr
}

// Name is "apis": the toolset comes with --apis, not --tools.
func (*Toolset) Name() string                 { return "apis" }
func (*Toolset) Configure(*mcp.ServerOptions) {}

// Scopes are, per tool, its operation's scopes (from its security
// requirement, else the API's scopes in the file): the actor answers a
// call whose token lacks one 403 insufficient_scope, for the client to
// step up.
func (ts *Toolset) Scopes() map[string][]string { return ts.scopes }

// Tools are the definitions of the tools, in the order of the file and of
// each document's paths.
func (ts *Toolset) Tools() []*mcp.Tool {
	out := make([]*mcp.Tool, len(ts.tools))
	for i, t := range ts.tools {
		out[i] = t.def
	}
	return out
}

// Install adds every tool, each calling its API for caller.
func (ts *Toolset) Install(s *mcp.Server, caller tools.Caller) {
	for _, t := range ts.tools {
		s.AddTool(t.def, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return t.call(ctx, caller, req), nil
		})
	}
}

var _ tools.Toolset = (*Toolset)(nil)
