package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/cimdtest"
)

// clientRedirect is client.mjs's default redirect URI.
const clientRedirect = "http://127.0.0.1:33418/oauth/callback"

// cached is how the documents are served: cacheable for 5 minutes.
var cached = http.Header{"Cache-Control": {"max-age=300"}}

// sdkClientDocument is the metadata the SDK client would publish.
func sdkClientDocument() map[string]any {
	return cimdtest.Document("pingmcp e2e: official MCP TypeScript SDK client (CIMD)", clientRedirect)
}

// TestCIMDOfficialSDKClient: the official TypeScript SDK client, given a
// client metadata URL, logs in to pingmcp dev without registering: its
// client_id is the URL of its Client ID Metadata Document, which the
// development authorization server fetches over HTTPS (here from loopback,
// with a test CA, as the test flags allow) and checks; the client then
// calls a tool and refreshes. Documents that lie about their client_id, or
// do not list the redirect URI the client uses, are refused without a
// redirect, and nothing they hold is echoed.
func TestCIMDOfficialSDKClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	host := cimdtest.New(t)
	good := host.Publish("/oauth/client.json", cached, sdkClientDocument())

	d := runDev(t, "--dev-cimd-allow-loopback", "--dev-cimd-ca", host.CAFile)
	as := fetchASMetadata(t, ctx, d.Issuer)
	if !as.ClientIDMetadataDocumentSupported {
		t.Fatal("the development authorization server does not advertise client_id_metadata_document_supported")
	}

	alice := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--client-metadata-url", good)
	for _, e := range alice.seen {
		if e.Event == "http" && (e.URL == as.RegistrationEndpoint || strings.HasSuffix(e.URL, "/as/clients.oauth2")) {
			t.Errorf("the client called the registration endpoint: %s %s %d", e.Method, e.URL, e.Status)
		}
	}
	var authorized, redeemed, tokens bool
	for _, e := range alice.seen {
		switch {
		case e.Event == "oauth" && e.Stage == "authorize":
			authorized = true
			if e.ClientID != good || e.Endpoint != as.AuthorizationEndpoint || e.CodeChallengeMethod != "S256" {
				t.Errorf("authorization request %+v, want client_id %s with PKCE", e, good)
			}
		case e.Event == "http" && e.Method == http.MethodPost && e.URL == as.TokenEndpoint:
			redeemed = e.Status == http.StatusOK
		case e.Event == "oauth" && e.Stage == "tokens":
			tokens = true
			if c := e.AccessTokenClaims; c["client_id"] != good || c["sub"] != "alice" || !audienceIs(c["aud"], d.MCP) {
				t.Errorf("access token claims %v, want alice's for %s, client_id %s", c, d.MCP, good)
			}
		}
	}
	if !authorized || !redeemed || !tokens {
		t.Fatalf("the flow: authorized %v, code redeemed %v, tokens %v", authorized, redeemed, tokens)
	}
	var who map[string]any
	if err := json.Unmarshal([]byte(alice.call(ctx, "who_am_I", nil).text()), &who); err != nil || who["sub"] != "alice" || who["client_id"] != good {
		t.Errorf("who_am_I: %v %v, want alice's token of client %s", who, err, good)
	}
	alice.refresh(ctx)
	alice.call(ctx, "get_my_todo_list", nil)
	alice.finish(ctx)
	if n := host.Fetches("/oauth/client.json"); n != 1 {
		t.Errorf("the document was fetched %d times, want once (cached for its max-age)", n)
	}
	if !d.logged(`"msg":"client metadata document fetched"`, good) {
		t.Errorf("pingmcp dev did not log the document it fetched")
	}

	// An attacker's documents: one claiming the good client's id, one whose
	// redirect URIs are not the one the client uses.
	const marker = "ATTACKER-MARKER"
	liar := sdkClientDocument()
	liar["client_id"], liar["client_name"] = good, marker
	wrongRedirect := sdkClientDocument()
	wrongRedirect["redirect_uris"], wrongRedirect["client_name"] = []string{"http://127.0.0.1:33419/oauth/callback"}, marker
	for _, tt := range []struct {
		name, path string
		doc        map[string]any
		error      string
	}{
		{"client_id differs from its URL", "/evil/client.json", liar, "invalid_client"},
		{"redirect_uris do not match", "/other/client.json", wrongRedirect, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := host.Publish(tt.path, cached, tt.doc)
			events, out := runSDKClientToFailure(t, ctx, nodeBin, d.MCP, "--client-metadata-url", u)
			var refused bool
			for _, e := range events {
				if e.Event == "http" && strings.HasSuffix(e.URL, "/as/clients.oauth2") {
					t.Errorf("the client registered: %+v", e)
				}
				if e.Event == "oauth" && e.Stage == "browser" && e.URL == as.AuthorizationEndpoint {
					refused = e.Status == http.StatusBadRequest
				}
				if e.Event == "oauth" && (e.Stage == "login form" || e.Stage == "code" || e.Stage == "tokens") {
					t.Errorf("the authorization went on: %+v", e)
				}
			}
			if !refused {
				t.Errorf("the authorization endpoint did not answer 400 (not a redirect)")
			}
			last := events[len(events)-1]
			if last.Event != "error" || !strings.Contains(last.Message, tt.error) {
				t.Errorf("the client ended with %+v, want an error naming %s", last, tt.error)
			}
			t.Logf("the client was told: %s", last.Message)
			if strings.Contains(out, marker) {
				t.Errorf("the refusal echoes the document's content")
			}
			if host.Fetches(tt.path) == 0 {
				t.Errorf("the document was not fetched")
			}
		})
	}

	// A browser sent by the liar's document to the authorization endpoint
	// is not redirected anywhere either.
	q := url.Values{"response_type": {"code"}, "client_id": {host.URL + "/evil/client.json"}, "redirect_uri": {clientRedirect},
		"state": {"s"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "resource": {d.MCP}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, as.AuthorizationEndpoint+"?"+q.Encode(), nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("authorize with the liar's client_id: %d Location %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// runSDKClientToFailure runs client.mjs as alice with extra options, expects
// it to fail, and returns what it printed.
func runSDKClientToFailure(t *testing.T, ctx context.Context, nodeBin, mcpURL string, extra ...string) ([]sdkEvent, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, nodeBin, append([]string{filepath.Join("oauthclient", "client.mjs"),
		"--url", mcpURL, "--user", "alice", "--password", "alice", "--steps", "[]"}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		t.Fatalf("the SDK client succeeded:\n%s", out)
	}
	var events []sdkEvent
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e sdkEvent
		if json.Unmarshal([]byte(line), &e) != nil {
			t.Fatalf("unparsable line %q (stderr: %s)", line, stderr.String())
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		t.Fatalf("the SDK client printed nothing: %v\n%s", err, stderr.String())
	}
	return events, string(out) + stderr.String()
}
