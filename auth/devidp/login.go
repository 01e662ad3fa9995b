package devidp

import (
	"crypto/subtle"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/pingmcp/pingmcp/telemetry"
)

// The login form works without JavaScript. html/template escapes all it
// echoes (client name, resource, scopes, user name). It names where the
// code goes (the redirect URI's origin): a registered client's name is its
// own choice, and may be another's. The form is bound to
// its authorization request by the request's id: an unguessable value that
// only the browser sent to the login page holds, good once, for minutes.
// There is no session cookie, so a cross-site POST gains nothing it could
// not get by logging in itself.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: development authorization server</title>
<style>
body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem;line-height:1.4}
.warn{background:#fff3cd;padding:.5rem .75rem}
.error{color:#b00020}
label{display:block;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}
button{margin:1rem .5rem 0 0;padding:.4rem 1rem}
code{word-break:break-all}
</style>
</head>
<body>
<p class="warn">Development authorization server: not for production.</p>
<h1>Sign in</h1>
{{if .Client}}<p><strong>{{.Client}}</strong>{{if .SelfNamed}} (the name it registered with){{end}} asks for access to <code>{{.Resource}}</code> with the scopes <code>{{.Scopes}}</code>.</p>
<p>After you sign in, you are sent back to <code>{{.ReturnTo}}</code>.</p>{{end}}
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .ID}}<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">User name</label>
<input id="username" name="username" type="text" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>{{end}}
</body>
</html>
`))

// formPostPage posts an authorization response to the client (OAuth 2.0
// Form Post Response Mode); html/template escapes every name and value.
var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Returning to the application</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range .Params}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><button type="submit">Continue</button></noscript>
</form>
</body>
</html>
`))

type formPostView struct {
	Action string
	Params []formParam
}

type formParam struct{ Name, Value string }

type loginView struct {
	Action, ID, Client, Resource, Scopes, Username, Error string
	// ReturnTo is the origin of the redirect URI the code goes to: a
	// registered client's name is its own choice, and may be another's.
	ReturnTo  string
	SelfNamed bool
}

// login serves the login form (GET) and takes the credentials (POST). On
// success the browser goes to the client's redirect URI with the code.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ar, ok := s.state.pending(r.URL.Query().Get("id"), s.now())
		if !ok {
			s.loginGone(w)
			return
		}
		s.renderLogin(w, http.StatusOK, &ar, "", "")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "malformed form", http.StatusBadRequest)
			return
		}
		s.loginSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	id := r.PostForm.Get("id")
	ar, ok := s.state.pending(id, s.now())
	if !ok {
		s.loginGone(w)
		return
	}
	if r.PostForm.Get("action") == "cancel" {
		s.state.dropAuthRequest(id)
		s.log.Info("login cancelled", "client_id", ar.clientID)
		s.respond(w, r, &ar, oidc.ErrAccessDenied().WithDescription("the user cancelled the login"))
		return
	}
	user := r.PostForm.Get("username")
	if !s.checkPassword(user, r.PostForm.Get("password")) {
		// The attempted name is not logged: people type passwords into it.
		s.log.Info("login failed", "client_id", ar.clientID)
		if !s.state.loginFailed(id) {
			s.respond(w, r, &ar, oidc.ErrAccessDenied().WithDescription("too many failed logins"))
			return
		}
		s.renderLogin(w, http.StatusUnauthorized, &ar, user, "Wrong user name or password.")
		return
	}
	done, ok := s.state.completeLogin(id, user, s.now(), func(scope string) bool { return s.userMay(user, scope) })
	if !ok {
		s.loginGone(w)
		return
	}
	s.log.Info("user logged in", "user", user, "client_id", done.clientID, "aud", done.resource)
	s.respond(w, r, &done, &op.CodeResponseType{Code: done.code, State: done.state})
}

// userMay says whether user may be granted scope: a scope of
// Options.ScopeUsers only to the users it lists, any other to all. Like a
// PingFederate scope authorization policy, a scope the user may not have is
// left out of the grant, not refused.
func (s *Server) userMay(user, scope string) bool {
	users, restricted := s.scopeUsers[scope]
	return !restricted || slices.Contains(users, user)
}

// restricted reports a scope Options.ScopeUsers restricts to some users:
// never a default scope, and granted only to configured clients.
func (s *Server) restricted(scope string) bool {
	_, ok := s.scopeUsers[scope]
	return ok
}

// checkPassword compares in constant time, whether or not user exists.
func (s *Server) checkPassword(user, password string) bool {
	want, known := s.users[user]
	a, b := sha256Sum(password), sha256Sum(want)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && known && user != ""
}

// respond sends the authorization response (a code, or an error) to the
// client's redirect URI, in the response mode it asked for.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, ar *authRequest, payload any) {
	if e, ok := payload.(*oidc.Error); ok {
		e.State = ar.state
	}
	encoder := s.responseEncoder()
	w.Header().Set("Cache-Control", "no-store")
	if ar.responseMode == oidc.ResponseModeFormPost {
		// Not op.AuthResponseFormPost: its form names a few parameters
		// (code, state), and posts an error, or iss, without them.
		params := map[string][]string{}
		if err := encoder.Encode(payload, params); err != nil {
			http.Error(w, "cannot build the authorization response", http.StatusInternalServerError)
			return
		}
		view := formPostView{Action: ar.redirectURI}
		for _, name := range slices.Sorted(maps.Keys(params)) {
			for _, v := range params[name] {
				view.Params = append(view.Params, formParam{name, v})
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		formPostPage.Execute(w, view)
		return
	}
	u, err := op.AuthResponseURL(ar.redirectURI, oidc.ResponseTypeCode, ar.responseMode, payload, encoder)
	if err != nil {
		http.Error(w, "cannot build the authorization response", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, ar *authRequest, user, message string) {
	name, self := s.clientName(ar.clientID)
	returnTo := ar.redirectURI
	if u, err := url.Parse(ar.redirectURI); err == nil && u.Host != "" {
		returnTo = u.Scheme + "://" + u.Host
	}
	s.render(w, status, loginView{
		Action:    s.issuer + PathLogin,
		ID:        ar.id,
		Client:    telemetry.Printable(name),
		SelfNamed: self,
		ReturnTo:  returnTo,
		Resource:  ar.resource,
		Scopes:    strings.Join(ar.scopes, " "),
		Username:  user,
		Error:     message,
	})
}

func (s *Server) loginGone(w http.ResponseWriter) {
	s.render(w, http.StatusBadRequest, loginView{
		Error: "This login is unknown, finished or expired. Start again from your application.",
	})
}

func (s *Server) render(w http.ResponseWriter, status int, v loginView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	loginPage.Execute(w, v)
}
