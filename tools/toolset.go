// Package tools holds the MCP toolsets pingmcp can offer a client: the
// families of tools, resources and prompts that the session and principal
// actors add to the MCP server they run. A toolset owns its definitions and
// handlers; it leaves transport, sessions, authentication and token handling
// to the actors and the edge.
//
// The session actors of a node share MCP servers, up to 64 sessions a server
// (actors/servers.go), and each principal actor builds one, so a toolset
// must be cheap to install: definitions and fixed bytes are shared at
// package level, and Install only registers them.
package tools

import (
	"context"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Toolset is a family of tools, resources and prompts added to the MCP
// server of one session.
//
// Configure and Install are called once per server, in that order, and may be
// called concurrently for different servers; they must not keep per-server
// state beyond what they register on the server itself.
type Toolset interface {
	// Name is the value of --tools that selects this toolset.
	Name() string
	// Configure adjusts the server options before the server is built
	// (completion handler, resource subscription handlers, capabilities...).
	// Called once per server.
	Configure(opts *mcp.ServerOptions)
	// Install adds the toolset's tools, resources and prompts to a new
	// server. caller is the user each call acts for, found from the call's
	// context (a server serves many users' sessions): a tool passes it its
	// handler's ctx, never another. nil when the edge runs without
	// authentication. What a handler changes on s (adding a tool, say)
	// changes it for every session s serves.
	Install(s *mcp.Server, caller Caller)
	// Scopes names, per tool, the scopes a caller's token must carry to
	// call it; the actor refuses the call with insufficient_scope otherwise.
	Scopes() map[string][]string
}

// Caller is the user a session acts for, as far as a toolset may see them:
// the claims of their token, and tokens for downstream APIs obtained on their
// behalf. Never the user's own token: a toolset cannot pass it through.
type Caller interface {
	// Claims are the verified claims of the token of the request the tool
	// call of ctx serves.
	Claims(ctx context.Context) map[string]any
	// Delegate returns a token for the downstream API audience, obtained by
	// RFC 8693 exchange of the token of the request the tool call of ctx
	// serves (never another client's), with scopes narrowed to those that
	// token holds, and cached until shortly before it expires.
	Delegate(ctx context.Context, audience string, scopes []string) (*Delegation, error)
	// Refused tells that the API refused d (401: revoked at the
	// authorization server, say, before its expiry): d is not handed out
	// again, and the next Delegate for the same exchanges anew.
	Refused(ctx context.Context, d *Delegation)
}

// Delegation is a token for a downstream API.
type Delegation struct {
	// Token goes in the downstream call's Authorization header, nowhere
	// else: never into a result, an error or a log line.
	Token  string
	Scopes []string
	Expiry time.Time
	// Claims of the token (read, not verified: for display).
	Claims map[string]any
}

type callKey struct{}

// WithCallKey is ctx naming the tool call it serves by key (see CallKey).
func WithCallKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, callKey{}, key)
}

// CallKey names the tool call of ctx, the same when the client sends that
// call again: its MCP session and its JSON-RPC id, which a client may not
// reuse within a session. It is empty outside a session (the ids of
// stateless requests repeat). A tool uses it to make a retried call land
// once (an Idempotency-Key derived from it), never as a secret.
func CallKey(ctx context.Context) string {
	k, _ := ctx.Value(callKey{}).(string)
	return k
}
