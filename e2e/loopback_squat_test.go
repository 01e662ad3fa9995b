package e2e

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoopbackSquat: pingmcp dev on 127.0.0.1:P accepts tokens for
// http://[::1]:P/mcp and http://localhost:P/mcp, so it holds [::1]:P too:
// while another process holds [::1]:P (where it could be reached by a
// client pointed at localhost, and handed a token pingmcp accepts), dev
// refuses to start, naming the address and what to do; once it is free,
// the official TypeScript SDK client logs in and calls a tool at
// http://[::1]:P/mcp, and 127.0.0.1:P answers too. On a host without IPv6
// loopback nobody can take [::1]:P, and dev does not name it a resource.
func TestLoopbackSquat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	squat, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback (%v): checking that [::1] is no resource", err)
		d := runDev(t, "--tools", "conformance")
		host := strings.TrimSuffix(strings.TrimPrefix(d.MCP, "http://"), "/mcp")
		_, port, _ := net.SplitHostPort(host)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/.well-known/oauth-protected-resource/mcp", nil)
		req.Host = "[::1]:" + port
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("metadata for Host [::1]:%s: %d, want 421 (no resource there)", port, resp.StatusCode)
		}
		return
	}
	port := strconv.Itoa(squat.Addr().(*net.TCPAddr).Port)
	addr := net.JoinHostPort("127.0.0.1", port)
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Skipf("%s is taken by another process: %v", addr, err)
	} else {
		ln.Close()
	}

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(rctx, binary, "dev", "--addr", addr, "--idp-addr", "127.0.0.1:0", "--todo-api-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--dev-state", "off").CombinedOutput()
	timedOut := rctx.Err() != nil
	rcancel()
	if err == nil || timedOut || !strings.Contains(string(out), "[::1]:"+port) || !strings.Contains(string(out), "address already in use") ||
		!strings.Contains(string(out), "Stop that process, or point clients at this server's IP literal") || !strings.Contains(string(out), "--public-url http://"+addr) {
		t.Fatalf("pingmcp dev --addr %s while [::1]:%s is held by another process: %v (timed out: %v)\n%s\nwant it to refuse to start, naming [::1]:%s and what to do",
			addr, port, err, timedOut, out, port)
	}
	// dev's own authorization server and Todo API, given a URL naming
	// localhost, hold the twin as well (derived, their URL is the IP
	// literal they are bound to, which needs none).
	for _, args := range [][]string{
		{"--idp-addr", "localhost:" + port, "--issuer", "http://localhost:" + port, "--client-secret", "s", "--todo-api-addr", "127.0.0.1:0"},
		{"--todo-api-addr", "localhost:" + port, "--todo-api-url", "http://localhost:" + port, "--idp-addr", "127.0.0.1:0"},
	} {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(rctx, binary, append([]string{"dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--dev-state", "off"}, args...)...).CombinedOutput()
		timedOut := rctx.Err() != nil
		rcancel()
		if err == nil || timedOut || !strings.Contains(string(out), "[::1]:"+port) || !strings.Contains(string(out), "address already in use") {
			t.Errorf("pingmcp dev %v while [::1]:%s is held by another process: %v (timed out: %v)\n%s\nwant it to refuse to start, naming [::1]:%s",
				args, port, err, timedOut, out, port)
		}
	}
	squat.Close()

	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--addr", addr, "--tools", "conformance")
	d.HTTP = addr
	d.awaitMembers(ctx, 1)
	as := fetchASMetadata(t, ctx, d.Issuer)
	v6URL := "http://[::1]:" + port + "/mcp"
	c := startSDKClient(t, ctx, nodeBin, v6URL, "alice")
	c.checkOAuth(v6URL, d.Issuer, as) // the challenge, the metadata and the aud name [::1]
	const want = "This is a simple text response for testing."
	if got := c.call(ctx, "test_simple_text", nil).text(); got != want {
		t.Errorf("at %s: test_simple_text = %q, want %q", v6URL, got, want)
	}
	c.finish(ctx)
	for _, base := range []string{"http://" + addr, "http://[::1]:" + port} {
		if a := askHTTP(t, ctx, http.MethodGet, base+"/.well-known/oauth-protected-resource/mcp", "", nil); a.status != http.StatusOK ||
			!strings.Contains(a.body, `"resource":"`+base+`/mcp"`) {
			t.Errorf("metadata at %s: %d %s, want 200 naming %s/mcp", base, a.status, a.body, base)
		}
	}
}
