package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limitsClient sends raw MCP requests as one user.
type limitsClient struct {
	t     *testing.T
	ctx   context.Context
	url   string
	token string
	sid   string
	// version is the session's protocol version; 2025-11-25 when empty.
	version string
}

type limitsAnswer struct {
	status int
	header http.Header
	body   string
}

func (c *limitsClient) do(method, body string) limitsAnswer {
	c.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + c.token, "Content-Type": "application/json",
		"Accept": "application/json, text/event-stream"}
	if c.sid != "" {
		h["Mcp-Session-Id"], h["Mcp-Protocol-Version"] = c.sid, c.protocolVersion()
	}
	return askHTTP(c.t, c.ctx, method, c.url, body, h)
}

// askHTTP sends a request (no body when body is "") with headers h and
// returns the whole answer.
func askHTTP(t testing.TB, ctx context.Context, method, url, body string, h map[string]string) limitsAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return limitsAnswer{resp.StatusCode, resp.Header, string(b)}
}

func (c *limitsClient) protocolVersion() string {
	if c.version == "" {
		return "2025-11-25"
	}
	return c.version
}

// open initializes a session.
func (c *limitsClient) open() {
	c.t.Helper()
	a := c.do(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+c.protocolVersion()+`","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`)
	if a.status != http.StatusOK {
		c.t.Fatalf("initialize: %d %s", a.status, a.body)
	}
	c.sid = a.header.Get("Mcp-Session-Id")
	if a := c.do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); a.status != http.StatusAccepted {
		c.t.Fatalf("initialized: %d %s", a.status, a.body)
	}
}

// stream opens a GET stream and returns its response, open.
func (c *limitsClient) stream(ctx context.Context) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", c.sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// checkRefusal checks a limit's refusal: 429, Retry-After in whole
// seconds, a retryable JSON-RPC error naming the limit.
func checkRefusal(t *testing.T, a limitsAnswer, limit string) {
	t.Helper()
	var m struct {
		JSONRPC string
		Error   struct {
			Code int
			Data struct {
				Retryable bool
				Limit     string
			}
		}
	}
	secs, err := strconv.Atoi(a.header.Get("Retry-After"))
	if a.status != http.StatusTooManyRequests || err != nil || secs < 1 || json.Unmarshal([]byte(a.body), &m) != nil ||
		m.JSONRPC != "2.0" || m.Error.Code != -32005 || !m.Error.Data.Retryable || m.Error.Data.Limit != limit {
		t.Fatalf("refusal: %d Retry-After %q %s; want 429 with Retry-After and a retryable JSON-RPC error of limit %s",
			a.status, a.header.Get("Retry-After"), a.body, limit)
	}
}

// TestLimits runs `pingmcp dev` with small limits: alice flooding the edge
// gets 429s with Retry-After while bob's tool calls go through; a session's
// second GET stream is refused by its actor; an oversized header gets 431.
func TestLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t, "--rate-limit", "2", "--rate-burst", "10", "--max-streams-per-session", "1", "--max-header-bytes", "4096")
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", allScopes)
	bob := login(t, ctx, d.Issuer, d.MCP, "bob", allScopes)

	t.Run("rate", func(t *testing.T) {
		a := &limitsClient{t: t, ctx: ctx, url: d.MCP, token: alice}
		a.open()
		ok, refused := 0, 0
		for i := range 40 {
			ans := a.do(http.MethodPost, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+2))
			switch ans.status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				checkRefusal(t, ans, "rate")
				refused++
			default:
				t.Fatalf("ping: %d %s", ans.status, ans.body)
			}
		}
		// A burst of 10 (2 spent on the handshake) and 2/s: most of a quick
		// flood of 40 is refused.
		if refused < 20 || ok < 1 {
			t.Errorf("alice's flood: %d answered, %d refused; want most refused", ok, refused)
		}
		// Bob, meanwhile, works as ever, through the go-sdk client.
		bs := connectAs(t, ctx, d.MCP, bob)
		if text, isErr := call(t, ctx, bs, "get_my_todo_list", nil); isErr {
			t.Fatalf("bob's tool call while alice is limited: %s", text)
		}
		// Alice is still limited. Her bucket refilled a little while bob
		// worked (2 a second): a quick few pings spend that, then one is
		// refused.
		for i := 0; ; i++ {
			ans := a.do(http.MethodPost, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, 100+i))
			if ans.status != http.StatusOK || i == 10 {
				checkRefusal(t, ans, "rate")
				break
			}
		}
		// Refusals are logged at debug with the principal's key, never a token.
		if line := d.line("request refused by a limit"); !strings.Contains(line, `"principal":"`) {
			t.Errorf("refusal log line: %q", line)
		}
		if d.logged(alice) || d.logged(bob) {
			t.Error("a token was logged")
		}
	})

	t.Run("session streams", func(t *testing.T) {
		b := &limitsClient{t: t, ctx: ctx, url: d.MCP, token: bob}
		b.open()
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		first := b.stream(sctx)
		defer first.Body.Close()
		if first.StatusCode != http.StatusOK || first.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("first stream: %d %v", first.StatusCode, first.Header)
		}
		second := b.stream(ctx)
		body, _ := io.ReadAll(second.Body)
		second.Body.Close()
		checkRefusal(t, limitsAnswer{second.StatusCode, second.Header, string(body)}, "session_streams")
		// The session still serves its requests.
		if ans := b.do(http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"ping"}`); ans.status != http.StatusOK {
			t.Fatalf("ping beside the stream: %d %s", ans.status, ans.body)
		}
	})

	t.Run("header size", func(t *testing.T) {
		u, _ := url.Parse(d.MCP)
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: %s\r\nX-Padding: %s\r\nContent-Length: 0\r\n\r\n", u.Host, strings.Repeat("a", 16<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("16 KiB of headers with --max-header-bytes 4096: %d, want 431", resp.StatusCode)
		}
	})
}
