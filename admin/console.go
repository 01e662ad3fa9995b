package admin

// The operator console: HTML pages on the admin listener over the same
// session store as the JSON API.
//
//	GET  /console/                    sessions, filtered by ?user= and ?client=, a page at a time (?cursor=)
//	GET  /console/sessions/{id}       one session, with its cached exchanged tokens described
//	POST /console/sessions/{id}/end   end it, then back to the list
//	GET  /console/tasks               durable tasks, filtered by ?user=, ?client=, ?session=, ?status=
//	GET  /console/tasks/{owner}/{id}  one task
//	POST /console/tasks/{owner}/{id}/cancel   cancel it, then back to its page
//	GET  /console/login               the sign-in form; POST /console/login signs in
//	POST /console/logout              sign out
//
// The pages are rendered on the server (html/template) and refresh
// themselves with <meta http-equiv="refresh">: no script at all, so the
// Content-Security-Policy forbids every script and every fetch.
//
// An operator signs in with an admin token, checked as the API checks a
// bearer token. The token is not kept: the browser gets a random console
// session id in an HttpOnly, SameSite=Strict cookie, and this node keeps,
// in memory, whose it is for at most consoleLoginTTL. A sign-in is thus
// good on the node that took it only (the admin listener is per node), and
// is lost when that node restarts. Forms that change something also carry a
// per-sign-in CSRF token and must come from the console's own origin.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/redisscan"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/telemetry"
)

const (
	consoleCookie = "pingmcp_console"
	consoleRoot   = "/console/"
	consoleLogin  = "/console/login"
	// consoleLoginTTL is how long a sign-in lasts, however active.
	consoleLoginTTL = 8 * time.Hour
	// maxConsoleLogins bounds the sign-ins a node remembers; past it, the
	// oldest goes.
	maxConsoleLogins = 1024
	// maxConsoleForm bounds a form's body: an access token is a few KB.
	maxConsoleForm = 64 << 10
)

//go:embed console/*.html
var consoleFiles embed.FS

var consolePages = template.Must(template.New("console").Funcs(template.FuncMap{
	"when": when,
	"ago":  ago,
	// shown is what a client chose (its name and version, a task's
	// message): its control and formatting characters escaped (a
	// right-to-left override would reorder the rest of the row).
	"shown": telemetry.Printable,
	"join":  strings.Join,
	// endForm is what the "end" template needs: a session and the CSRF token.
	"endForm": func(id, csrf string) struct{ ID, CSRF string } { return struct{ ID, CSRF string }{id, csrf} },
	// cancelForm is what the "cancel" template needs: a task and the CSRF
	// token.
	"cancelForm": func(owner, id, csrf string) struct{ Owner, ID, CSRF string } {
		return struct{ Owner, ID, CSRF string }{owner, id, csrf}
	},
	"ended": func(status string) bool { return (&taskstore.Task{Status: status}).Terminal() },
	"json": func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	},
}).ParseFS(consoleFiles, "console/*.html"))

// consoleSignIn is one operator signed in to the console.
type consoleSignIn struct {
	op      *Operator
	csrf    string
	expires time.Time
}

// console serves the console's pages for api.
type console struct {
	a *api

	mu      sync.Mutex
	signIns map[[sha256.Size]byte]*consoleSignIn // by the hash of the cookie's value
	// refusedLog bounds the log lines of refused sign-ins and cross-origin
	// forms (5 a second).
	refusedLog telemetry.Throttle
}

// consoleView is what a page shows.
type consoleView struct {
	Page     string // names the page for tests and styles: list, session, login, error
	Title    string
	Refresh  bool
	Operator string // empty: signed out
	CSRF     string
	Message  string
	// EndID, on an error page, is a session the page offers to end (one
	// whose snapshot cannot be read).
	EndID string

	// The session list.
	User, Client, Node string
	Cursor             string
	NextURL            string
	Sessions           []state.SessionInfo

	// One session.
	Session *state.SessionInfo

	// The task list (User, Client, Cursor, NextURL as for sessions), and
	// one task.
	SessionFilter, Status string
	Statuses              []string
	Tasks                 []TaskInfo
	Task                  *TaskInfo
}

