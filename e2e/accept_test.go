package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A client whose POSTs take JSON alone (`Accept: application/json`: Claude
// Code's HTTP client was seen sending that, where MCP asks for both
// answers) works through pingmcp: the official TypeScript SDK's client,
// its POSTs' Accept replaced, logs in through the development
// authorization server, lists the tools and calls one, each POST answered
// with JSON (or 202), none refused. The go-sdk behind the edge refused
// every one of them 400.
func TestSDKClientTakingJSONAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--tools", "conformance")
	mcpURL, err := url.Parse(d.MCP)
	if err != nil {
		t.Fatal(err)
	}
	d.HTTP = mcpURL.Host
	d.awaitMembers(ctx, 1)

	c := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--post-accept", "application/json")
	c.wantTools("test_simple_text")
	const want = "This is a simple text response for testing."
	for range 2 {
		if got := c.call(ctx, "test_simple_text", nil).text(); got != want {
			t.Errorf("test_simple_text = %q, want %q", got, want)
		}
	}
	c.finish(ctx)

	posts := 0
	for _, line := range c.stdout() {
		var e sdkEvent
		if json.Unmarshal([]byte(line), &e) != nil || e.Event != "http" || e.Method != http.MethodPost || !strings.HasSuffix(e.URL, mcpURL.Path) {
			continue
		}
		switch {
		case e.Status == http.StatusUnauthorized: // before the login
		case e.Status == http.StatusAccepted:
		case e.Status == http.StatusOK && strings.HasPrefix(e.ContentType, "application/json"):
			posts++
		default:
			t.Errorf("a POST taking JSON alone: %d %q, want 200 application/json (or 202)", e.Status, e.ContentType)
		}
	}
	// initialize, tools/list, two calls
	if posts < 4 {
		t.Errorf("%d POSTs answered with JSON, want at least 4 (initialize, tools/list, two calls)", posts)
	}
}
