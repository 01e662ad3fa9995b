package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

// The stages of the edge, in the order NewEdge composes them. Each is a
// func(http.Handler) http.Handler that either answers the request itself (a
// refusal, or the answer to an OPTIONS) or passes it on; what it learns for
// the later stages it notes in the request's facts.

// closeUnread closes the connection of a request refused before its body
// is read: net/http would otherwise wait, with no time limit, for the body
// it announced before it sends the refusal, so a client that never sends it
// would hold the connection for nothing. readBody keeps the connection open
// once the body is read. A refusal that closes the connection carries no
// Keep-Alive hint (the server's, for connections kept): readBody puts it
// back.
func closeUnread(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			h := w.Header()
			h.Set("Connection", "close")
			if hint := h.Values("Keep-Alive"); len(hint) > 0 {
				factsOf(r).keepAlive = hint
				h.Del("Keep-Alive")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host the edge does not answer to (403: DNS-rebinding
// protection; see Options.AllowedHosts).
func (e *Edge) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.hostAllowed(r.Host) {
			writeError(w, http.StatusForbidden, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("Host %q is not allowed", r.Host)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkResource notes the resource the request's Host names (facts.resource),
// and refuses a Host that names none (421).
func (e *Edge) checkResource(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resource, ok := e.opts.Resources.For(r.Host)
		if !ok {
			writeError(w, http.StatusMisdirectedRequest, nil, rpcerr.New(rpcerr.InvalidRequest, e.opts.Resources.misdirected(r.Host)))
			return
		}
		factsOf(r).resource = resource
		next.ServeHTTP(w, r)
	})
}

// checkOrigin refuses a browser's Origin that is not allowed (403) and
// answers an allowed one's with CORS headers.
func (e *Edge) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			if !e.originAllowed(origin, r.Host) {
				writeError(w, http.StatusForbidden, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("Origin %q is not allowed", origin)))
				return
			}
			setCORS(w.Header(), origin)
		}
		next.ServeHTTP(w, r)
	})
}

// allowedMethods are the methods of /mcp.
const allowedMethods = "GET, POST, DELETE, OPTIONS"

// checkMethod passes on GET, POST and DELETE, answers OPTIONS (a CORS
// preflight when the request has an Origin, which checkOrigin allowed), and
// refuses any other method (405).
func (e *Edge) checkMethod(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodGet, http.MethodDelete:
			next.ServeHTTP(w, r)
		case http.MethodOptions:
			if r.Header.Get("Origin") != "" {
				w.Header().Set("Access-Control-Allow-Methods", allowedMethods)
				w.Header().Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Get("Access-Control-Request-Headers")))
				w.Header().Set("Access-Control-Max-Age", "600")
			}
			w.Header().Set("Allow", allowedMethods)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", allowedMethods)
			writeError(w, http.StatusMethodNotAllowed, nil, rpcerr.New(rpcerr.InvalidRequest, "method not allowed"))
		}
	})
}

// corsHeaders are the request headers a browser client of /mcp sends:
// 2025-11-25's and 2026-07-28's (Mcp-Method, Mcp-Name, and the tools'
// Mcp-Param-* headers, allowed by name as the preflight asks for them).
const corsHeaders = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name"

func allowHeaders(requested string) string {
	out := corsHeaders
	for _, h := range strings.Split(requested, ",") {
		h = strings.TrimSpace(h)
		if len(h) > len("Mcp-Param-") && len(h) <= 128 && strings.EqualFold(h[:len("Mcp-Param-")], "Mcp-Param-") && httpguts.ValidHeaderFieldName(h) {
			out += ", " + h
		}
	}
	return out
}

// checkHeaders refuses a request with a header value that is not UTF-8
// (400). The envelope is protobuf, whose strings must be UTF-8: the edge
// refuses what could not be forwarded, rather than fail on the wire.
func checkHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := headersValid(r.Header); !ok {
			writeError(w, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("header %q is not valid UTF-8", name)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headersValid reports the first header whose value is not valid UTF-8.
func headersValid(h http.Header) (string, bool) {
	for name, values := range h {
		for _, v := range values {
			if !utf8.ValidString(v) {
				return name, false
			}
		}
	}
	return "", true
}

// checkToken authenticates the caller (authenticate) and admits the request
// as one message under its principal's and its user's limits (limits.go),
// notes the token and the principal it carries (facts.token,
// facts.principal), and holds the admission until the later stages return.
// It is admitted before its body is read, so that bodies being read count
// against the caps; a batch's other messages are admitted by admitBatch.
// An address that keeps sending refused credentials gets no expensive
// verification. Without a Verifier it passes every request on.
func (e *Edge) checkToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.opts.Verifier == nil {
			next.ServeHTTP(w, r)
			return
		}
		f := factsOf(r)
		tok, principal, ok := e.authenticate(w, r, f.resource)
		if !ok {
			e.authRefused(w, r)
			return
		}
		release, ref, who := e.admit(tok, 0, 1, holdsStream(r))
		if ref != nil {
			e.refuse(w, r, ref, who)
			return
		}
		defer release()
		f.token, f.principal = tok, principal
		next.ServeHTTP(w, r)
	})
}

// holdsStream says whether r opens a stream its client holds open, which
// the limits count among a principal's streams rather than its requests in
// flight: a GET stream, or a 2026-07-28 subscriptions/listen, the
// stateless protocol's stream for the server's notifications. The body is
// not read yet: a listen is known by its Mcp-Method header, which that
// protocol requires and the go-sdk checks against the body (a request that
// names another method there is refused at once).
func holdsStream(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodPost && r.Header.Get("Mcp-Method") == "subscriptions/listen"
}

