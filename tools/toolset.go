// Package tools holds the MCP toolsets pingmcp can offer a client: the
// families of tools, resources and prompts that the session and principal
// actors add to the MCP server they run. A toolset owns its definitions and
// handlers; it leaves transport, sessions, authentication and token handling
// to the actors and the edge.
//
// One *mcp.Server is built per session actor and per principal actor, so a
// toolset must be cheap to install: definitions and fixed bytes are shared at
// package level, and Install only registers them.
package tools

import "github.com/modelcontextprotocol/go-sdk/mcp"

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
	// Install adds the toolset's tools, resources and prompts to a new server.
	Install(s *mcp.Server)
}
