package devidp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/cimdtest"
)

// goodDocument is what the TypeScript SDK's client publishes, less its
// client_id.
func goodDocument() map[string]any { return cimdtest.Document("Test CIMD client", callback) }

// newCIMDFixture is a server supporting CIMD that trusts h's certificate
// and fetches from loopback (as the draft allows a development server on
// loopback), with changes made by mod.
func newCIMDFixture(t *testing.T, h *cimdtest.Host, mod func(*ClientIDMetadata)) *fixture {
	cimd := &ClientIDMetadata{AllowLoopback: true, CAFile: h.CAFile}
	if mod != nil {
		mod(cimd)
	}
	return newFixture(t, func(o *Options) { o.ClientIDMetadata = cimd })
}

// jsonBody decodes the JSON of an answer whose body fixture.do kept.
func jsonBody(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
	}
	return out
}

func TestCIMDAdvertised(t *testing.T) {
	for _, on := range []bool{false, true} {
		f := newFixture(t, func(o *Options) {
			if on {
				o.ClientIDMetadata = &ClientIDMetadata{}
			}
		})
		for _, path := range []string{PathASMetadata, PathOpenIDConfiguration} {
			_, md := f.get(path)
			if got, _ := md["client_id_metadata_document_supported"].(bool); got != on {
				t.Errorf("CIMD on %v: %s client_id_metadata_document_supported = %v", on, path, md["client_id_metadata_document_supported"])
			}
		}
	}
}

// TestCIMDCodeFlow logs in with a client no one registered: its client_id
// is its document's URL. The document is fetched once for the
// authorization, the code exchange and the refresh (cached), and the tokens
// name the URL as client_id.
func TestCIMDCodeFlow(t *testing.T) {
	h := cimdtest.New(t)
	id := h.Publish("/client.json", http.Header{"Cache-Control": {"max-age=600"}}, goodDocument())
	f := newCIMDFixture(t, h, nil)

	resp, verifier := f.authorize(id, nil)
	loginID, page := f.loginForm(resp)
	if host := strings.TrimPrefix(h.URL, "https://"); !strings.Contains(page, "Test CIMD client ("+host+")") {
		t.Errorf("the login form does not name the client and its host %s", host)
	}
	q := f.redirected(f.submitLogin(loginID, "alice", "alice"))
	resp, tokens := f.post(PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback},
		"client_id": {id}, "code_verifier": {verifier},
	}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code exchange: %d %v", resp.StatusCode, tokens)
	}
	if c := claims(t, tokens["access_token"].(string)); c["client_id"] != id || c["sub"] != "alice" {
		t.Errorf("access token claims %v, want client_id %s", c, id)
	}
	resp, refreshed := f.post(PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tokens["refresh_token"].(string)}, "client_id": {id},
	}, "", "")
	if resp.StatusCode != http.StatusOK || refreshed["access_token"] == nil {
		t.Fatalf("refresh: %d %v", resp.StatusCode, refreshed)
	}
	if n := h.Fetches("/client.json"); n != 1 {
		t.Errorf("the document was fetched %d times, want once (cached for its max-age)", n)
	}
	if !strings.Contains(f.logs.String(), "client metadata document fetched") {
		t.Errorf("the fetch is not logged")
	}
}

