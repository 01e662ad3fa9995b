package devidp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

const (
	mcpResource  = "http://127.0.0.1:8080/mcp"
	todoResource = "http://127.0.0.1:8081"
	exchanger    = "pingmcp"
	exchangerPW  = "pingmcp-secret"
	callback     = "http://127.0.0.1:9999/callback"
)

// testKey is shared: generating an RSA key per test is slow under -race.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t      *testing.T
	srv    *Server
	issuer string
	clock  *clock
	logs   *logtest.Buffer
	http   *http.Client // follows no redirects
}

func testOptions() *Options {
	return &Options{
		Clients: []Client{{ID: exchanger, Secret: exchangerPW}},
		Resources: []Resource{
			{URI: mcpResource, Scopes: []string{"openid", "profile", "offline_access", "mcp:tools", "todo_api:read", "todo_api:write"}},
			{URI: todoResource, Scopes: []string{"todo_api:read", "todo_api:write"}},
		},
		SigningKey: testKey(),
	}
}

// newFixture starts a server on a real socket, its options changed by mod.
func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	f := &fixture{
		t:      t,
		issuer: "http://" + ts.Listener.Addr().String(),
		clock:  &clock{t: time.Now()},
		logs:   &logtest.Buffer{},
		http: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	opts := testOptions()
	opts.Issuer = f.issuer
	opts.Now = f.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mod != nil {
		mod(opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return f
}

// do sends a request and decodes a JSON answer (nil when it is not JSON).
func (f *fixture) do(req *http.Request) (*http.Response, map[string]any) {
	f.t.Helper()
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &out); err != nil {
			f.t.Fatalf("%s %s: bad JSON %q: %v", req.Method, req.URL.Path, body, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, out
}

func (f *fixture) get(path string) (*http.Response, map[string]any) {
	req, _ := http.NewRequest(http.MethodGet, f.issuer+path, nil)
	return f.do(req)
}

// post sends a form, with HTTP Basic credentials when user is set.
func (f *fixture) post(path string, form url.Values, user, password string) (*http.Response, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	return f.do(req)
}

func (f *fixture) postJSON(path string, v any) (*http.Response, map[string]any) {
	f.t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, f.issuer+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return f.do(req)
}

// wantError checks an OAuth error answer.
func wantError(t *testing.T, resp *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, status, code)
	}
}

// registerClient registers a public client and returns its id.
func (f *fixture) registerClient(redirects ...string) string {
	f.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{callback}
	}
	resp, body := f.postJSON(PathRegister, map[string]any{
		"redirect_uris":              redirects,
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"client_name":                "Test MCP client",
	})
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	return body["client_id"].(string)
}

func pkce() (verifier, challenge string) {
	verifier = randomID(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize sends an authorization request for clientID with PKCE and the
// extra parameters, and returns the answer and the PKCE verifier.
func (f *fixture) authorize(clientID string, extra url.Values) (*http.Response, string) {
	f.t.Helper()
	verifier, challenge := pkce()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {callback},
		"scope":                 {"openid profile offline_access mcp:tools todo_api:read"},
		"state":                 {"st-123"},
		"nonce":                 {"n-456"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"resource":              {mcpResource},
	}
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	resp, _ := f.get(PathAuthorize + "?" + q.Encode())
	return resp, verifier
}

var loginIDPattern = regexp.MustCompile(`name="id" value="([^"]+)"`)

// loginForm follows an authorization answer to the login form and returns
// the form's request id and the page.
func (f *fixture) loginForm(resp *http.Response) (id, page string) {
	f.t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, f.issuer+PathLogin+"?") {
		f.t.Fatalf("authorize: %d Location %q, want a redirect to the login form", resp.StatusCode, loc)
	}
	req, _ := http.NewRequest(http.MethodGet, loc, nil)
	resp, _ = f.do(req)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		f.t.Fatalf("login form: %d %s", resp.StatusCode, b)
	}
	m := loginIDPattern.FindSubmatch(b)
	if m == nil {
		f.t.Fatalf("login form has no id field: %s", b)
	}
	return string(m[1]), string(b)
}

