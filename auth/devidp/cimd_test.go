package devidp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
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
// (RFC 6749 §4.1.2.1: the redirect URI is not established). Once a fetch
// was tried, the client is told the same words whatever went wrong (a 404,
// a timeout, a wrong content type, a refused address or a wrong document
// alike: an answer that told them apart would make the server a probe of
// what it reaches); why is logged. A client_id URL refused for what it is
// is told why, and nothing is fetched. The refusal is kept failureTTL.
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
		want  string // in the error description if refused before a fetch, else in the log
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
			h.Hang("/client.json")
			return h.URL + "/client.json"
		}, func(c *ClientIDMetadata) { c.FetchTimeout = 300 * time.Millisecond }, "within 300ms"},
		{"a port other than 443", func(h *cimdtest.Host) string {
			return h.Publish("/client.json", nil, goodDocument())
		}, func(c *ClientIDMetadata) { c.AllowLoopback = false }, "port other than 443"},
		{"an untrusted certificate", func(h *cimdtest.Host) string {
			return h.Publish("/client.json", nil, goodDocument())
		}, func(c *ClientIDMetadata) { c.CAFile = "" }, "certificate"},
		{"an https redirect URI at another origin", withDoc(func(d map[string]any) {
			d["redirect_uris"] = []string{callback, "https://attacker.example/callback"}
		}), nil, "not at the client_id's origin"},
		{"an https redirect URI at another port of its host", func(h *cimdtest.Host) string {
			doc := goodDocument()
			doc["redirect_uris"] = []string{strings.Replace(h.URL, "https://127.0.0.1:", "https://127.0.0.1:1", 1) + "/callback"}
			return h.Publish("/client.json", nil, doc)
		}, nil, "not at the client_id's origin"},
		{"dot segments", func(h *cimdtest.Host) string { return h.URL + "/a/../client.json" }, nil, ". or .. path segments"},
		{"user info", func(h *cimdtest.Host) string {
			return strings.Replace(h.URL+"/client.json", "https://", "https://u:p@", 1)
		}, nil, "user info"},
		{"no path", func(h *cimdtest.Host) string { return h.URL }, nil, "must have a path"},
	}
	beforeFetch := map[string]bool{"dot segments": true, "user info": true, "no path": true, "a port other than 443": true}
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
			fetched := h.Fetches("/client.json")
			if beforeFetch[tt.name] {
				if !strings.Contains(desc, tt.want) || fetched != 0 {
					t.Errorf("error_description %q does not say %q, or the document was fetched (%d)", desc, tt.want, fetched)
				}
				return
			}
			if desc != errDocumentRefused {
				t.Errorf("error_description %q, want the same words for every refused document: %q", desc, errDocumentRefused)
			}
			if strings.Contains(string(b), marker) || strings.Contains(string(b), "127.0.0.1:") {
				t.Errorf("the answer echoes the document's server or its address: %s", b)
			}
			if logs := f.logs.String(); !strings.Contains(logs, "client metadata document refused") || !strings.Contains(logs, tt.want) {
				t.Errorf("the log does not say why (%q): %s", tt.want, logs)
			}
			// The refusal is kept a while: the same request is refused
			// alike without fetching again, and fetches once it is past.
			resp, _ = f.authorize(id, nil)
			if body := jsonBody(t, resp); body["error_description"] != errDocumentRefused || h.Fetches("/client.json") != fetched {
				t.Errorf("again at once: %v, fetches %d then %d; want the same refusal, not fetched again", body, fetched, h.Fetches("/client.json"))
			}
			f.clock.Advance(failureTTL)
			f.authorize(id, nil)
			if fetched > 0 && h.Fetches("/client.json") != fetched+1 {
				t.Errorf("fetches %d then %d past failureTTL: want one more", fetched, h.Fetches("/client.json"))
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

	t.Run("failures kept briefly", func(t *testing.T) {
		h := cimdtest.New(t)
		h.Serve("/client.json", http.StatusServiceUnavailable, nil, "")
		f := newCIMDFixture(t, h, bounds)
		id := h.URL + "/client.json"
		resp, _ := f.authorize(id, nil)
		wantError(t, resp, jsonBody(t, resp), http.StatusBadRequest, "invalid_client")
		h.Publish("/client.json", nil, goodDocument())
		f.clock.Advance(failureTTL - time.Second)
		resp, _ = f.authorize(id, nil)
		wantError(t, resp, jsonBody(t, resp), http.StatusBadRequest, "invalid_client")
		f.clock.Advance(time.Second)
		resp, _ = f.authorize(id, nil)
		f.loginForm(resp)
		if n := h.Fetches("/client.json"); n != 2 {
			t.Errorf("fetched %d times, want 2 (the failure kept %v, not fetched within it)", n, failureTTL)
		}
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
	if body["error_description"] != errDocumentRefused {
		t.Errorf("the token endpoint says %q of a document whose URL answered 404, want only %q", body["error_description"], errDocumentRefused)
	}

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
		{"192.88.99.1", false, false},     // 6to4 relay anycast
		{"::a00:1", false, false},         // IPv4-compatible ::/96
		{"::ffff:0:a00:1", false, false},  // SIIT ::ffff:0:0/96
		{"fec0::1", false, false},         // site-local
		{"3fff::1", false, false},         // documentation
		{"5f00::1", false, false},         // SRv6 SIDs
		{"4000::1", false, false},         // not global unicast space
		{"100::1", false, false},          // discard
		{"2a00:1450:4001::1", true, true}, // global unicast
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

// TestCIMDConcurrentFetchesMerged: authorization requests naming one
// client_id at once share one fetch, and all get the client; the bound on
// fetches to one host refuses none of them.
func TestCIMDConcurrentFetchesMerged(t *testing.T) {
	h := cimdtest.New(t)
	id := h.URL + "/client.json"
	doc, _ := json.Marshal(map[string]any{"client_id": id, "client_name": "slow", "redirect_uris": []string{callback}})
	var arrived atomic.Int32
	second := make(chan struct{}, 8)
	h.Handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		// Hold the first fetch until a second one arrives (which merging
		// prevents) or a while passes for the other requests to queue.
		if arrived.Add(1) == 1 {
			select {
			case <-second:
			case <-time.After(500 * time.Millisecond):
			}
		} else {
			second <- struct{}{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	f := newCIMDFixture(t, h, nil)
	const n = 5
	statuses := make(chan int, n)
	for range n {
		go func() {
			resp, _ := f.authorize(id, nil)
			statuses <- resp.StatusCode
		}()
	}
	for range n {
		if status := <-statuses; status != http.StatusSeeOther && status != http.StatusFound {
			t.Errorf("an authorization request: %d, want a redirect to the login", status)
		}
	}
	if got := h.Fetches("/client.json"); got != 1 {
		t.Errorf("%d requests at once fetched the document %d times, want once", n, got)
	}
}

// TestCIMDLogThrottled: refusals anyone can cause are logged at most a
// burst a second, and a long client_id is cut in the log.
func TestCIMDLogThrottled(t *testing.T) {
	h := cimdtest.New(t)
	f := newCIMDFixture(t, h, nil)
	long := h.URL + "/" + strings.Repeat("x", 1500)
	for i := range 20 {
		f.authorize(long+strconv.Itoa(i), nil)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "client metadata document refused"); n < 1 || n > 5 {
		t.Errorf("%d refusals in a second logged %d lines, want 1 to 5", 20, n)
	}
	if strings.Contains(logs, strings.Repeat("x", maxLoggedIDLength)) {
		t.Errorf("a client_id of %d bytes is logged whole", len(long))
	}
	f.clock.Advance(time.Second)
	f.authorize(long+"-later", nil)
	if !strings.Contains(f.logs.String(), "suppressed=") {
		t.Errorf("the next line logged does not count those suppressed: %s", f.logs.String())
	}
}

func TestClientIDURLPort(t *testing.T) {
	for id, ok := range map[string]bool{
		"https://client.example/c.json":      true,
		"https://client.example:443/c.json":  true,
		"https://client.example:8443/c.json": false,
		"https://client.example:22/c.json":   false,
		"https://[2001:4860::1]:25/c.json":   false,
	} {
		if err := checkClientIDURL(id, false); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", id, err, ok)
		}
		if err := checkClientIDURL(id, true); err != nil {
			t.Errorf("%s with loopback (tests) allowed: %v", id, err)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	const id = "https://client.example/oauth/client.json"
	for uri, ok := range map[string]bool{
		"https://client.example/callback":         true,
		"https://CLIENT.example:443/cb?x=1":       true,
		"http://127.0.0.1:33418/oauth/callback":   true,
		"http://localhost:9/cb":                   true,
		"http://[::1]:9/cb":                       true,
		"https://attacker.example/callback":       false,
		"https://client.example:8443/callback":    false,
		"https://sub.client.example/callback":     false,
		"https://client.example.attacker.test/cb": false,
	} {
		if err := sameOrigin(uri, id); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", uri, err, ok)
		}
	}
}

// TestAuthorizationEndpointNoCORS: the authorization endpoint is navigated
// to, never read by a page of another origin (with CIMD its answers would
// tell that page about the URLs it names); the token endpoint, which
// browser-based clients call, keeps CORS.
func TestAuthorizationEndpointNoCORS(t *testing.T) {
	h := cimdtest.New(t)
	f := newCIMDFixture(t, h, nil)
	req, _ := http.NewRequest(http.MethodGet, f.issuer+PathAuthorize+"?"+url.Values{"client_id": {h.URL + "/nothing.json"}, "response_type": {"code"}}.Encode(), nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, _ := f.do(req)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("the authorization endpoint lets %q read its answer", got)
	}
	req, _ = http.NewRequest(http.MethodOptions, f.issuer+PathAuthorize, nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", http.MethodGet)
	if resp, _ := f.do(req); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a preflight of the authorization endpoint is allowed")
	}
	req, _ = http.NewRequest(http.MethodOptions, f.issuer+PathToken, nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	if resp, _ := f.do(req); resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("the token endpoint lost CORS")
	}
}

// TestCIMDFetchGuarded: the address guard applies to the address dialed,
// so a name that resolves to loopback is not fetched from without
// AllowLoopback (the port rule would refuse a test server's URL first:
// this calls the fetch itself).
func TestCIMDFetchGuarded(t *testing.T) {
	h := cimdtest.New(t)
	h.Publish("/client.json", nil, goodDocument())
	d, err := newMetadataDocuments(ClientIDMetadata{CAFile: h.CAFile}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{h.URL + "/client.json", strings.Replace(h.URL, "127.0.0.1", "localhost", 1) + "/client.json"} {
		_, _, err := d.fetch(context.Background(), id)
		var de *documentError
		if !errors.As(err, &de) || !strings.Contains(de.reason, errForbiddenAddress.Error()) || err.Error() != errDocumentRefused {
			t.Errorf("%s: %v (%+v), want refused for its address, told only %q", id, err, de, errDocumentRefused)
		}
	}
	if n := h.Fetches("/client.json"); n != 0 {
		t.Errorf("fetched %d times from loopback", n)
	}
}