// console returns the console's handler. It does its own authentication:
// mount it outside authenticate.
func (a *api) console() http.Handler {
	c := &console{a: a, signIns: map[[sha256.Size]byte]*consoleSignIn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consoleRoot, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/login", c.loginForm)
	mux.HandleFunc("POST /console/login", c.sameOrigin(c.login))
	mux.HandleFunc("POST /console/logout", c.change(c.logout))
	mux.HandleFunc("GET /console/{$}", c.signedIn(c.list))
	mux.HandleFunc("GET /console/sessions/{id}", c.signedIn(c.show))
	mux.HandleFunc("POST /console/sessions/{id}/end", c.change(c.end))
	mux.HandleFunc("GET /console/tasks", c.signedIn(c.listTasks))
	mux.HandleFunc("GET /console/tasks/{owner}/{id}", c.signedIn(c.showTask))
	mux.HandleFunc("POST /console/tasks/{owner}/{id}/cancel", c.change(c.cancelTask))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, http.StatusNotFound, "error", &consoleView{Page: "error", Title: "Not found", Message: "There is no such page."})
	})
	return a.audited(mux, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		// Not no-referrer: Chromium then sends "Origin: null" with the
		// console's own forms.
		h.Set("Referrer-Policy", "same-origin")
		mux.ServeHTTP(w, r)
	}))
}

// signedIn lets through only a signed-in operator's requests; others are
// sent to the sign-in form.
func (c *console) signedIn(h func(http.ResponseWriter, *http.Request, *consoleSignIn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			http.Redirect(w, r, consoleLogin, http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// change guards a form that changes something: it must come from the
// console's own origin, from a signed-in operator, with their CSRF token.
func (c *console) change(h func(http.ResponseWriter, *http.Request, *consoleSignIn)) http.HandlerFunc {
	return c.sameOrigin(func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			noteDenied(w)
			http.Redirect(w, r, consoleLogin, http.StatusSeeOther)
			return
		}
		noteOperator(w, s.op)
		readForm(w, r)
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			c.a.opts.Logger.Warn("admin console: form without its CSRF token refused", "path", r.URL.Path, "remote", r.RemoteAddr, "operator", s.op.String())
			c.render(w, http.StatusForbidden, "error", &consoleView{Page: "error", Title: "Refused",
				Message: "This form is out of date or did not come from the console. Reload the page and try again."})
			return
		}
		h(w, r, s)
	})
}

// sameOrigin refuses a POST that a browser says comes from a page of
// another origin. Origin (and Sec-Fetch-Site) are set by the browser, not
// by the page; a request without them comes from no browser page.
func (c *console) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok := true
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			ok = false
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			ok = ok && err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
		}
		if !ok {
			// Anyone may send it, unauthenticated: throttled, and clipped.
			c.refusedLog.Log(c.a.opts.Logger, slog.LevelWarn, "admin console: cross-origin form refused", "path", telemetry.Clip(r.URL.Path),
				"remote", r.RemoteAddr, "origin", telemetry.Clip(r.Header.Get("Origin")))
			c.render(w, http.StatusForbidden, "error", &consoleView{Page: "error", Title: "Refused",
				Message: "This form was sent from another site."})
			return
		}
		h(w, r)
	}
}

// current returns the sign-in the request's cookie names, if it is still
// good.
func (c *console) current(r *http.Request) *consoleSignIn {
	ck, err := r.Cookie(consoleCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(ck.Value))
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.signIns[key]
	if s == nil {
		return nil
	}
	if !time.Now().Before(s.expires) || !s.op.stillValid(c.a.opts.Revoked) {
		delete(c.signIns, key)
		return nil
	}
	return s
}

// remember keeps a new sign-in under id, after sweeping the expired ones
// and, when full, the oldest.
func (c *console) remember(id string, s *consoleSignIn) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.signIns {
		if !now.Before(v.expires) {
			delete(c.signIns, k)
		}
	}
	for len(c.signIns) >= maxConsoleLogins {
		var oldest [sha256.Size]byte
		var first *consoleSignIn
		for k, v := range c.signIns {
			if first == nil || v.expires.Before(first.expires) {
				oldest, first = k, v
			}
		}
		delete(c.signIns, oldest)
	}
	c.signIns[sha256.Sum256([]byte(id))] = s
}