func (f *fixture) submitLogin(id, user, password string) *http.Response {
	f.t.Helper()
	resp, _ := f.post(PathLogin, url.Values{"id": {id}, "username": {user}, "password": {password}, "action": {"login"}}, "", "")
	return resp
}

// redirected parses the redirect to the client's callback.
func (f *fixture) redirected(resp *http.Response) url.Values {
	f.t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, callback+"?") {
		f.t.Fatalf("got %d Location %q, want a redirect to %s", resp.StatusCode, loc, callback)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

// login runs the browser part of the code flow for clientID as alice and
// redeems the code.
func (f *fixture) login(clientID string, extra url.Values) map[string]any {
	f.t.Helper()
	resp, verifier := f.authorize(clientID, extra)
	id, _ := f.loginForm(resp)
	q := f.redirected(f.submitLogin(id, "alice", "alice"))
	if q.Get("state") != "st-123" || q.Get("code") == "" {
		f.t.Fatalf("callback query %v", q)
	}
	resp, body := f.post(PathToken, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {callback},
		"client_id":     {clientID},
		"code_verifier": {verifier},
	}, "", "")
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("code exchange: %d %v", resp.StatusCode, body)
	}
	return body
}

// claims decodes a JWT's payload without verifying it.
func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact serialization: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiscoveryAndKeys(t *testing.T) {
	f := newFixture(t, nil)
	_, oidcDoc := f.get(PathOpenIDConfiguration)
	_, asDoc := f.get(PathASMetadata)
	if oidcDoc == nil || asDoc == nil {
		t.Fatal("a metadata document is missing")
	}
	a, _ := json.Marshal(oidcDoc)
	b, _ := json.Marshal(asDoc)
	if !bytes.Equal(a, b) {
		t.Errorf("the two metadata documents differ:\n%s\n%s", a, b)
	}
	want := map[string]string{
		"issuer":                 f.issuer,
		"authorization_endpoint": f.issuer + "/as/authorization.oauth2",
		"token_endpoint":         f.issuer + "/as/token.oauth2",
		"introspection_endpoint": f.issuer + "/as/introspect.oauth2",
		"revocation_endpoint":    f.issuer + "/as/revoke_token.oauth2",
		"jwks_uri":               f.issuer + "/pf/JWKS",
		"userinfo_endpoint":      f.issuer + "/idp/userinfo.openid",
		"registration_endpoint":  f.issuer + "/as/clients.oauth2",
	}
	for k, v := range want {
		if oidcDoc[k] != v {
			t.Errorf("%s = %v, want %s", k, oidcDoc[k], v)
		}
	}
	strs := func(k string) []string {
		var out []string
		for _, v := range oidcDoc[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := strs("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v", got)
	}
	grants := strs("grant_types_supported")
	for _, g := range []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"} {
		if !slices.Contains(grants, g) {
			t.Errorf("grant_types_supported %v lacks %s", grants, g)
		}
	}
	if got := strs("response_types_supported"); !slices.Equal(got, []string{"code"}) {
		t.Errorf("response_types_supported = %v", got)
	}
	if scopes := strs("scopes_supported"); !slices.Contains(scopes, "todo_api:write") {
		t.Errorf("scopes_supported = %v", scopes)
	}
	// RFC 8414 §3.3: no metadata for another issuer.
	if resp, _ := f.get(PathASMetadata + "/other"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("metadata of another issuer: %d", resp.StatusCode)
	}

	_, jwks := f.get(PathJWKS)
	raw, _ := json.Marshal(jwks)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyID == "" || k.Use != "sig" || k.Algorithm != "RS256" || !k.IsPublic() {
		t.Errorf("JWKS key: kid %q use %q alg %q public %v", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
	}
	if _, ok := k.Key.(*rsa.PublicKey); !ok {
		t.Errorf("JWKS key is a %T", k.Key)
	}

	// A token's header names that key.
	token, err := f.srv.AccessToken("alice", "c1", mcpResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if h := jws.Signatures[0].Header; h.KeyID != k.KeyID || h.Algorithm != "RS256" {
		t.Errorf("token header kid %q alg %q, JWKS kid %q", h.KeyID, h.Algorithm, k.KeyID)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string // substring of the error; "" for success
	}{
		{"defaults", nil, ""},
		{"no issuer", func(o *Options) { o.Issuer = "" }, "no issuer"},
		{"relative issuer", func(o *Options) { o.Issuer = "/as" }, "not an absolute"},
		{"issuer with query", func(o *Options) { o.Issuer = "http://127.0.0.1:1/?a=b" }, "query"},
		{"no resources", func(o *Options) { o.Resources = nil }, "no resources"},
		{"resource twice", func(o *Options) { o.Resources = append(o.Resources, o.Resources[0]) }, "twice"},
		{"resource without scopes", func(o *Options) { o.Resources[1].Scopes = nil }, "no scopes"},
		{"client twice", func(o *Options) { o.Clients = append(o.Clients, o.Clients[0]) }, "twice"},
		{"client without secret", func(o *Options) { o.Clients[0].Secret = "" }, "secret"},
		{"unknown grant", func(o *Options) { o.Clients[0].GrantTypes = []string{"password"} }, "unsupported grant"},
		{"code without redirect", func(o *Options) { o.Clients[0].GrantTypes = []string{"authorization_code"} }, "no redirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logtest.Buffer
			opts := testOptions()
			opts.Issuer = "http://127.0.0.1:9031"
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if tt.mod != nil {
				tt.mod(opts)
			}
			srv, err := New(opts)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want one saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if srv.Issuer() != "http://127.0.0.1:9031" {
				t.Errorf("Issuer() = %q", srv.Issuer())
			}
			if !strings.Contains(logs.String(), `level=WARN msg="development authorization server: not for production"`) {
				t.Errorf("no warning logged: %s", logs.String())
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr  string
		force bool
		ok    bool
	}{
		{"127.0.0.1:9031", false, true},
		{"127.0.0.2:9031", false, true},
		{"[::1]:0", false, true},
		{"localhost:9031", false, true},
		{":9031", false, false},
		{"0.0.0.0:9031", false, false},
		{"192.168.1.10:9031", false, false},
		{"idp.example.com:443", false, false},
		{"9031", false, false},
		{":9031", true, true},
	}
	for _, tt := range tests {
		err := CheckAddr(tt.addr, tt.force)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q, %v) = %v", tt.addr, tt.force, err)
		}
	}
}

func TestSeveralInstances(t *testing.T) {
	a := newFixture(t, nil)
	b := newFixture(t, func(o *Options) { o.SigningKey = nil })
	token, err := a.srv.AccessToken("alice", "c1", mcpResource, "todo_api:read")
	if err != nil {
		t.Fatal(err)
	}
	// b does not take a's token, and a is unaffected by b.
	resp, body := b.post(PathIntrospect, url.Values{"token": {token}}, exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK || body["active"] != false {
		t.Errorf("b introspects a's token: %d %v", resp.StatusCode, body)
	}
	resp, body = a.post(PathIntrospect, url.Values{"token": {token}}, exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK || body["active"] != true {
		t.Errorf("a introspects its token: %d %v", resp.StatusCode, body)
	}
}

func TestIssuerWithPath(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String() + "/idp"
	opts := testOptions()
	opts.Issuer = issuer
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/idp/", http.StripPrefix("/idp", srv))
	ts.Config.Handler = mux
	ts.Start()
	defer ts.Close()

	token, err := srv.AccessToken("alice", "c1", mcpResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	v := auth.NewJWTVerifier(auth.JWTOptions{Issuer: issuer, Audiences: []string{mcpResource}})
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("verify through discovery below a path: %v", err)
	}
}
