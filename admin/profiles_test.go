package admin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
)

// TestProfiles: a node's runtime profiles are the operators' alone, each
// request audited; the command line (which may hold a secret) is not
// served, nor a CPU profile longer than the bound.
func TestProfiles(t *testing.T) {
	const token = "static-admin-token-0123456789"
	audits := &logtest.Buffer{}
	h, err := Handler(Options{Token: token, Stores: state.MemoryStores(time.Minute), Audit: audit.New(audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path, bearer string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	gzipped := func(b []byte) bool { return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) } // a profile.proto is gzipped

	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if status, body := get(path, ""); status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %s, want 401", path, status, body)
		}
	}
	if status, body := get("/debug/pprof/heap", "not-the-token-0123456789"); status != http.StatusUnauthorized {
		t.Errorf("heap with a wrong token: %d %s, want 401", status, body)
	}
	if status, body := get("/debug/pprof/heap", token); status != http.StatusOK || !gzipped(body) {
		t.Errorf("heap: %d, %d bytes (gzipped %v), want 200 and a profile", status, len(body), gzipped(body))
	}
	if status, body := get("/debug/pprof/goroutine", token); status != http.StatusOK || !gzipped(body) {
		t.Errorf("goroutine: %d, %d bytes, want 200 and a profile", status, len(body))
	}
	if status, body := get("/debug/pprof/profile?seconds=1", token); status != http.StatusOK || !gzipped(body) {
		t.Errorf("profile: %d, %d bytes, want 200 and a CPU profile", status, len(body))
	}
	if status, body := get("/debug/pprof/", token); status != http.StatusOK || !strings.Contains(string(body), "heap") {
		t.Errorf("index: %d %s", status, body)
	}
	if status, body := get("/debug/pprof/cmdline", token); status != http.StatusNotFound || strings.Contains(string(body), "admin.test") {
		t.Errorf("cmdline: %d %q, want 404 and not the command line", status, body)
	}
	for _, s := range []string{"0", "-1", "121", "1e3", "x"} {
		if status, body := get("/debug/pprof/profile?seconds="+s, token); status != http.StatusBadRequest || !strings.Contains(string(body), "from 1 to 120") {
			t.Errorf("profile?seconds=%s: %d %s, want 400", s, status, body)
		}
	}
	if status, body := get("/debug/pprof/heap?seconds=100000", token); status != http.StatusBadRequest {
		t.Errorf("heap?seconds=100000: %d %s, want 400", status, body)
	}

	// Every request audited as debug.profile, with the profile's name; the
	// refusals without an operator.
	var names []string
	for _, rec := range auditRecords(t, audits) {
		if rec["action"] != "debug.profile" {
			t.Errorf("audit record %v, want action debug.profile", rec)
		}
		names = append(names, rec["target"].(string)+"/"+rec["outcome"].(string))
	}
	if strings.Contains(audits.String(), token) {
		t.Error("the token is in an audit record")
	}
	want := "index/denied heap/denied profile/denied trace/denied heap/denied heap/ok goroutine/ok profile/ok index/ok cmdline/denied " +
		strings.Repeat("profile/denied ", 5) + "heap/denied "
	if got := strings.Join(names, " ") + " "; got != want {
		t.Errorf("audit records (target/outcome):\n got %s\nwant %s", got, want)
	}
}
