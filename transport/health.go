package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/state"
)

// Health serves /healthz (the process is alive and serving HTTP) and /readyz
// (the node can take traffic: it has joined the cluster, is not draining,
// and, if it forwards requests, some member hosts sessions). Both answer
// JSON. draining, if set, reports a node on its way out. store, if set,
// checks the session store: a node whose store is unreachable stays ready,
// since its live sessions go on from memory, and says "degraded".
func Health(node *cluster.Node, role cluster.Role, draining *atomic.Bool, store func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		members := node.Members()
		body := map[string]any{"status": "ready", "node": node.Address(), "role": role, "members": len(members)}
		if draining != nil && draining.Load() {
			body["status"], body["reason"] = "draining", "the node is shutting down; its sessions continue on other nodes"
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		if err := node.Ready(); err != nil {
			body["status"], body["reason"] = "not ready", err.Error()
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		if store != nil {
			ctx, cancel := context.WithTimeout(r.Context(), storeCheckTimeout)
			defer cancel()
			if err := store(ctx); errors.Is(err, state.ErrEvicting) {
				body["status"], body["store"] = "degraded", "refused: "+err.Error()
			} else if err != nil {
				body["status"], body["store"] = "degraded", "unreachable: "+err.Error()
			} else {
				body["store"] = "ok"
			}
		}
		writeJSON(w, http.StatusOK, body)
	})
	return mux
}

// storeCheckTimeout bounds the store check of /readyz.
const storeCheckTimeout = 500 * time.Millisecond

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
