package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/ssetest"
	"github.com/pingmcp/pingmcp/state"
)

// sseReader is an event stream read on a goroutine of its own.
type sseReader struct{ *ssetest.Stream }

// openGET opens the standalone GET stream of session sid at mcpURL with
// token; it fails the test unless the answer is an event stream.
func openGET(t *testing.T, ctx context.Context, mcpURL, sid, token string) *sseReader {
	t.Helper()
	return openSSE(t, ctx, http.MethodGet, mcpURL, sid, token, "")
}

// openSSE sends a request on session sid whose answer must be an event
// stream.
func openSSE(t *testing.T, ctx context.Context, method, mcpURL, sid, token, body string) *sseReader {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, mcpURL, strings.NewReader(body))
	req.Header.Set("Accept", "application/json, text/event-stream")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s stream: %v", method, err)
	}
	return &sseReader{ssetest.Read(t, method+" stream", resp)}
}

// awaitLine waits for a line containing substr and returns the lines up
// to it.
func (s *sseReader) awaitLine(t *testing.T, substr string, d time.Duration) []string {
	t.Helper()
	return s.Await(t, d, fmt.Sprintf("%q", substr), func(l string) bool { return strings.Contains(l, substr) })
}

// awaitKeepAlives waits for n keep-alive comments and fails if the stream
// carries anything else but comments and blank lines, or ends, first.
func (s *sseReader) awaitKeepAlives(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for got := 0; got < n; {
		select {
		case l, ok := <-s.Lines:
			switch {
			case !ok:
				t.Fatalf("the stream ended after %d of %d keep-alives", got, n)
			case ssetest.IsKeepAlive(l):
				got++
			case l != "" && !strings.HasPrefix(l, ":"):
				t.Fatalf("an idle stream carried %q", l)
			}
		case <-deadline:
			t.Fatalf("%d of %d keep-alives within %s", got, n, d)
		}
	}
}

// initializeWithToken opens a session with token, for a client that
// supports elicitation, and returns its id.
func initializeWithToken(t *testing.T, ctx context.Context, mcpURL, token string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, b)
	}
	resp = postWithToken(t, ctx, mcpURL, token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	return sid
}

// TestKeepAliveAcrossNodes: through an edge-only node whose sessions'
// actors live on another process (so every byte crosses nodes), with
// --sse-keepalive 1s:
//   - an idle GET stream carries a keep-alive comment about every second
//     and nothing else, and so does a POST's stream whose tool waits for
//     the client (an elicitation nobody answers);
//   - a stream opened with a token ends, with a retry hint, once the token
//     is no longer accepted (its exp plus the verifier's 30 s of skew); the
//     client is then refused that token (401) and reconnects with a fresh
//     one;
//   - a stream whose member node freezes (SIGSTOP: its connections stay
//     up, nothing says it died) is ended by the edge after three silent
//     intervals, with a retry hint, and a new one works once the node is
//     back.
//
// At the base of this branch, none of this holds: --sse-keepalive does not
// exist, idle streams carry nothing, and a stream outlives its token.
func TestKeepAliveAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	is := authtest.NewIssuer(t)
	const resource = "https://pingmcp.example.test/mcp"
	// The membership probes are slow here (5 s × 3), so that the frozen
	// node is noticed by its silence, not by the membership.
	common := []string{"--auth", "jwt", "--issuer", is.URL, "--resource", resource, "--tools", "conformance",
		"--sse-keepalive", "1s", "--cluster-probe-interval", "5s"}
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, common...)...)
	member := startNode(t, "member", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, common...)...)
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)
	token := func(exp time.Time) string {
		c := is.Claims("alice", resource, "todo_api:read")
		c["exp"] = exp.Unix()
		return is.Token(t, c)
	}
	lasting := token(time.Now().Add(time.Hour))

	// Idle, across nodes: comments only, about one a second.
	sid := initializeWithToken(t, ctx, edge.URL(), lasting)
	idle := openGET(t, ctx, edge.URL(), sid, lasting)
	member.awaitSession(ctx, sid, "had its GET stream open on the member", func(s state.SessionInfo, _ bool) bool {
		return s.Node == member.Cluster && s.Streams == 1
	})
	idle.awaitKeepAlives(t, 3, 20*time.Second)
	if d := time.Since(idle.Opened); d < 2*time.Second {
		t.Errorf("three keep-alives within %s of an interval of 1s", d)
	}
	post := openSSE(t, ctx, http.MethodPost, edge.URL(), sid, lasting,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	post.awaitLine(t, "elicitation/create", 20*time.Second)
	post.awaitKeepAlives(t, 2, 20*time.Second)

	// A token accepted for 4 to 5 more seconds: its exp is 25 s ago, within
	// the verifier's skew of 30 s. (The stream must open, and carry a
	// keep-alive a second later, before then: under load that can take
	// more than the second or two a shorter life left.)
	sid2 := initializeWithToken(t, ctx, edge.URL(), lasting)
	expired := time.Now().Add(-25 * time.Second)
	short := token(expired)
	validUntil := time.Unix(expired.Unix(), 0).Add(30 * time.Second)
	cut := openGET(t, ctx, edge.URL(), sid2, short)
	cut.awaitKeepAlives(t, 1, 20*time.Second) // it is served, and idle
	last := cut.End(t, 20*time.Second)
	if time.Now().Before(validUntil) {
		t.Errorf("the stream ended before its token expired (%s)", validUntil)
	}
	if len(last) < 2 || last[len(last)-2] != "retry: 500" {
		t.Errorf("the stream of an expired token ended without a retry hint: %q", last)
	}
	if status := getWithToken(t, ctx, edge.URL(), short); status != http.StatusUnauthorized {
		t.Errorf("GET with the expired token: %d, want 401", status)
	}
	openGET(t, ctx, edge.URL(), sid2, lasting).awaitKeepAlives(t, 1, 20*time.Second)

	// The member freezes: the edge hears nothing from it, not even a
	// Terminated, and ends the stream after three silent intervals.
	if err := member.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.cmd.Process.Signal(syscall.SIGCONT) })
	stopped := time.Now()
	last = idle.End(t, 20*time.Second)
	if d := time.Since(stopped); d < 2*time.Second {
		t.Errorf("the stream ended %s after its node froze, before three keep-alive intervals", d)
	}
	if len(last) < 2 || last[len(last)-2] != "retry: 500" {
		t.Errorf("the silent stream ended without a retry hint: %q", last)
	}
	if got := edge.awaitMetric(ctx, `pingmcp_streams_ended_total{reason="silent"}`, 1); got < 1 {
		t.Error("the edge did not count the stream it ended as silent")
	}
	// Back, the member cancels the cut stream (the edge told it to), and
	// the client's reconnection is served.
	member.cmd.Process.Signal(syscall.SIGCONT)
	member.awaitSession(ctx, sid, "let go of the cut GET stream", func(s state.SessionInfo, found bool) bool { return found && s.Streams == 0 })
	openGET(t, ctx, edge.URL(), sid, lasting).awaitKeepAlives(t, 1, 30*time.Second)
}

