// Package admin is pingmcp's operator API: JSON over HTTP on a listener of
// its own (--admin-addr), never the /mcp one, and never unauthenticated.
//
//	GET    /admin/v1/sessions?user=&client=&cursor=&limit=   sessions of the whole cluster
//	GET    /admin/v1/sessions/{id}                           one session, with its cached tokens described
//	DELETE /admin/v1/sessions/{id}                           end a session
//	POST   /admin/v1/users/{subject}/revoke?for=&issuer=     end a user's sessions, refuse their current tokens
//	GET    /admin/v1/nodes                                   the cluster's members as this node sees them
//	GET    /metrics                                          Prometheus metrics of this node
//
// Sessions are read from the session store that every node shares (Redis),
// so any node's admin API lists every session, passivated or live. No
// response carries a token value.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// Options configure the admin API.
type Options struct {
	// Token is the static admin bearer token (--admin-token-file); it must
	// not be empty.
	Token      string
	Durability *actors.Durability
	Node       *cluster.Node
	// Issuer is the authorization server whose users are revoked when a
	// revocation names none.
	Issuer string
	Logger *slog.Logger
}

// Handler serves the admin API.
func Handler(opts Options) (http.Handler, error) {
	if strings.TrimSpace(opts.Token) == "" {
		return nil, errors.New("the admin API needs a token")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &api{opts: opts, token: []byte(strings.TrimSpace(opts.Token))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/sessions", a.listSessions)
	mux.HandleFunc("GET /admin/v1/sessions/{id}", a.showSession)
	mux.HandleFunc("DELETE /admin/v1/sessions/{id}", a.endSession)
	mux.HandleFunc("GET /admin/v1/nodes", a.listNodes)
	mux.HandleFunc("POST /admin/v1/users/{subject}/revoke", a.revokeUser)
	mux.Handle("GET /metrics", metrics.Handler())
	return a.authenticate(mux), nil
}

type api struct {
	opts  Options
	token []byte
}

// authenticate lets through only requests bearing the admin token.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pingmcp-admin"`)
			writeError(w, http.StatusUnauthorized, "an admin bearer token is required")
			return
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pingmcp-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid admin token")
			return
		}
		a.opts.Logger.Info("admin request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		next.ServeHTTP(w, r)
	})
}

const (
	defaultLimit = 50
	maxLimit     = 500
)

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and "+strconv.Itoa(maxLimit))
			return
		}
		limit = n
	}
	user, client := q.Get("user"), q.Get("client")
	page, next, err := a.opts.Durability.Snapshots.List(r.Context(), q.Get("cursor"), limit)
	if err != nil {
		a.opts.Logger.Warn("admin: list sessions", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the session store cannot be read: "+err.Error())
		return
	}
	out := []actors.SessionInfo{}
	for _, st := range page {
		info, err := a.opts.Durability.Describe(st.Session, st.Snapshot, false)
		if err != nil {
			continue // a snapshot of another version, or unreadable
		}
		if (user != "" && info.Subject != user) || (client != "" && info.ClientID != client) {
			continue
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "next": next})
}

// find reads the session named in the path, or writes 404.
func (a *api) find(w http.ResponseWriter, r *http.Request) (actors.SessionInfo, bool) {
	id := r.PathValue("id")
	snap, err := a.opts.Durability.Snapshots.Get(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the session store cannot be read: "+err.Error())
		return actors.SessionInfo{}, false
	}
	if snap == nil {
		writeError(w, http.StatusNotFound, "no such session")
		return actors.SessionInfo{}, false
	}
	info, err := a.opts.Durability.Describe(id, snap, true)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the session's snapshot cannot be read: "+err.Error())
		return info, false
	}
	return info, true
}

func (a *api) showSession(w http.ResponseWriter, r *http.Request) {
	if info, ok := a.find(w, r); ok {
		writeJSON(w, http.StatusOK, info)
	}
}

func (a *api) endSession(w http.ResponseWriter, r *http.Request) {
	info, ok := a.find(w, r)
	if !ok {
		return
	}
	if err := a.opts.Durability.End(r.Context(), info.ID); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the session could not be ended: "+err.Error())
		return
	}
	a.stopActor(r, info.ID, "ended by an operator")
	a.opts.Logger.Info("admin: session ended", "session", info.ID, "subject", info.Subject, "client_id", info.ClientID)
	w.WriteHeader(http.StatusNoContent)
}

// maxRevocation bounds how long a revocation lasts.
const maxRevocation = 30 * 24 * time.Hour

// revokeUser refuses the user's tokens issued until now, on every node
// within a second, for the time asked (default 1 h), and ends every session
// of theirs.
func (a *api) revokeUser(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	q := r.URL.Query()
	issuer := q.Get("issuer")
	if issuer == "" {
		issuer = a.opts.Issuer
	}
	span := time.Hour
	if s := q.Get("for"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > maxRevocation {
			writeError(w, http.StatusBadRequest, "for must be a duration between 1s and 720h")
			return
		}
		span = d
	}
	now := time.Now()
	rev := state.Revocation{At: now, Until: now.Add(span)}
	if err := a.opts.Durability.Revocations.Revoke(r.Context(), state.RevocationKey(issuer, subject), rev); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the revocation could not be stored: "+err.Error())
		return
	}
	ended := 0
	err := a.eachSession(r, func(info actors.SessionInfo) error {
		if info.Subject != subject || info.Issuer != issuer {
			return nil
		}
		if err := a.opts.Durability.End(r.Context(), info.ID); err != nil {
			return err
		}
		a.stopActor(r, info.ID, "user revoked by an operator")
		ended++
		return nil
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "revoked, but the sessions could not all be ended: "+err.Error())
		return
	}
	a.opts.Logger.Info("admin: user revoked", "issuer", issuer, "subject", subject, "until", rev.Until, "sessions_ended", ended)
	writeJSON(w, http.StatusOK, map[string]any{"issuer": issuer, "subject": subject, "revoked_at": rev.At, "until": rev.Until, "sessions_ended": ended})
}

// eachSession calls f with every stored session the node can read, page by
// page, until f fails.
func (a *api) eachSession(r *http.Request, f func(actors.SessionInfo) error) error {
	cursor := ""
	for {
		page, next, err := a.opts.Durability.Snapshots.List(r.Context(), cursor, maxLimit)
		if err != nil {
			return err
		}
		for _, st := range page {
			info, err := a.opts.Durability.Describe(st.Session, st.Snapshot, false)
			if err != nil {
				continue // a snapshot of another version, or unreadable
			}
			if err := f(info); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// stopActor stops the session's live actor wherever it is, so that its
// requests and streams end now, not at its next write. The session is
// already gone from the store, so a failure here only delays that.
func (a *api) stopActor(r *http.Request, id, reason string) {
	if a.opts.Node == nil {
		return
	}
	if err := a.opts.Node.StopActor(r.Context(), cluster.SessionKind, id, reason); err != nil {
		a.opts.Logger.Warn("admin: the session's actor could not be told to stop; it stops at its next request", "session", id, "err", err)
	}
}

func (a *api) listNodes(w http.ResponseWriter, r *http.Request) {
	type nodeInfo struct {
		ID      string   `json:"id"`
		Address string   `json:"address"`
		Kinds   []string `json:"kinds"`
		Self    bool     `json:"self"`
	}
	out := []nodeInfo{}
	for _, m := range a.opts.Node.Members() {
		out = append(out, nodeInfo{ID: m.Id, Address: m.Address(), Kinds: m.Kinds, Self: m.Address() == a.opts.Node.Address()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