// readBody reads a POST's body (facts.body), at most MaxBodyBytes (413
// beyond) within bodyReadTimeout (400 when it cannot be read).
func (e *Edge) readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		// A body that trickles in holds its slot: bound its time too.
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.opts.MaxBodyBytes))
		rc.SetReadDeadline(time.Time{})
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)))
				return
			}
			writeError(w, http.StatusBadRequest, nil, rpcerr.New(rpcerr.ParseError, "could not read request body"))
			return
		}
		f := factsOf(r)
		w.Header().Del("Connection")
		if f.keepAlive != nil {
			w.Header()["Keep-Alive"] = f.keepAlive
		}
		f.body = body
		next.ServeHTTP(w, r)
	})
}

// parseBody reads a POST's body as JSON-RPC, once (internal/rpcbody): that
// reading (facts.rpc) goes with the request to its actor. It refuses a body
// that is not JSON-RPC (400), and a batch beyond MaxBatch as soon as the
// reader meets its message beyond (400). It starts the request's span,
// whose parent the body's _meta may name.
func (e *Edge) parseBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := factsOf(r)
		var err error
		if r.Method == http.MethodPost {
			f.rpc, err = rpcbody.ReadAtMost(f.body, e.opts.MaxBatch)
		}
		r = r.WithContext(f.span.begin(r, f.rpc))
		if err != nil {
			var berr *rpcbody.Error
			errors.As(err, &berr)
			if berr.Limit != "" {
				e.refuseBody(w, r, berr.Limit, berr.Msg, berr.Max)
				return
			}
			writeError(w, http.StatusBadRequest, nil, rpcerr.New(berr.Code, berr.Msg))
			return
		}
		if f.rpc != nil && f.rpc.Batch {
			if v := r.Header.Get(headerProtocolVersion); v >= batchlessVersion {
				// The go-sdk would refuse it in plain text.
				writeError(w, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest,
					fmt.Sprintf("JSON-RPC batches are not part of MCP from %s on (this request's version: %.32q)", batchlessVersion, v)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// admitBatch admits the other messages of an authenticated batch (a batch
// of N is N requests, its first admitted by checkToken), and holds them
// until the later stages return.
func (e *Edge) admitBatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := factsOf(r)
		if f.token != nil && f.rpc != nil && len(f.rpc.Messages) > 1 {
			more, ref, who := e.admit(f.token, 1, len(f.rpc.Messages)-1, false)
			if ref != nil {
				e.refuse(w, r, ref, who)
				return
			}
			defer more()
		}
		next.ServeHTTP(w, r)
	})
}

// checkInitialize refuses an initialize whose params exceed
// MaxInitializeBytes, or cannot open a session (bodyAllowed).
func (e *Edge) checkInitialize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := factsOf(r); !e.bodyAllowed(w, r, f.rpc, f.body) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routeRequest decides which actor serves the request (route; facts.route)
// and refuses one that names no actor (404 for a malformed session id, 400
// for a request without one that is no initialize).
func (e *Edge) routeRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := factsOf(r)
		rt, status, rerr := e.route(r, f.rpc, f.token)
		f.span.routed(rt)
		if status != 0 {
			id := f.rpc.FirstID()
			if status == http.StatusNotFound {
				// As the actor answers an unknown session: no id, so that a
				// client (the go-sdk's) reads the 404 as the session's end,
				// not as one refused call.
				id = nil
			}
			writeError(w, status, id, rerr)
			return
		}
		f.route = rt
		next.ServeHTTP(w, r)
	})
}

// checkSSEHeaders refuses what of a session's stream headers the
// go-sdk refuses whatever the session holds (400, as it does): a GET whose
// Accept does not take the event stream (none at all included: MCP asks
// for it) or whose Last-Event-ID is no event id of its ("<stream>_<index>",
// index a non-negative int), and a POST with a Last-Event-ID: refused
// here, they cost the session's actor nothing (a plain GET would have it
// open the standalone stream in the store before its handler refused it).
// (A refused request of another client of the session's user takes the
// session to that client no more: the actor makes the switch once the
// request is accepted.) A stateless request goes on to its own answer (a
// GET's 405).
func checkSSEHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := factsOf(r)
		if f.route.kind != cluster.SessionKind {
			next.ServeHTTP(w, r)
			return
		}
		ids := r.Header.Values("Last-Event-ID")
		switch r.Method {
		case http.MethodGet:
			accept := r.Header.Values("Accept")
			if _, streamOK := accepts(accept); !streamOK || len(accept) == 0 {
				writeError(w, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest, "Accept must contain 'text/event-stream' for GET requests"))
				return
			}
			if len(ids) > 0 && !eventID(ids[0]) {
				writeError(w, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("malformed Last-Event-ID %.64q", ids[0])))
				return
			}
		case http.MethodPost:
			if len(ids) > 0 {
				writeError(w, http.StatusBadRequest, f.rpc.FirstID(), rpcerr.New(rpcerr.InvalidRequest, "can't send Last-Event-ID for POST request"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// eventID says whether id is an event id as the go-sdk reads one (its
// parseEventID): a stream's name and an index of int range, not negative,
// joined by the one underscore.
func eventID(id string) bool {
	_, index, ok := strings.Cut(id, "_")
	if !ok || strings.Contains(index, "_") {
		return false
	}
	n, err := strconv.Atoi(index)
	return err == nil && n >= 0
}
