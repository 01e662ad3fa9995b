package devidp

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
)

// PathUserGrants is PingFederate's OAuth Access Grant Management Service,
// by user: DELETE revokes every persistent grant of the user whose USER_KEY
// is in the path. Here the USER_KEY is the user name, the tokens' sub.
const PathUserGrants = "/pf-ws/rest/oauth/users/{userKey}/grants"

// userGrants serves PathUserGrants as PingFederate does: HTTP Basic with
// the credentials of a Password Credential Validator (Options.GrantManagers;
// 401 otherwise), the header X-XSRF-HEADER with any value (403 without:
// the service's cross-site request forgery protection), then DELETE, which
// revokes the user's grants and answers 204 No Content, whether the user had
// any or not. A revoked grant's refresh tokens are refused (invalid_grant),
// and its access tokens, exchanged ones included, are no longer active at
// introspection: only a new login makes new ones.
//
// The single-grant form (…/grants/<grantId>) and GET (listing) are not
// served: pingmcp revokes all of a user's grants.
func (s *Server) userGrants(w http.ResponseWriter, r *http.Request) {
	user, password, ok := r.BasicAuth()
	if !ok || !s.grantManager(user, password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="PingFederate"`)
		writeGrantsError(w, http.StatusUnauthorized, "credentials of a grant manager (HTTP Basic) are required")
		return
	}
	if len(r.Header.Values("X-XSRF-HEADER")) == 0 {
		writeGrantsError(w, http.StatusForbidden, "the X-XSRF-HEADER header (any value) is required")
		return
	}
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", http.MethodDelete)
		writeGrantsError(w, http.StatusMethodNotAllowed, "use DELETE")
		return
	}
	userKey := r.PathValue("userKey")
	n := s.state.revokeUser(userKey, s.now())
	s.log.Info("grants revoked", "user_key", userKey, "grants", n, "by", user)
	w.WriteHeader(http.StatusNoContent)
}

// grantManager checks the credentials of the grant management service.
func (s *Server) grantManager(user, password string) bool {
	want, ok := s.grantManagers[user]
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

func writeGrantsError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
