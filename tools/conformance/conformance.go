// Package conformance is the toolset that the official MCP conformance suite
// (@modelcontextprotocol/conformance) expects of a server: fixed-content
// tools, resources, a resource template and prompts; logging, progress,
// completion and resource subscriptions; tools that call back into the client
// (sampling, elicitation) for the 2025-11-25 protocol; and the multi round-trip
// (input-required) tools and diagnostics of the stateless 2026-07-28 protocol.
//
// It owns the names and contents the suite asserts on, nothing else. The
// hosting handler provides the transport behaviour some scenarios also need:
// an EventStore so that test_reconnection can close its SSE stream and the
// client can resume it, Host/Origin checks, and routing of 2026-07-28 requests
// to a stateless handler. Select it with --tools=conformance.
//
// Every definition here is immutable and shared by all servers of the process;
// Install only registers it, so an idle session costs a few map entries.
package conformance

import (
	"context"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tools"
)

//lint:file-ignore SA1019 the suite exercises logging, deprecated by SEP-2577 but still in the 2025-11-25 protocol.

// New returns the conformance toolset, named "conformance".
func New() tools.Toolset { return toolset{} }

type toolset struct{}

func (toolset) Name() string { return "conformance" }

func (toolset) Configure(opts *mcp.ServerOptions) {
	opts.CompletionHandler = complete
	opts.SubscribeHandler = subscribe
	opts.UnsubscribeHandler = unsubscribe
	// The suite checks logging/setLevel and notifications/message. A nil
	// Capabilities already means {"logging":{}}; keep logging if the host set
	// other capabilities.
	if opts.Capabilities != nil && opts.Capabilities.Logging == nil {
		opts.Capabilities.Logging = &mcp.LoggingCapabilities{}
	}
}

// Scopes: the conformance tools need none.
func (toolset) Scopes() map[string][]string { return nil }

func (toolset) Install(s *mcp.Server, _ tools.Caller) {
	for _, t := range catalogue {
		s.AddTool(t.def, t.handle)
	}
	installTasks(s)
	// These two mutate the server they run on, so their handlers close over
	// it. A node's sessions share servers (64 a server): the transient tool
	// and prompt appear to every session of the caller's server, and each
	// of them with a listener is told. A test toolset; no production one
	// changes its server at run time.
	s.AddTool(triggerToolChange, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		s.AddTool(transientTool, noop)
		return text("tools_list_changed published"), nil
	})
	s.AddTool(triggerPromptChange, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		s.AddPrompt(transientPrompt, emptyPrompt)
		return text("prompts_list_changed published"), nil
	})
	for _, r := range resources {
		s.AddResource(r.def, r.read)
	}
	s.AddResourceTemplate(templateResource, readTemplate)
	for _, p := range prompts {
		s.AddPrompt(p.def, p.get)
	}
}

// A completionKey names an argument: of a prompt (ref/prompt, by name) or of
// a resource template (ref/resource, by URI template).
type completionKey struct{ ref, arg string }

// completions offers values for the arguments of test_prompt_with_arguments
// and for the {id} of the resource template.
var completions = map[completionKey][]string{
	{"test_prompt_with_arguments", "arg1"}: {"paris", "park", "party"},
	{"test_prompt_with_arguments", "arg2"}: {"red", "green", "blue"},
	{templateURI, "id"}:                    {"1", "123", "42"},
}

func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	var values []string
	if ref := req.Params.Ref; ref != nil {
		key := completionKey{ref.Name + ref.URI, req.Params.Argument.Name} // a ref has one of the two
		prefix := req.Params.Argument.Value
		values = slices.DeleteFunc(slices.Clone(completions[key]), func(v string) bool {
			return !strings.HasPrefix(v, prefix)
		})
	}
	if values == nil {
		values = []string{} // the wire requires an array
	}
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}

// subscribe accepts subscriptions to the fixed resources; the SDK records
// them. Nothing here changes a resource, so no update is ever sent.
func subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	return knownResource(req.Params.URI)
}

func unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	return knownResource(req.Params.URI)
}

func knownResource(uri string) error {
	for _, r := range resources {
		if r.def.URI == uri {
			return nil
		}
	}
	return mcp.ResourceNotFoundError(uri)
}
