package e2e

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestClientLocalhost points the official TypeScript SDK client at
// http://localhost:<port>/mcp of pingmcp dev, and another at
// http://127.0.0.1:<port>/mcp: each finds, through the challenge and the
// metadata, the very URL it used as the resource, logs in with a token for
// it, and calls a tool (issue 12 item 1). A token is for the URL it was
// asked for: the 127.0.0.1 URL refuses localhost's. The metadata does not
// contradict itself (item 2): nothing at the root form of the protected-
// resource metadata nor authorization server metadata on the MCP origin,
// and the metadata and the authorization server's endpoints answer the
// CORS preflights a browser sends with MCP-Protocol-Version. A client
// pointed at /mcp/ goes on at /mcp.
func TestClientLocalhost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--tools", "conformance")
	ipURL, err := url.Parse(d.MCP)
	if err != nil || ipURL.Hostname() != "127.0.0.1" {
		t.Fatalf("MCP URL %q: %v", d.MCP, err)
	}
	d.HTTP = ipURL.Host
	d.awaitMembers(ctx, 1)
	localURL := "http://" + net.JoinHostPort("localhost", ipURL.Port()) + ipURL.Path
	as := fetchASMetadata(t, ctx, d.Issuer)

	clients := map[string]*sdkClient{}
	for user, mcpURL := range map[string]string{"alice": localURL, "bob": d.MCP} {
		c := startSDKClient(t, ctx, nodeBin, mcpURL, user)
		c.checkOAuth(mcpURL, d.Issuer, as) // the challenge, the metadata and the aud name mcpURL
		const want = "This is a simple text response for testing."
		if got := c.call(ctx, "test_simple_text", nil).text(); got != want {
			t.Errorf("%s at %s: test_simple_text = %q, want %q", user, mcpURL, got, want)
		}
		clients[user] = c
	}

	// alice's token is for the localhost URL: taken there, refused at
	// 127.0.0.1 with a challenge naming 127.0.0.1's metadata.
	aliceToken := clients["alice"].tokens()[0]
	if a := abuseInit(t, ctx, localURL, aliceToken, nil); a.status != http.StatusOK {
		t.Errorf("alice's token at %s: %d, want 200", localURL, a.status)
	}
	a := abuseInit(t, ctx, d.MCP, aliceToken, nil)
	if chal := a.header.Get("WWW-Authenticate"); a.status != http.StatusUnauthorized || !strings.Contains(chal, `error="invalid_token"`) ||
		!strings.Contains(chal, `resource_metadata="http://`+ipURL.Host+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("alice's localhost token at %s: %d %q, want 401 invalid_token naming 127.0.0.1's metadata", d.MCP, a.status, chal)
	}
	// A client pointed at /mcp/ is redirected (308) to /mcp, its
	// discovery's path form to /mcp's metadata, and goes on there with a
	// token for /mcp.
	slash := startSDKClient(t, ctx, nodeBin, d.MCP+"/", "alice")
	if got := slash.call(ctx, "test_simple_text", nil).text(); got != "This is a simple text response for testing." {
		t.Errorf("alice at %s/: test_simple_text = %q", d.MCP, got)
	}
	if a := abuseInit(t, ctx, d.MCP, slash.tokens()[0], nil); a.status != http.StatusOK {
		t.Errorf("the token of the client pointed at %s/, at %s: %d, want 200", d.MCP, d.MCP, a.status)
	}
	clients["alice at /mcp/"] = slash
	for _, c := range clients {
		c.finish(ctx)
	}

	// No metadata that contradicts itself: the root form would describe the
	// origin, and the authorization server's document has another issuer.
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server"} {
		for _, base := range []string{"http://" + ipURL.Host, "http://localhost:" + ipURL.Port()} {
			if a := askHTTP(t, ctx, http.MethodGet, base+path, "", nil); a.status != http.StatusNotFound {
				t.Errorf("GET %s%s: %d, want 404", base, path, a.status)
			}
		}
	}

	// Preflights with MCP-Protocol-Version, as a browser-based client
	// (the Inspector) sends them, at pingmcp and at the authorization
	// server.
	preflights := []struct{ url, method, headers string }{
		{"http://" + ipURL.Host + "/.well-known/oauth-protected-resource/mcp", http.MethodGet, "mcp-protocol-version"},
		{localURL[:strings.LastIndex(localURL, "/mcp")] + "/.well-known/oauth-protected-resource/mcp", http.MethodGet, "mcp-protocol-version"},
		{d.Issuer + "/.well-known/oauth-authorization-server", http.MethodGet, "mcp-protocol-version"},
		{d.Issuer + "/.well-known/openid-configuration", http.MethodGet, "mcp-protocol-version"},
		{d.Issuer + "/pf/JWKS", http.MethodGet, "mcp-protocol-version"},
		{as.RegistrationEndpoint, http.MethodPost, "content-type,mcp-protocol-version"},
		{as.TokenEndpoint, http.MethodPost, "authorization,content-type,mcp-protocol-version"},
	}
	for _, p := range preflights {
		a := askHTTP(t, ctx, http.MethodOptions, p.url, "", map[string]string{
			"Origin": "http://localhost:6274", "Access-Control-Request-Method": p.method, "Access-Control-Request-Headers": p.headers,
		})
		status, h := a.status, a.header
		if status/100 != 2 || h.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "mcp-protocol-version") {
			t.Errorf("preflight of %s: %d, allow-origin %q, allow-headers %q", p.url, status, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Headers"))
		}
	}
}

