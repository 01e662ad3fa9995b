package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/tools"
)

// answersLater is a toolset with two tools: answer_later, that answers
// after 20ms unless its context ends first, and tells on answeredLater
// which (nil: it answered); close_until_cancelled, that closes its event
// stream every 200ms without asking its client to come back (no retry
// field) and sends nothing else, until its context ends, which it tells on
// closedUntil.
type answersLater struct{}

var (
	answeredLater = make(chan error, 16)
	closedUntil   = make(chan error, 16)
)

func (answersLater) Name() string                 { return "answers-later" }
func (answersLater) Configure(*mcp.ServerOptions) {}
func (answersLater) Scopes() map[string][]string  { return nil }
func (answersLater) Install(s *mcp.Server, _ tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "answer_later", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case <-time.After(20 * time.Millisecond):
				answeredLater <- nil
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "answered later"}}}, nil
			case <-ctx.Done():
				answeredLater <- ctx.Err()
				return nil, ctx.Err()
			}
		})
	s.AddTool(&mcp.Tool{Name: "close_until_cancelled", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			for {
				if req.Extra != nil && req.Extra.CloseSSEStream != nil {
					req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{})
				}
				select {
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
					closedUntil <- ctx.Err()
					return nil, ctx.Err()
				}
			}
		})
}

// A JSON-only call whose stream the edge gave up resuming (here, its tool
// ends it again and again, sends nothing and never asks to be resumed:
// three tries in a row that brought nothing) is answered 502, and cancelled by the edge: nobody will
// read its answer, and its actor, which saw only streams end, leaves it to
// the edge.
func TestJSONOnlyCallWhoseResumptionIsGivenUpIsCancelled(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"close_until_cancelled","arguments":{}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"id":"c"`) {
		t.Fatalf("a call whose stream stalled, taking JSON alone: %d %q", resp.StatusCode, body)
	}
	select {
	case <-closedUntil:
	case <-time.After(10 * time.Second):
		t.Fatal("the call whose resumption the edge gave up runs on")
	}
}

// A JSON-only call whose stream the edge cut as silent (a path to its
// actor that carried nothing for three keep-alive intervals), its actor
// alive all along, is answered from the stream the edge resumed: the cut
// is not its client leaving, so the actor does not cancel the call
// (Request.JsonAlone), and the resumed GET, which may reach the go-sdk
// before the cut POST has let go of its stream (409), is tried again.
//
// (An edge whose keep-alive is under a millisecond forwards none to its
// actor, keepalive_ms being whole milliseconds: its streams go silent at
// once, the actor alive. The session is opened through another edge.)
func TestJSONOnlyCallCutAsSilentIsAnsweredOnItsResumedStream(t *testing.T) {
	sid := initialize(t, newEdge(t, Options{}).URL)
	srv := newEdge(t, Options{SSEKeepAlive: 900 * time.Microsecond})
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"answer_later","arguments":{}}}`}.do(t, srv.URL)
	select {
	case err := <-answeredLater:
		if err != nil {
			t.Errorf("the call whose stream went silent was cancelled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call never ended")
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "answered later") {
		t.Fatalf("a call whose stream went silent, taking JSON alone: %d %q", resp.StatusCode, body)
	}
}

// The GET that resumes a JSON answer's stream is the POST's, as its actor
// admitted it: same session and principal, the event stream asked from
// the last event read, and marked as continuing that request (so that it
// neither takes the session to its client nor replaces the session's
// token).
func TestResumeOfContinuesItsRequest(t *testing.T) {
	p := &envelope.Principal{Subject: "alice", ClientId: "c1"}
	post := &envelope.Request{Id: "r1", Method: http.MethodPost, Path: "/mcp", Principal: p, Window: 16, JsonAlone: true, Body: []byte(`{}`),
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json"}},
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Mcp-Session-Id", Values: []string{"s"}},
			{Name: "last-event-id", Values: []string{"stale"}},
		}}
	get := resumeOf(post, "3_7", "r2")
	h := http.Header{}
	envelope.ToHTTP(get.Headers, h)
	if get.Method != http.MethodGet || get.Id != "r2" || get.Principal != p || !get.Continues || get.JsonAlone || len(get.Body) != 0 ||
		h.Get("Accept") != "text/event-stream" || h.Values("Last-Event-ID")[0] != "3_7" || len(h.Values("Last-Event-ID")) != 1 ||
		h.Get("Content-Type") != "" || h.Get("Mcp-Session-Id") != "s" {
		t.Errorf("resumeOf: %+v, headers %v", get, h)
	}
}
