package todo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/hangtest"
	"github.com/pingmcp/pingmcp/tools"
)

// staticCaller delegates a fixed token.
type staticCaller struct{}

func (staticCaller) Refused(context.Context, *tools.Delegation) {}
func (staticCaller) Claims(context.Context) map[string]any      { return nil }
func (staticCaller) Delegate(context.Context, string, []string) (*tools.Delegation, error) {
	return &tools.Delegation{Token: "delegated", Expiry: time.Now().Add(time.Hour)}, nil
}

// A Todo API that never answers fails the tool call within the HTTP
// client's timeout (--upstream-timeout) with a tool error saying so; the
// call does not hang.
func TestHungTodoAPI(t *testing.T) {
	api := hangtest.New(t, nil)
	const timeout = 200 * time.Millisecond
	c := &calls{opts: Options{APIURL: api.URL, HTTPClient: &http.Client{Timeout: timeout}}, caller: staticCaller{}}
	start := time.Now()
	res, err := c.list(context.Background(), nil)
	took := time.Since(start)
	if err != nil || res == nil || !res.IsError {
		t.Fatalf("list against a hung API: %+v, %v; want a tool error", res, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(text, "could not be reached") || !strings.Contains(text, "no answer in time") {
		t.Errorf("tool error %q does not say the API timed out", text)
	}
	if strings.Contains(text, "delegated") {
		t.Error("the tool error shows the token")
	}
	if took > 10*timeout {
		t.Errorf("failed after %v, want about %v", took, timeout)
	}
	// The client may give up before the server's goroutine has read the
	// request it sent: that one comes, if late.
	select {
	case <-api.Reached:
	case <-time.After(10 * time.Second):
		t.Error("the API was never called")
	}
}

// An import stopped while a create is in flight (its task cancelled, or its
// actor stopping so that another node resumes it) ends with its context's
// error, not a tool error: a resumable task's next round carries on, where
// a tool error would have completed the task as failed.
func TestImportStoppedMidRequest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	creates, done := 0, make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if creates++; creates == 3 {
			cancel()
			select { // the client gives up; the server may not notice
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		w.Write([]byte(`{"todos":[]}`))
	}))
	defer api.Close()
	defer close(done)
	c := &calls{opts: Options{APIURL: api.URL, HTTPClient: api.Client()}, caller: staticCaller{}}
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Arguments: json.RawMessage(`{"items":["a","b","c","d"]}`)}}
	res, err := c.importTodos(ctx, req)
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("import stopped mid-request: %+v, %v; want no result and context.Canceled", res, err)
	}
}