// TestCIMDRefusals: every document, or fetch, that is not right refuses
// the authorization request with invalid_client, without redirecting
// (RFC 6749 §4.1.2.1: the redirect URI is not established), and without
// echoing what the document's server answered.
func TestCIMDRefusals(t *testing.T) {
	const marker = "BODY-MARKER-never-echoed"
	withDoc := func(change func(doc map[string]any)) func(h *cimdtest.Host) string {
		return func(h *cimdtest.Host) string {
			doc := goodDocument()
			change(doc)
			doc["client_uri"] = "https://" + marker + ".example"
			return h.Publish("/client.json", nil, doc)
		}
	}
	tests := []struct {
		name  string
		setup func(h *cimdtest.Host) string // returns the client_id
		mod   func(*ClientIDMetadata)
		want  string // in the error description
	}{
		{"client_id differs", withDoc(func(d map[string]any) { d["client_id"] = "https://other.example/client.json" }), nil, "client_id is not the URL"},
		{"client_id differs by a default port", func(h *cimdtest.Host) string {
			id := h.URL + "/client.json"
			h.Publish("/client.json", nil, map[string]any{"client_id": strings.Replace(id, "https://127.0.0.1:", "https://127.0.0.1:0", 1),
				"redirect_uris": []string{callback}})
			return id
		}, nil, "client_id is not the URL"},
		{"no redirect_uris", withDoc(func(d map[string]any) { delete(d, "redirect_uris") }), nil, "redirect_uris"},
		{"a client_secret", withDoc(func(d map[string]any) { d["client_secret"] = "s3cret" }), nil, "client_secret"},
		{"a shared-secret auth method", withDoc(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" }), nil, "token_endpoint_auth_method"},
		{"private_key_jwt", withDoc(func(d map[string]any) { d["token_endpoint_auth_method"] = "private_key_jwt" }), nil, "private_key_jwt is not supported"},
		{"a private key", withDoc(func(d map[string]any) {
			d["jwks"] = map[string]any{"keys": []map[string]any{{"kty": "EC", "d": "private"}}}
		}), nil, "private or symmetric keys"},
		{"a redirect", func(h *cimdtest.Host) string {
			h.Publish("/real.json", nil, goodDocument())
			h.Serve("/client.json", http.StatusFound, http.Header{"Location": {h.URL + "/real.json"}}, marker)
			return h.URL + "/client.json"
		}, nil, "redirects are not followed"},
		{"not found", func(h *cimdtest.Host) string {
			h.Serve("/client.json", http.StatusNotFound, nil, marker)
			return h.URL + "/client.json"
		}, nil, "answered 404"},
		{"not JSON", func(h *cimdtest.Host) string {
			h.Serve("/client.json", http.StatusOK, http.Header{"Content-Type": {"text/html"}}, "<p>"+marker+"</p>")
			return h.URL + "/client.json"
		}, nil, "not served as application/json"},
		{"malformed JSON", func(h *cimdtest.Host) string {
			h.Serve("/client.json", http.StatusOK, nil, `{"client_id": "`+marker)
			return h.URL + "/client.json"
		}, nil, "not a JSON object"},
		{"too large", withDoc(func(d map[string]any) { d["client_name"] = strings.Repeat("x", 6<<10) }), nil, "larger than 5120 bytes"},
		{"too large, streamed without a length", func(h *cimdtest.Host) string {
			h.Handle("/client.json", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for range 8 {
					io.WriteString(w, strings.Repeat(" ", 1<<10))
					w.(http.Flusher).Flush()
				}
			})
			return h.URL + "/client.json"
		}, nil, "larger than 5120 bytes"},
		{"too slow", func(h *cimdtest.Host) string {
			h.Handle("/client.json", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
			return h.URL + "/client.json"
		}, func(c *ClientIDMetadata) { c.FetchTimeout = 300 * time.Millisecond }, "within 300ms"},
		{"loopback not allowed", func(h *cimdtest.Host) string {
			return h.Publish("/client.json", nil, goodDocument())
		}, func(c *ClientIDMetadata) { c.AllowLoopback = false }, "could not be fetched"},
		{"a name resolving to loopback, not allowed", func(h *cimdtest.Host) string {
			id := strings.Replace(h.URL+"/client.json", "127.0.0.1", "localhost", 1)
			doc := goodDocument()
			doc["client_id"] = id
			h.Publish("/client.json", nil, doc)
			return id
		}, func(c *ClientIDMetadata) { c.AllowLoopback = false }, "could not be fetched"},
		{"an untrusted certificate", func(h *cimdtest.Host) string {
			return h.Publish("/client.json", nil, goodDocument())
		}, func(c *ClientIDMetadata) { c.CAFile = "" }, "could not be fetched"},
		{"dot segments", func(h *cimdtest.Host) string { return h.URL + "/a/../client.json" }, nil, ". or .. path segments"},
		{"user info", func(h *cimdtest.Host) string {
			return strings.Replace(h.URL+"/client.json", "https://", "https://u:p@", 1)
		}, nil, "user info"},
		{"no path", func(h *cimdtest.Host) string { return h.URL }, nil, "must have a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := cimdtest.New(t)
			id := tt.setup(h)
			f := newCIMDFixture(t, h, tt.mod)
			resp, _ := f.authorize(id, nil)
			b, _ := io.ReadAll(resp.Body)
			body := jsonBody(t, &http.Response{Body: io.NopCloser(strings.NewReader(string(b)))})
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || body["error"] != "invalid_client" {
				t.Fatalf("authorize: %d Location %q %s; want 400 invalid_client, not redirected", resp.StatusCode, resp.Header.Get("Location"), b)
			}
			desc, _ := body["error_description"].(string)
			if !strings.Contains(desc, tt.want) {
				t.Errorf("error_description %q does not say %q", desc, tt.want)
			}
			if strings.Contains(string(b), marker) || strings.Contains(string(b), "127.0.0.1:") {
				t.Errorf("the answer echoes the document's server or its address: %s", b)
			}
			// Nothing was cached: the same request fetches again.
			before := h.Fetches("/client.json")
			f.authorize(id, nil)
			if after := h.Fetches("/client.json"); before > 0 && after != before+1 {
				t.Errorf("fetches %d then %d: a refused document was cached", before, after)
			}
		})
	}
}

// TestCIMDRedirectURIExact: a document client's redirect URI matches one of
// its document's exactly; a loopback one on another port is refused (a
// registered native client's is not: RFC 8252 §7.3), without a redirect.
func TestCIMDRedirectURIExact(t *testing.T) {
	h := cimdtest.New(t)
	id := h.Publish("/client.json", nil, goodDocument())
	f := newCIMDFixture(t, h, nil)
	for _, uri := range []string{"http://127.0.0.1:9998/callback", "http://127.0.0.1:9999/callback/", "http://localhost:9999/callback", "https://attacker.example/callback"} {
		resp, _ := f.authorize(id, url.Values{"redirect_uri": {uri}})
		body := jsonBody(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || body["error"] != "invalid_request" {
			t.Errorf("redirect_uri %s: %d Location %q %v; want 400 invalid_request, not redirected", uri, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
	resp, _ := f.authorize(id, nil)
	f.loginForm(resp)

	// A registered client with the same loopback URI may use another port.
	registered := f.registerClient(callback)
	resp, _ = f.authorize(registered, url.Values{"redirect_uri": {"http://127.0.0.1:9998/callback"}})
	f.loginForm(resp)
}

// TestCIMDCache: a document is kept for its max-age clamped between the
// bounds, for the minimum without one or with no-store, the bounded number
// of documents; a failed fetch is not kept.
func TestCIMDCache(t *testing.T) {
	bounds := func(c *ClientIDMetadata) { c.MinCache, c.MaxCache, c.MaxDocuments = time.Minute, 10*time.Minute, 2 }
	tests := []struct {
		cacheControl string
		fresh        time.Duration // still cached this long after
	}{
		{"max-age=300", 5 * time.Minute},
		{"public, max-age=100000", 10 * time.Minute},
		{"max-age=5", time.Minute},
		{"no-store", time.Minute},
		{"", time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.cacheControl, func(t *testing.T) {
			h := cimdtest.New(t)
			id := h.Publish("/client.json", http.Header{"Cache-Control": {tt.cacheControl}}, goodDocument())
			f := newCIMDFixture(t, h, bounds)
			authorize := func(wantFetches int) {
				t.Helper()
				resp, _ := f.authorize(id, nil)
				f.loginForm(resp)
				if n := h.Fetches("/client.json"); n != wantFetches {
					t.Fatalf("fetched %d times, want %d", n, wantFetches)
				}
			}
			authorize(1)
			f.clock.Advance(tt.fresh - time.Second)
			authorize(1)
			f.clock.Advance(2 * time.Second)
			authorize(2)
		})
	}

	t.Run("bounded", func(t *testing.T) {
		h := cimdtest.New(t)
		var ids []string
		for i, path := range []string{"/a.json", "/b.json", "/c.json"} {
			ids = append(ids, h.Publish(path, http.Header{"Cache-Control": {"max-age=" + []string{"100", "200", "300"}[i]}}, goodDocument()))
		}
		f := newCIMDFixture(t, h, bounds)
		for _, id := range ids {
			resp, _ := f.authorize(id, nil)
			f.loginForm(resp)
		}
		// a.json, expiring first, made room for c.json; b.json is kept.
		for _, id := range []string{ids[1], ids[0]} {
			resp, _ := f.authorize(id, nil)
			f.loginForm(resp)
		}
		if a, b := h.Fetches("/a.json"), h.Fetches("/b.json"); a != 2 || b != 1 {
			t.Errorf("fetches: a.json %d, b.json %d; want a.json dropped (2), b.json kept (1)", a, b)
		}
	})

	t.Run("failures not kept", func(t *testing.T) {
		h := cimdtest.New(t)
		h.Serve("/client.json", http.StatusServiceUnavailable, nil, "")
		f := newCIMDFixture(t, h, bounds)
		id := h.URL + "/client.json"
		resp, _ := f.authorize(id, nil)
		wantError(t, resp, jsonBody(t, resp), http.StatusBadRequest, "invalid_client")
		h.Publish("/client.json", nil, goodDocument())
		resp, _ = f.authorize(id, nil)
		f.loginForm(resp)
	})
}

// TestCIMDTokenEndpoint: the token endpoint knows a document client by its
// document too: once the cached one expired and the URL no longer serves
// it, the client is refused (401 invalid_client), its refresh token with it.
func TestCIMDTokenEndpoint(t *testing.T) {
	h := cimdtest.New(t)
	id := h.Publish("/client.json", http.Header{"Cache-Control": {"max-age=60"}}, goodDocument())
	f := newCIMDFixture(t, h, nil)
	tokens := f.login(id, nil)
	h.Serve("/client.json", http.StatusNotFound, nil, "")
	f.clock.Advance(61 * time.Second)
	resp, body := f.post(PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tokens["refresh_token"].(string)}, "client_id": {id},
	}, "", "")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")

	// Without CIMD, a URL is just an unknown client.
	g := newFixture(t, nil)
	resp, body = g.post(PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {id}}, "", "")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	if n := h.Fetches("/client.json"); n != 2 {
		t.Errorf("fetched %d times, want 2 (the server without CIMD fetches nothing)", n)
	}
}

func TestAddressGuard(t *testing.T) {
	tests := []struct {
		addr              string
		allowed, loopback bool // allowed without, and with, loopback allowed
	}{
		{"93.184.215.14", true, true},
		{"2606:4700:4700::1111", true, true},
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"::ffff:192.168.1.1", false, false},
		{"169.254.169.254", false, false}, // cloud metadata
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"192.0.2.1", false, false},
		{"198.18.0.1", false, false},
		{"::", false, false},
		{"fe80::1", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"ff02::1", false, false},
		{"64:ff9b::a00:1", false, false},
		{"2002:a00:1::1", false, false},
		{"2001:db8::1", false, false},
		{"2001::1", false, false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.addr)
		if got := (addressGuard{}).allowed(ip); got != tt.allowed {
			t.Errorf("%s allowed = %v, want %v", tt.addr, got, tt.allowed)
		}
		if got := (addressGuard{allowLoopback: true}).allowed(ip); got != tt.loopback {
			t.Errorf("%s with loopback allowed: allowed = %v, want %v", tt.addr, got, tt.loopback)
		}
		if err := (addressGuard{}).control("tcp", netip.AddrPortFrom(ip, 443).String(), nil); (err == nil) != tt.allowed {
			t.Errorf("dialing %s: %v", tt.addr, err)
		}
	}
}

func TestCacheLifetime(t *testing.T) {
	tests := map[string]time.Duration{
		"":                             0,
		"max-age=120":                  2 * time.Minute,
		"public, max-age=60":           time.Minute,
		`max-age="30"`:                 30 * time.Second,
		"max-age=60, no-store":         0,
		"no-cache":                     0,
		"max-age=-5":                   0,
		"max-age=junk":                 0,
		"max-age=99999999999999999":    365 * 24 * time.Hour, // at most a year
		"max-age=99999999999999999999": 0,                    // not an int64: ignored
	}
	for cc, want := range tests {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if got := cacheLifetime(h); got != want {
			t.Errorf("Cache-Control %q: %v, want %v", cc, got, want)
		}
	}
}