// TestPublicURLRefusesOtherHosts: with --public-url, the edge answers to
// that URL's host only; a request for another (here 127.0.0.1, where it
// listens) is refused with 421 Misdirected Request naming the URL to use,
// on /mcp and on the metadata, while the public URL works from the
// challenge to the tool call.
func TestPublicURLRefusesOtherHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	public := "http://localhost:" + port
	d := runDev(t, "--tools", "conformance", "--addr", addr, "--public-url", public)
	if d.MCP != public+"/mcp" {
		t.Fatalf("MCP URL %q, want %s/mcp", d.MCP, public)
	}
	d.HTTP = addr
	d.awaitMembers(ctx, 1)

	for _, u := range []string{"http://" + addr + "/mcp", "http://" + addr + "/.well-known/oauth-protected-resource/mcp"} {
		if a := askHTTP(t, ctx, http.MethodGet, u, "", nil); a.status != http.StatusMisdirectedRequest || !strings.Contains(a.body, d.MCP) {
			t.Errorf("GET %s: %d %s, want 421 naming %s", u, a.status, a.body, d.MCP)
		}
	}
	if a := abuseInit(t, ctx, "http://"+addr+"/mcp", "x", nil); a.status != http.StatusMisdirectedRequest || a.header.Get("WWW-Authenticate") != "" {
		t.Errorf("POST to 127.0.0.1 of a localhost public URL: %d %v %s", a.status, a.header, a.body)
	}

	as := fetchASMetadata(t, ctx, d.Issuer)
	c := startSDKClient(t, ctx, nodeBin, d.MCP, "alice")
	c.checkOAuth(d.MCP, d.Issuer, as)
	c.call(ctx, "test_simple_text", nil)
	c.finish(ctx)
}

// TestGoSDKClientLocalhost: the Go SDK's client (its authorization code
// handler: discovery from the challenge, registration, PKCE) logs in and
// calls a tool at the localhost and at the 127.0.0.1 URL of pingmcp dev;
// it too checks that the metadata names the URL it used.
func TestGoSDKClientLocalhost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t, "--tools", "conformance")
	ipURL, err := url.Parse(d.MCP)
	if err != nil {
		t.Fatal(err)
	}
	d.HTTP = ipURL.Host
	d.awaitMembers(ctx, 1)
	const redirect = "http://127.0.0.1:9/callback"
	for _, mcpURL := range []string{"http://" + net.JoinHostPort("localhost", ipURL.Port()) + ipURL.Path, d.MCP} {
		handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none", ClientName: "go-sdk e2e",
				GrantTypes: []string{"authorization_code", "refresh_token"},
			}},
			AuthorizationCodeFetcher: func(_ context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
				cb := browserLogin(t, args.URL, redirect, "alice")
				return &sdkauth.AuthorizationResult{Code: cb.Query().Get("code"), State: cb.Query().Get("state"), Iss: cb.Query().Get("iss")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1"}, nil)
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, OAuthHandler: handler}, nil)
		if err != nil {
			t.Fatalf("Go SDK client at %s: %v", mcpURL, err)
		}
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
		if err != nil || res.IsError || len(res.Content) == 0 {
			t.Errorf("Go SDK client at %s: test_simple_text: %v %+v", mcpURL, err, res)
		}
		session.Close()
	}
}

// TestInsufficientScopeNamesHostMetadata: the session actor's 403
// insufficient_scope challenge names the metadata of the URL the client
// used (the edge sends the request's resource with it), here localhost's;
// a tool the token's scope allows works there, through a token exchange
// whose subject token is for the localhost resource.
func TestInsufficientScopeNamesHostMetadata(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t)
	ipURL, err := url.Parse(d.MCP)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + net.JoinHostPort("localhost", ipURL.Port())
	localURL := base + ipURL.Path
	writer := login(t, ctx, d.Issuer, localURL, "alice", "openid todo_api:write")
	ws := connectAs(t, ctx, localURL, writer)
	if out, isErr := call(t, ctx, ws, "create_new_todo", map[string]any{"text": "buy milk"}); isErr || !strings.Contains(out, "buy milk") {
		t.Errorf("create_new_todo with todo_api:write at %s: %s", localURL, out)
	}
	status, chal := rawToolCall(t, ctx, localURL, writer, ws.ID(), "get_my_todo_list", `{}`)
	if status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) ||
		!strings.Contains(chal, `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("get_my_todo_list with todo_api:write only at %s: %d %q, want 403 insufficient_scope naming localhost's metadata", localURL, status, chal)
	}
}
