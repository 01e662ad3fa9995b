package todoapi

import (
	"errors"
	"net/http"
	"slices"

	"github.com/pingmcp/pingmcp/auth"
)

// caller is who a request acts for, once its token passed every check.
type caller struct {
	user  string // userKey of the token
	actor string // act.sub of a delegated token, "" otherwise
	// mayRead: the token holds ScopeRead, so answers may show the list.
	mayRead bool
}

// authenticate checks the request's bearer token for a route needing scope
// and refuses as RFC 6750 says (status, WWW-Authenticate, and the same error
// in the body). It reports false when it has answered the request.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request, scope string) (*caller, bool) {
	raw, present, err := auth.BearerToken(r.Header.Values("Authorization"))
	if err != nil {
		a.refuse(w, r, auth.CodeInvalidRequest, describe(err))
		return nil, false
	}
	if !present {
		// RFC 6750 §3.1: no error code when the request had no credentials.
		w.Header().Set("WWW-Authenticate", auth.Challenge(nil, "", []string{scope}))
		writeError(w, http.StatusUnauthorized, "missing_token", "a bearer token is required")
		return nil, false
	}
	tok, err := a.opts.Verifier.Verify(r.Context(), raw)
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			a.log.WarnContext(r.Context(), "token verification unavailable", "err", err)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be verified now; retry later")
			return nil, false
		}
		code := ae.Code
		if code != auth.CodeInvalidRequest && code != auth.CodeInsufficientScope {
			code = auth.CodeInvalidToken
		}
		a.refuse(w, r, code, ae.Description, ae.Scopes...)
		return nil, false
	}
	if tok.Issuer == "" || tok.Subject == "" {
		a.refuse(w, r, auth.CodeInvalidToken, "token names no issuer or subject")
		return nil, false
	}
	actor, _ := tok.Actor["sub"].(string)
	switch {
	case len(tok.Actor) == 0 && !a.opts.AllowUndelegated:
		// invalid_token, so 401 (RFC 6750 §3.1), as the edge answers: the
		// token is genuine but "invalid for other reasons".
		a.refuse(w, r, auth.CodeInvalidToken,
			"token is not delegated: this API accepts only tokens obtained by token exchange for a delegate (RFC 8693 act claim)")
		return nil, false
	case len(tok.Actor) > 0 && len(a.opts.AllowedActors) > 0 && !slices.Contains(a.opts.AllowedActors, actor):
		a.refuse(w, r, auth.CodeInvalidToken, "the token's actor (act.sub) is not allowed to call this API")
		return nil, false
	case !tok.HasScopes(scope):
		a.refuse(w, r, auth.CodeInsufficientScope, "this request needs the "+scope+" scope", scope)
		return nil, false
	}
	return &caller{user: userKey(tok), actor: actor, mayRead: tok.HasScopes(ScopeRead)}, true
}

// refuse answers an RFC 6750 error, with its status, in WWW-Authenticate
// and in the body.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, code, description string, scopes ...string) {
	aerr := &auth.Error{Code: code, Description: description}
	a.log.InfoContext(r.Context(), "token refused", "status", aerr.Status(), "error", code, "reason", description)
	w.Header().Set("WWW-Authenticate", auth.Challenge(aerr, "", scopes))
	writeError(w, aerr.Status(), code, description)
}

func describe(err error) string {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return ae.Description
	}
	return err.Error()
}
