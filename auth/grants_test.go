package auth_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pingmcp/pingmcp/auth"
)

// A grant service that redirects (a wrong --grants-url, a proxy sending to
// a login page) revoked nothing: the redirect is not followed (no GET with
// the credentials), it is an error naming where it pointed; an answer of
// another 2xx than 200 and 204 is not taken for a revocation either.
func TestGrantRevokerRefusesRedirectsAndOther2xx(t *testing.T) {
	var deletes, others atomic.Int32
	mux := http.NewServeMux()
	for _, code := range []int{301, 302, 303, 307} {
		mux.HandleFunc("/r"+strconv.Itoa(code)+"/{user}/grants", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodDelete {
				others.Add(1)
				w.WriteHeader(http.StatusOK) // a listing, a login page
				return
			}
			deletes.Add(1)
			http.Redirect(w, r, "/login", code)
		})
	}
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		others.Add(1)
		w.Write([]byte("<html>login</html>"))
	})
	mux.HandleFunc("/echo/{user}/grants", func(w http.ResponseWriter, r *http.Request) {
		// A server reflecting the request into its redirect.
		w.Header().Set("Location", "/login/"+strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/accepted/{user}/grants", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/ok/{user}/grants", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	ctx := context.Background()
	revoke := func(prefix string) error {
		return auth.NewGrantRevoker(auth.GrantsOptions{URL: ts.URL + prefix, User: "u", Password: "secret-pw"}).RevokeUser(ctx, "alice")
	}
	for _, code := range []int{301, 302, 303, 307} {
		err := revoke("/r" + strconv.Itoa(code))
		if err == nil || !strings.Contains(err.Error(), "/login") || strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("a %d to a login page: %v, want an error naming /login", code, err)
		}
	}
	if err := revoke("/echo"); err == nil || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("u:secret-pw"))) {
		t.Errorf("a redirect echoing the credentials: %v, want them withheld", err)
	}
	if deletes.Load() != 4 || others.Load() != 0 {
		t.Errorf("%d DELETEs, %d requests following the redirects; want 4 and 0", deletes.Load(), others.Load())
	}
	if err := revoke("/accepted"); err == nil || !strings.Contains(err.Error(), "202") {
		t.Errorf("a 202: %v, want an error", err)
	}
	if err := revoke("/ok"); err != nil {
		t.Errorf("a 204: %v", err)
	}
	// "." and ".." survive path escaping: they would name another path.
	for _, key := range []string{".", ".."} {
		if err := auth.NewGrantRevoker(auth.GrantsOptions{URL: ts.URL + "/ok", User: "u", Password: "p"}).RevokeUser(ctx, key); err == nil {
			t.Errorf("user key %q: no error", key)
		}
	}
}
