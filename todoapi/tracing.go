package todoapi

import (
	"net/http"

	"github.com/pingmcp/pingmcp/telemetry"
)

// ServeHTTP serves one request inside a server span ("todo-api " + method)
// whose parent is the caller's traceparent, so that a tool call's trace
// reaches this API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	telemetry.Handler(http.HandlerFunc(a.serve), "todo-api").ServeHTTP(w, r)
}
