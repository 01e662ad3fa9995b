package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tools"
)

// Tools are the toolsets a node's actors install. Those of --tools stay as
// they are; a reload of --apis replaces its toolset (Replace), and each live
// actor then applies the difference to its own MCP server, on its own
// goroutine (refreshTools): the SDK tells the session's client that the
// tool list changed (notifications/tools/list_changed). Every version has a
// generation; an actor compares its own with the current one when told of a
// change and before each request it serves.
type Tools struct {
	mu  sync.Mutex // serializes Replace
	cur atomic.Pointer[toolsVersion]
}

// toolsVersion is one generation of a node's toolsets. It never changes.
type toolsVersion struct {
	gen  uint64
	sets []tools.Toolset
	// names are the tools each toolset offers a new session, by name: the
	// name of the toolset offering it. Nil for StaticTools.
	names  map[string]string
	scopes map[string][]string
}

// NewTools are sets, which must not offer a tool of the same name: go-sdk
// would keep the one installed last, silently, and a call meant for one
// would run the other (with its scopes). Each toolset is installed on a
// scratch server and its tools listed, as a client would.
func NewTools(ctx context.Context, sets ...tools.Toolset) (*Tools, error) {
	v, err := newToolsVersion(ctx, 1, sets)
	if err != nil {
		return nil, err
	}
	t := &Tools{}
	t.cur.Store(v)
	return t, nil
}

// StaticTools are sets as they are, unchecked and never replaced: for
// actors given Config.Toolsets alone.
func StaticTools(sets ...tools.Toolset) *Tools {
	t := &Tools{}
	t.cur.Store(&toolsVersion{gen: 1, sets: sets, scopes: scopesOf(sets)})
	return t
}

func newToolsVersion(ctx context.Context, gen uint64, sets []tools.Toolset) (*toolsVersion, error) {
	v := &toolsVersion{gen: gen, sets: sets, names: map[string]string{}, scopes: scopesOf(sets)}
	var errs []error
	for _, ts := range sets {
		names, err := toolNames(ctx, ts)
		if err != nil {
			return nil, fmt.Errorf("listing the tools of %s: %w", ts.Name(), err)
		}
		for _, n := range names {
			if other, dup := v.names[n]; dup && other != ts.Name() {
				errs = append(errs, fmt.Errorf("tool %q is offered by both the %s and the %s toolsets: rename one (tools: <operationId>: name: in the --apis file) or leave one out", n, other, ts.Name()))
				continue
			}
			v.names[n] = ts.Name()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return v, nil
}

// toolNames are the tools a toolset offers a new session. A toolset whose
// Install panics (go-sdk's AddTool does on a schema it cannot take) is an
// error here, not a node brought down by a reload.
func toolNames(ctx context.Context, ts tools.Toolset) (names []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			names, err = nil, fmt.Errorf("installing its tools: %v", r)
		}
	}()
	opts := &mcp.ServerOptions{}
	ts.Configure(opts)
	s := mcp.NewServer(&mcp.Implementation{Name: "pingmcp-names"}, opts)
	ts.Install(s, nil)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "pingmcp-names"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, tool.Name)
	}
	return names, nil
}

// scopesOf merges the scopes each toolset's tools need.
func scopesOf(sets []tools.Toolset) map[string][]string {
	out := map[string][]string{}
	for _, ts := range sets {
		for tool, scopes := range ts.Scopes() {
			out[tool] = scopes
		}
	}
	return out
}

// Toolsets are the current toolsets.
func (t *Tools) Toolsets() []tools.Toolset { return slices.Clone(t.cur.Load().sets) }

// Generation numbers the current toolsets: 1 at start, one more per
// replacement.
func (t *Tools) Generation() uint64 { return t.cur.Load().gen }

// ToolsChange is what a replacement changed.
type ToolsChange struct {
	Generation     uint64
	Added, Removed []string // tool names, sorted
	Tools          int      // tools offered now, every toolset's
}

// Replace puts ts in the place of the toolset of the same name (or adds
// it), unless a tool of ts has the name of another toolset's: then nothing
// changes and the error says which. Replacements are serialized. Actors
// apply it when told (Local.ToolsChanged) or before their next request.
func (t *Tools) Replace(ctx context.Context, ts tools.Toolset) (*ToolsChange, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	if old.names == nil {
		return nil, errors.New("these toolsets cannot be replaced")
	}
	sets := slices.Clone(old.sets)
	if i := slices.IndexFunc(sets, func(s tools.Toolset) bool { return s.Name() == ts.Name() }); i >= 0 {
		sets[i] = ts
	} else {
		sets = append(sets, ts)
	}
	v, err := newToolsVersion(ctx, old.gen+1, sets)
	if err != nil {
		return nil, err
	}
	change := &ToolsChange{Generation: v.gen, Tools: len(v.names),
		Added: missingFrom(v.names, old.names), Removed: missingFrom(old.names, v.names)}
	slices.Sort(change.Added)
	slices.Sort(change.Removed)
	t.cur.Store(v)
	return change, nil
}

// toolsChanged tells an actor of its node that the toolsets changed. It
// never leaves the node.
type toolsChanged struct{}

// ToolsChanged tells the live actors that have a stream open or a request
// in flight that the toolsets changed, for each to apply the change to its
// server on its own goroutine, and returns how many it told: their clients
// are told in turn (notifications/tools/list_changed, which reach a client
// only on a stream). The other actors apply it before their next request
// (serveFrom): a node with many idle sessions does not rebuild them all at
// once.
func (l *Local) ToolsChanged(system *actor.ActorSystem) int {
	l.mu.Lock()
	var pids []*actor.PID
	for _, la := range l.pids {
		if la.streams.Load() > 0 || la.inFlight.Load() > 0 {
			pids = append(pids, la.pid)
		}
	}
	l.mu.Unlock()
	for _, pid := range pids {
		system.Root.Send(pid, toolsChanged{})
	}
	return len(pids)
}

// refreshTools brings the actor's server to the current toolsets, on the
// actor's goroutine: the tools no toolset offers any more are removed, the
// toolsets that are new are installed (their tools replacing those of the
// same name), and the scopes the tools need follow. The SDK serializes
// these changes with the requests its server is serving, and tells the
// session's client once that its tool list changed.
func (a *core) refreshTools() {
	if a.cfg.Tools == nil {
		return
	}
	v := a.cfg.Tools.cur.Load()
	old := a.toolsOf
	if v == old {
		return
	}
	if sh := a.shared.Load(); sh != nil {
		// A shared server changes once for all its sessions.
		a.cfg.servers.upgrade(sh, v)
		a.scopes, a.toolsOf = v.scopes, v
		return
	}
	if a.server == nil {
		// No session yet: it takes a server of the current tools.
		a.scopes, a.toolsOf = v.scopes, v
		return
	}
	gone := missingFrom(old.names, v.names)
	if len(gone) > 0 {
		a.server.RemoveTools(gone...)
	}
	for _, ts := range v.sets {
		if !slices.Contains(old.sets, ts) {
			ts.Install(a.server, a.caller)
		}
	}
	a.scopes = v.scopes
	a.toolsOf = v
	a.logger.Debug("tools changed", "generation", v.gen, "removed", len(gone))
}

// missingFrom are the tool names of names that other lacks.
func missingFrom(names, other map[string]string) []string {
	var out []string
	for n := range names {
		if _, ok := other[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}