// forget ends the sign-in the request's cookie names.
func (c *console) forget(r *http.Request) {
	if ck, err := r.Cookie(consoleCookie); err == nil {
		c.mu.Lock()
		delete(c.signIns, sha256.Sum256([]byte(ck.Value)))
		c.mu.Unlock()
	}
}

// newSecret returns 256 random bits, base64url.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: value, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func (c *console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, consoleRoot, http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "login", &consoleView{Page: "login", Title: "Sign in"})
}

// formTimeout bounds the time a request's body may take to arrive
// (boundBody): a sign-in is posted by anyone, and one that trickles in
// must not hold its connection for good. A variable for the tests.
var formTimeout = 10 * time.Second

// readForm reads a console form's body (r.PostForm): at most
// maxConsoleForm bytes, arriving within formTimeout (boundBody); a form
// that does not is read as empty, and refused as such. The whole body is
// read, whatever its type (ParseForm reads only a urlencoded one, and the
// server would wait for the rest of another after the handler); a body
// that failed keeps its deadline, so that the server does not wait for its
// rest either (it closes the connection).
func readForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxConsoleForm)
	r.ParseForm()
	io.Copy(io.Discard, r.Body)
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	readForm(w, r)
	token := r.PostFormValue("token")
	op, why := c.a.check(r, token)
	if why != nil {
		c.a.spend(r, why)
		status, msg := c.refusal(why, token)
		if why.limited != nil {
			w.Header().Set("Retry-After", strconv.Itoa(why.limited.Seconds()))
		}
		// Anyone can post one.
		c.refusedLog.Log(c.a.opts.Logger, slog.LevelWarn, "admin console: sign-in refused", "remote", r.RemoteAddr, "reason", msg)
		c.render(w, status, "login", &consoleView{Page: "login", Title: "Sign in", Message: msg})
		return
	}
	noteOperator(w, op)
	c.forget(r)
	id := newSecret()
	c.remember(id, &consoleSignIn{op: op, csrf: newSecret(), expires: time.Now().Add(consoleLoginTTL)})
	c.setCookie(w, r, id, int(consoleLoginTTL/time.Second))
	c.a.opts.Logger.Info("admin console: signed in", "operator", op.String(), "remote", r.RemoteAddr)
	http.Redirect(w, r, consoleRoot, http.StatusSeeOther)
}

// refusal says why a token does not sign in, without repeating it.
func (c *console) refusal(why *refusal, token string) (int, string) {
	switch {
	case why.limited != nil:
		return http.StatusTooManyRequests, fmt.Sprintf("Too many refused tokens came from this address: try again in %d s.", why.limited.Seconds())
	case why.unavailable:
		return http.StatusServiceUnavailable, "The authorization server could not be reached to check this token. Try again."
	case why.err == nil:
		return http.StatusUnauthorized, "Enter an admin token."
	case why.metrics:
		return http.StatusForbidden, "This is the metrics token: it reads /metrics only, never the console."
	case why.err.Code == auth.CodeInsufficientScope:
		return http.StatusForbidden, "This token lacks the admin scope (" + c.a.opts.Scope + ")."
	}
	msg := "This token was refused"
	if d := why.err.Description; d != "" && !strings.Contains(d, strings.TrimSpace(token)) {
		msg += ": " + d
	}
	return http.StatusUnauthorized, msg + "."
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	c.forget(r)
	c.setCookie(w, r, "", -1)
	c.a.opts.Logger.Info("admin console: signed out", "operator", s.op.String(), "remote", r.RemoteAddr)
	http.Redirect(w, r, consoleLogin, http.StatusSeeOther)
}

func (c *console) list(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	q := r.URL.Query()
	v := c.view(s, "list", "Sessions")
	v.User, v.Client, v.Node, v.Cursor = q.Get("user"), q.Get("client"), q.Get("node"), q.Get("cursor")
	sessions, next, err := c.a.sessionPage(r.Context(), v.User, v.Client, v.Node, v.Cursor, defaultLimit)
	if errors.Is(err, redisscan.ErrBadCursor) {
		c.failed(w, s, http.StatusBadRequest, "This page's cursor is not one the console gave: start from the first page.")
		return
	}
	if err != nil {
		c.unavailable(w, s, "The session store cannot be read: "+err.Error())
		return
	}
	if next != "" {
		v.NextURL = consoleRoot + "?" + url.Values{"user": {v.User}, "client": {v.Client}, "node": {v.Node}, "cursor": {next}}.Encode()
	}
	v.Sessions = sessions
	c.render(w, http.StatusOK, "list", v)
}

