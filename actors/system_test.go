package actors

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
)

// testSessions is a plain actor system (no cluster) and the props of
// session actors of cfg, whose unset Implementation, Toolsets (the
// conformance toolset), SchemaCache and Logger (discarded) take test
// defaults; the system is shut down with the test.
func testSessions(tb testing.TB, cfg Config) (*actor.ActorSystem, *actor.Props) {
	if cfg.Implementation == nil {
		cfg.Implementation = &mcp.Implementation{Name: "pingmcp", Version: "test"}
	}
	if cfg.Toolsets == nil {
		cfg.Toolsets = []tools.Toolset{conformance.New()}
	}
	if cfg.SchemaCache == nil {
		cfg.SchemaCache = mcp.NewSchemaCache()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
	tb.Cleanup(system.Shutdown)
	return system, SessionProps(cfg)
}
