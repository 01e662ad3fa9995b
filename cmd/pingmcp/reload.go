package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/tools/openapi"
)

// reloadTimeout bounds one reload: reading the APIs file, fetching its
// documents (each fetch is bounded by --upstream-timeout as well) and
// building the tools.
const reloadTimeout = time.Minute

// apisReloader reloads the toolset of --apis: the file (the one named at
// start: a reload never changes the path) and the documents it names,
// fetched again, checked as at start. A reload refused for any reason
// changes nothing; one that succeeds replaces the toolset, and every live
// actor of the node applies the change to its server (actors.Tools).
type apisReloader struct {
	cfg    *config.Config // the node's; its APIs are those of the start
	tools  *actors.Tools
	local  *actors.Local
	system func() *actor.ActorSystem // nil until the node has joined
	logger *slog.Logger

	mu sync.Mutex // one reload at a time
}

// errNoAPIs is a reload's answer on a node started without --apis.
var errNoAPIs = errors.New("this node was started without --apis: there is nothing to reload (the file cannot be named by a reload)")

// reload reloads the APIs, as SIGHUP or an operator asked (why), and says
// what happened; the error names each API, operation and reason refused.
func (r *apisReloader) reload(ctx context.Context, why string) *envelope.ApisReload {
	if r.cfg.APIsFile == "" {
		return &envelope.ApisReload{Error: errNoAPIs.Error(), Generation: r.tools.Generation()}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	start := time.Now()
	change, err := r.replace(ctx)
	if err != nil {
		metrics.APIsReloads.WithLabelValues("refused").Inc()
		r.logger.Error("--apis reload refused: the tools stay as they were", "asked_by", why, "file", r.cfg.APIsFile,
			"generation", r.tools.Generation(), "err", err)
		return &envelope.ApisReload{Error: bounded(err.Error()), Generation: r.tools.Generation()}
	}
	metrics.APIsReloads.WithLabelValues("reloaded").Inc()
	told := 0
	if r.system != nil {
		if system := r.system(); system != nil {
			told = r.local.ToolsChanged(system)
		}
	}
	r.logger.Info("--apis reloaded", "asked_by", why, "file", r.cfg.APIsFile, "generation", change.Generation,
		"tools", change.Tools, "added", change.Added, "removed", change.Removed, "actors_told", told,
		"took", time.Since(start).Round(time.Millisecond))
	return &envelope.ApisReload{Reloaded: true, Generation: change.Generation, Tools: int32(change.Tools),
		Added: change.Added, Removed: change.Removed}
}

// maxReloadError bounds the error a reload answers the operator with (a
// document with a thousand refused operations says so at length); the
// node's log has all of it.
const maxReloadError = 32 << 10

func bounded(msg string) string {
	if len(msg) <= maxReloadError {
		return msg
	}
	cut := strings.ToValidUTF8(msg[:maxReloadError], "")
	return cut + fmt.Sprintf("… (%d more bytes: see the node's log)", len(msg)-len(cut))
}

// replace builds the toolset anew and puts it in the old one's place.
func (r *apisReloader) replace(ctx context.Context) (*actors.ToolsChange, error) {
	apis, err := openapi.ReadFile(r.cfg.APIsFile)
	if err != nil {
		return nil, fmt.Errorf("--apis: %w", err)
	}
	now := *r.cfg
	now.APIs = apis
	for _, w := range now.APIWarnings() {
		r.logger.Warn(w)
	}
	ts, err := openapi.New(ctx, apis, apisOptions(&now))
	if err != nil {
		return nil, fmt.Errorf("--apis %s: %w", r.cfg.APIsFile, err)
	}
	return r.tools.Replace(ctx, ts)
}

// onHangup reloads the APIs on each SIGHUP until ctx is done.
func (r *apisReloader) onHangup(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if res := r.reload(ctx, "SIGHUP"); res.Error == errNoAPIs.Error() {
					r.logger.Warn("SIGHUP: " + res.Error)
				}
			}
		}
	}()
}