func (c *console) show(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	info, ok := c.find(w, r, s)
	if !ok {
		return
	}
	v := c.view(s, "session", "Session "+info.ID)
	v.Session = &info
	c.render(w, http.StatusOK, "session", v)
}

// end ends the session, as DELETE /admin/v1/sessions/{id} does: one whose
// snapshot cannot be read too.
func (c *console) end(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	info, found, err := c.a.storedSession(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		c.unavailable(w, s, "The session store cannot be read: "+err.Error())
		return
	case !found:
		v := c.view(s, "error", "No such session")
		v.Message = "There is no such session: it ended, expired, or never was."
		c.render(w, http.StatusNotFound, "error", v)
		return
	}
	noteUnreadable(w, info)
	revoked, err := c.a.terminate(r, info.ID)
	if err != nil {
		c.unavailable(w, s, "The session could not be ended: "+err.Error())
		return
	}
	c.a.logEnded("admin console: session ended", info, revoked, s.op)
	http.Redirect(w, r, consoleRoot, http.StatusSeeOther)
}

// find reads the session named in the path, or writes the page that says
// why not.
func (c *console) find(w http.ResponseWriter, r *http.Request, s *consoleSignIn) (state.SessionInfo, bool) {
	info, found, err := c.a.describeSession(r.Context(), r.PathValue("id"))
	switch {
	case err != nil && !found:
		c.unavailable(w, s, "The session store cannot be read: "+err.Error())
	case err != nil:
		v := c.view(s, "error", "Unreadable session")
		v.Message = "The session's snapshot cannot be read: " + snapshotWhy(err)
		v.EndID = r.PathValue("id") // it can be ended all the same
		c.render(w, http.StatusInternalServerError, "error", v)
	case !found:
		v := c.view(s, "error", "No such session")
		v.Message = "There is no such session: it ended, expired, or never was."
		c.render(w, http.StatusNotFound, "error", v)
	}
	return info, found && err == nil
}

func (c *console) listTasks(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	q := r.URL.Query()
	v := c.view(s, "tasks", "Tasks")
	v.User, v.Client, v.SessionFilter, v.Status, v.Cursor = q.Get("user"), q.Get("client"), q.Get("session"), q.Get("status"), q.Get("cursor")
	v.Statuses = taskStatuses
	f, status, err := c.a.parseTaskFilter(r.Context(), q)
	if err != nil {
		c.failed(w, s, status, err.Error())
		return
	}
	tasks, next, err := c.a.taskPage(r.Context(), f, v.Cursor, defaultLimit)
	if errors.Is(err, taskstore.ErrBadCursor) {
		c.failed(w, s, http.StatusBadRequest, "This page's cursor is not one the console gave: start from the first page.")
		return
	}
	if err != nil {
		c.failed(w, s, http.StatusServiceUnavailable, "The task store cannot be read: "+err.Error())
		return
	}
	if next != "" {
		v.NextURL = "/console/tasks?" + url.Values{"user": {v.User}, "client": {v.Client}, "session": {v.SessionFilter}, "status": {v.Status}, "cursor": {next}}.Encode()
	}
	v.Tasks = tasks
	c.render(w, http.StatusOK, "tasks", v)
}

// findTask reads the task named in the path, or writes the page that says
// why not.
func (c *console) findTask(w http.ResponseWriter, r *http.Request, s *consoleSignIn) (*taskstore.Task, bool) {
	t, err := c.a.opts.Stores.Tasks.Get(r.Context(), r.PathValue("owner"), r.PathValue("id"))
	if status, msg := taskFailure(t, err); status != 0 {
		c.failed(w, s, status, msg)
		return nil, false
	}
	return t, true
}

func (c *console) showTask(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	t, ok := c.findTask(w, r, s)
	if !ok {
		return
	}
	info := describeTask(t)
	v := c.view(s, "task", "Task "+info.ID)
	v.Task = &info
	c.render(w, http.StatusOK, "task", v)
}

