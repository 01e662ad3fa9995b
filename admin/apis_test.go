package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
)

// POST /admin/v1/apis/reload is an operator's action like the others:
// refused without the admin token, audited as apis.reload with its
// operator; with no cluster to reach it says so (e2e/reload_test.go
// drives it on a cluster).
func TestReloadAPIsAuthorizedAndAudited(t *testing.T) {
	audits := &logtest.Buffer{}
	h, err := Handler(Options{Token: "static-admin-token-0123456789", Stores: state.MemoryStores(time.Minute),
		Logger: slog.New(slog.DiscardHandler), Audit: audit.New(audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/v1/apis/reload", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusUnauthorized {
		t.Errorf("a reload without the admin token: %d, want 401", got)
	}
	if got := post("static-admin-token-0123456789"); got != http.StatusServiceUnavailable {
		t.Errorf("a reload with no cluster: %d, want 503", got)
	}
	var outcomes []string
	for _, rec := range auditRecords(t, audits) {
		if rec["action"] != "apis.reload" {
			t.Errorf("audit record %v, want action apis.reload", rec)
		}
		outcomes = append(outcomes, rec["outcome"].(string)+" "+rec["operator"].(string))
	}
	if got := strings.Join(outcomes, ", "); got != "denied , error static-admin-token" {
		t.Errorf("audit outcomes %q, want the refusal without operator, then the operator's", got)
	}
}