// TestKeepAliveOfficialSDKClient: the official TypeScript SDK client, with
// Node's HTTP client set to drop a response body silent for 3 s (as it
// does at 300 s by default: mcp-remote's "SSE stream disconnected" every 5
// minutes), stays connected to pingmcp dev (--sse-keepalive 1s) through 8 s
// of idleness: its GET stream neither ends nor fails, and carries comments;
// the session then goes on. At the base of this branch the stream fails
// with UND_ERR_BODY_TIMEOUT and the SDK reconnects.
func TestKeepAliveOfficialSDKClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--tools", "conformance", "--sse-keepalive", "1s")
	mcpURL, err := url.Parse(d.MCP)
	if err != nil {
		t.Fatalf("MCP URL %q: %v", d.MCP, err)
	}
	d.HTTP = mcpURL.Host
	d.awaitMembers(ctx, 1)

	t.Setenv("OAUTHCLIENT_STREAM_BODY_TIMEOUT", "3000")
	c := startSDKClient(t, ctx, nodeBin, d.MCP, "alice")
	c.send(map[string]any{"idle": 8000})
	c.until(ctx, "idled")
	var idled struct {
		StreamsOpened, StreamsEnded, Comments int
		StreamFailures                        []string
		StreamOpen                            bool
	}
	lines := c.stdout()
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"event":"idled"`) {
			json.Unmarshal([]byte(lines[i]), &idled)
			break
		}
	}
	// The SDK may open its GET stream during the wait (it does so after
	// initialize, without waiting): once, then.
	if !idled.StreamOpen || idled.StreamsEnded != 0 || len(idled.StreamFailures) != 0 || idled.StreamsOpened > 1 {
		t.Errorf("during 8 s idle, the SDK's GET stream: %+v; want it open throughout", idled)
	}
	if idled.Comments < 4 {
		t.Errorf("the GET stream carried %d comments in 8 s, with a keep-alive every second", idled.Comments)
	}
	const want = "This is a simple text response for testing."
	if got := c.call(ctx, "test_simple_text", nil).text(); got != want {
		t.Errorf("after idling: test_simple_text = %q, want %q", got, want)
	}
	c.finish(ctx)
}