func (c *console) cancelTask(w http.ResponseWriter, r *http.Request, s *consoleSignIn) {
	owner, id := r.PathValue("owner"), r.PathValue("id")
	t, err := c.a.cancelTask(r, s.op, owner, id)
	if errors.Is(err, errTaskEnded) {
		c.failed(w, s, http.StatusConflict, "The task already ended ("+t.Status+"): there is nothing to cancel.")
		return
	}
	if status, msg := taskFailure(t, err); status != 0 {
		c.failed(w, s, status, msg)
		return
	}
	http.Redirect(w, r, "/console/tasks/"+url.PathEscape(owner)+"/"+url.PathEscape(id), http.StatusSeeOther)
}

// failed writes the error page of a request that failed with status: a
// store that cannot be read refreshes itself.
func (c *console) failed(w http.ResponseWriter, s *consoleSignIn, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		c.unavailable(w, s, msg)
		return
	}
	v := c.view(s, "error", http.StatusText(status))
	v.Message = msg
	c.render(w, status, "error", v)
}

func (c *console) unavailable(w http.ResponseWriter, s *consoleSignIn, msg string) {
	v := c.view(s, "error", "Store unavailable")
	v.Message, v.Refresh = msg, true
	w.Header().Set("Retry-After", "2")
	c.render(w, http.StatusServiceUnavailable, "error", v)
}

func (c *console) view(s *consoleSignIn, page, title string) *consoleView {
	return &consoleView{Page: page, Title: title, Refresh: page == "list" || page == "session" || page == "tasks" || page == "task", Operator: s.op.String(), CSRF: s.csrf}
}

// render writes a page whole, or a 500 if it cannot be rendered.
func (c *console) render(w http.ResponseWriter, status int, name string, v *consoleView) {
	var b bytes.Buffer
	if err := consolePages.ExecuteTemplate(&b, name, v); err != nil {
		c.a.opts.Logger.Error("admin console: render a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// sessionPage reads a page of stored sessions, up to limit after cursor,
// keeping those of user, client and node (each empty: any), marked live or
// not, and returns the cursor of the next page ("" at the end). A page may
// thus hold fewer than limit sessions with more to come. A session whose
// snapshot cannot be read (too large, not a string in Redis, not a
// snapshot this node decodes) is there all the same, with its id and why
// (Unreadable), so that an operator can see it and end it; since nothing
// says whose it is or where it ran, no filter matches it: it is kept only
// when none is given.
func (a *api) sessionPage(ctx context.Context, user, client, node, cursor string, limit int) ([]state.SessionInfo, string, error) {
	page, next, err := a.opts.Stores.Snapshots.List(ctx, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	out := []state.SessionInfo{}
	for _, st := range page {
		err := st.Unreadable
		var info state.SessionInfo
		if err == nil {
			info, err = a.opts.Stores.Describe(st.Session, st.Snapshot, false)
		}
		if err != nil {
			if user == "" && client == "" && node == "" {
				out = append(out, unreadable(st.Session, err))
			}
			continue
		}
		if (user != "" && info.Subject != user) || (client != "" && info.ClientID != client) || (node != "" && info.Node != node) {
			continue
		}
		out = append(out, info)
	}
	a.markLive(ctx, out)
	return out, next, nil
}

// describeSession reads one stored session with its cached tokens
// described. found is false if there is none; an error with found set
// means its snapshot cannot be read, without it that the store cannot.
func (a *api) describeSession(ctx context.Context, id string) (info state.SessionInfo, found bool, err error) {
	snap, err := a.opts.Stores.Snapshots.Get(ctx, id)
	if errors.Is(err, state.ErrTooLarge) {
		// Stored, but larger than pingmcp writes: unreadable, as a
		// snapshot that does not decode.
		return info, true, err
	}
	if err != nil || snap == nil {
		return info, false, err
	}
	info, err = a.opts.Stores.Describe(id, snap, true)
	if err != nil {
		return info, true, err
	}
	one := []state.SessionInfo{info}
	a.markLive(ctx, one)
	return one[0], true, nil
}

// when writes a time in UTC to the second.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago writes how long before (or after) now t is.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}
