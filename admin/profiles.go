package admin

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"
	"strconv"
	"strings"
)

// maxProfileSeconds bounds what a CPU profile or an execution trace may
// ask for (?seconds=): the runtime holds one CPU profile at a time.
const maxProfileSeconds = 120

// profiles serves the Go runtime's profiles of this node to operators, as
// net/http/pprof does, behind the admin API's authentication and audit:
// GET /debug/pprof/ (the index, and each runtime profile by name: heap,
// allocs, goroutine, threadcreate, block, mutex; ?seconds= for a delta),
// /debug/pprof/profile (CPU, 30 s by default) and /debug/pprof/trace (an
// execution trace, 1 s by default), ?seconds= up to maxProfileSeconds on
// each. Not /debug/pprof/cmdline: a node's command line may hold a secret
// given as a flag (--client-secret); the index answers it, as any name it
// does not know, with 404.
//
// Importing net/http/pprof also registers its handlers, cmdline included
// and unauthenticated, on http.DefaultServeMux: no server of pingmcp's
// serves that mux (each has a handler of its own), and none may.
func profiles(mux *http.ServeMux) {
	mux.Handle("GET /debug/pprof/", boundedSeconds(knownProfile(http.HandlerFunc(pprof.Index))))
	mux.Handle("GET /debug/pprof/profile", boundedSeconds(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", boundedSeconds(http.HandlerFunc(pprof.Trace)))
}

// knownProfile answers a name that is no runtime profile (cmdline among
// them) as the API answers a path that is no route, 404 in JSON: the
// index answered it in plain text.
func knownProfile(index http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name != "" && runtimepprof.Lookup(name) == nil {
			writeError(w, http.StatusNotFound, "no such profile: see /debug/pprof/")
			return
		}
		index.ServeHTTP(w, r)
	})
}

// boundedSeconds refuses a ?seconds= that is not a whole number of seconds
// from 1 to maxProfileSeconds with 400.
func boundedSeconds(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("seconds"); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > maxProfileSeconds {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be a whole number from 1 to %d", maxProfileSeconds))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
