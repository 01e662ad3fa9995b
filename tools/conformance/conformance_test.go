//lint:file-ignore SA1019 the suite exercises sampling, roots and logging, deprecated by SEP-2577 but still in the 2025-11-25 protocol.

package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A mode is one way pingmcp hosts the toolset: a session per client on the
// 2025-11-25 protocol, or one shared server answering stateless 2026-07-28
// requests.
type mode struct {
	name      string
	stateless bool
	version   string
}

var modes = []mode{
	{"stateful", false, "2025-11-25"},
	{"stateless", true, "2026-07-28"},
}

func newServer() *mcp.Server {
	ts := New()
	var opts mcp.ServerOptions
	ts.Configure(&opts)
	s := mcp.NewServer(&mcp.Implementation{Name: "pingmcp-test", Version: "0"}, &opts)
	ts.Install(s, nil)
	return s
}

// serve hosts the toolset the way the session and principal actors do: a new
// server per session, or a single server for every stateless request.
func serve(t *testing.T, m mode) string {
	t.Helper()
	opts := &mcp.StreamableHTTPOptions{Stateless: m.stateless}
	getServer := func(*http.Request) *mcp.Server { return newServer() }
	if m.stateless {
		principal := newServer()
		getServer = func(*http.Request) *mcp.Server { return principal }
	} else {
		opts.EventStore = mcp.NewMemoryEventStore(nil)
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(getServer, opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The client's side of sampling, elicitation and roots.
var elicitAnswers = map[string]map[string]any{
	"What is your name?":                    {"name": "Ada"},
	"Please confirm":                        {"ok": true},
	"Who are you?":                          {"username": "ada", "email": "ada@example.com"},
	"Please provide context for the prompt": {"context": "unit tests"},
	"Step 1: What is your name?":            {"name": "Ada"},
	"Step 2: What is your favorite color?":  {"color": "teal"},
}

func connect(t *testing.T, m mode, progress chan<- *mcp.ProgressNotificationParams) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "pingmcp-test-client", Version: "0"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test-model", Content: &mcp.TextContent{Text: "Paris"}}, nil
		},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if answer, ok := elicitAnswers[req.Params.Message]; ok {
				return &mcp.ElicitResult{Action: "accept", Content: answer}, nil
			}
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			if progress != nil {
				progress <- req.Params
			}
		},
	})
	client.AddRoots(&mcp.Root{URI: "file:///project", Name: "project"})
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: serve(t, m)},
		&mcp.ClientSessionOptions{ProtocolVersion: m.version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != m.version {
		t.Fatalf("negotiated protocol version %q, want %q", got, m.version)
	}
	return cs
}

// textOfResult returns the text of a result's only text content.
func textOfResult(t *testing.T, content []mcp.Content) string {
	t.Helper()
	var texts []string
	for _, c := range content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	if len(texts) != 1 {
		t.Fatalf("want one text content, got %d in %v", len(texts), content)
	}
	return texts[0]
}

func TestListings(t *testing.T) {
	wantTools := []string{"test_trigger_tool_change", "test_trigger_prompt_change"}
	for _, tl := range catalogue {
		wantTools = append(wantTools, tl.def.Name)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			ctx := t.Context()
			var tools []string
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatalf("list tools: %v", err)
				}
				tools = append(tools, tool.Name)
				if tool.Name == "json_schema_2020_12_tool" {
					schema, _ := json.Marshal(tool.InputSchema)
					for _, kw := range []string{`"$schema"`, `"$defs"`, `"$anchor"`, `"allOf"`, `"if"`, `"additionalProperties":false`} {
						if !strings.Contains(string(schema), kw) {
							t.Errorf("json_schema_2020_12_tool schema lost %s: %s", kw, schema)
						}
					}
				}
			}
			for _, name := range wantTools {
				if !slices.Contains(tools, name) {
					t.Errorf("tools/list lacks %s", name)
				}
			}
			var uris []string
			for r, err := range cs.Resources(ctx, nil) {
				if err != nil {
					t.Fatalf("list resources: %v", err)
				}
				uris = append(uris, r.URI)
			}
			for rt, err := range cs.ResourceTemplates(ctx, nil) {
				if err != nil {
					t.Fatalf("list resource templates: %v", err)
				}
				uris = append(uris, rt.URITemplate)
			}
			slices.Sort(uris)
			want := []string{"test://static-binary", "test://static-text", "test://template/{id}/data", "test://watched-resource"}
			if !slices.Equal(uris, want) {
				t.Errorf("resources and templates = %v, want %v", uris, want)
			}
			var names []string
			for p, err := range cs.Prompts(ctx, nil) {
				if err != nil {
					t.Fatalf("list prompts: %v", err)
				}
				names = append(names, p.Name)
			}
			for _, p := range prompts {
				if !slices.Contains(names, p.def.Name) {
					t.Errorf("prompts/list lacks %s", p.def.Name)
				}
			}
		})
	}
}

func TestToolCalls(t *testing.T) {
	tests := []struct {
		tool    string
		args    map[string]any
		want    string // the text content, or a prefix of it when it ends in "*"
		isError bool
		only    string // the mode the case needs, if not both
	}{
		{tool: "test_simple_text", want: "This is a simple text response for testing."},
		{tool: "test_error_handling", want: "this tool intentionally returns an error for testing", isError: true},
		{tool: "test_x_mcp_header", args: map[string]any{"region": "eu-west"}, want: "region=eu-west"},
		{tool: "json_schema_2020_12_tool", args: map[string]any{"email": "a@b.c"}, want: `JSON Schema 2020-12 tool called with: {"email":"a@b.c"}`},
		{tool: "test_missing_capability", want: "Client declared the sampling capability; tool executed."},
		{tool: "test_sampling", args: map[string]any{"prompt": "Capital of France?"}, want: "LLM response: Paris", only: "stateful"},
		{tool: "test_sampling", want: `missing argument "prompt"`, isError: true, only: "stateful"},
		{tool: "test_elicitation", args: map[string]any{"message": "Who are you?"}, want: `User response: action=accept, content={"email":"ada@example.com","username":"ada"}`, only: "stateful"},
		{tool: "test_elicitation", args: map[string]any{"message": "Anything else?"}, want: "User response: action=decline, content=null", only: "stateful"},
		// Input requests: the client's SDK answers them on 2026-07-28, the
		// server's SDK on a 2025-11-25 session.
		{tool: "test_input_required_result_elicitation", want: "Hello, Ada!"},
		{tool: "test_input_required_result_sampling", want: "Sampling response: Paris"},
		{tool: "test_input_required_result_list_roots", want: "Client exposed 1 root(s): file:///project"},
		{tool: "test_input_required_result_multiple_inputs", want: "Paris Ada: 1 root(s) visible"},
		{tool: "test_input_required_result_request_state", want: "state-ok: *"},
		{tool: "test_input_required_result_capabilities", want: "Capability-aware input requests fulfilled"},
		// For an older session the server's SDK answers one round of input
		// requests, not two.
		{tool: "test_input_required_result_multi_round", want: "Multi-round complete: Ada likes teal", only: "stateless"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			// A 2026-07-28 client learns from tools/list which arguments it
			// must mirror into Mcp-Param-* headers (test_x_mcp_header).
			if _, err := cs.ListTools(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				if tt.only != "" && tt.only != m.name {
					continue
				}
				res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tt.tool, Arguments: tt.args})
				if err != nil {
					t.Errorf("%s: %v", tt.tool, err)
					continue
				}
				got := textOfResult(t, res.Content)
				if res.IsError != tt.isError {
					t.Errorf("%s: isError = %v (%q), want %v", tt.tool, res.IsError, got, tt.isError)
				}
				if prefix, ok := strings.CutSuffix(tt.want, "*"); ok && strings.HasPrefix(got, prefix) {
					continue
				}
				if got != tt.want {
					t.Errorf("%s(%v) = %q, want %q", tt.tool, tt.args, got, tt.want)
				}
			}
		})
	}
}

func TestBinaryContent(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_multiple_content_types"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Content) != 3 {
				t.Fatalf("got %d content blocks, want 3", len(res.Content))
			}
			img, ok := res.Content[1].(*mcp.ImageContent)
			if !ok || img.MIMEType != "image/png" || !strings.HasPrefix(string(img.Data), "\x89PNG") {
				t.Errorf("second block = %#v, want a PNG image", res.Content[1])
			}
			if r, ok := res.Content[2].(*mcp.EmbeddedResource); !ok || r.Resource.URI != "test://embedded-in-multiple" {
				t.Errorf("third block = %#v, want the embedded resource", res.Content[2])
			}
			res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_audio_content"})
			if err != nil {
				t.Fatal(err)
			}
			if a, ok := res.Content[0].(*mcp.AudioContent); !ok || a.MIMEType != "audio/wav" || !strings.HasPrefix(string(a.Data), "RIFF") {
				t.Errorf("audio tool returned %#v", res.Content)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			progress := make(chan *mcp.ProgressNotificationParams, 3)
			cs := connect(t, m, progress)
			params := &mcp.CallToolParams{Name: "test_tool_with_progress"}
			params.SetProgressToken("tok-1")
			res, err := cs.CallTool(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			if got := textOfResult(t, res.Content); got != "tok-1" {
				t.Errorf("result = %q, want the progress token", got)
			}
			for _, want := range []float64{0, 50, 100} {
				select {
				case p := <-progress:
					if p.Progress != want || p.Total != 100 || p.ProgressToken != "tok-1" {
						t.Errorf("progress = %+v, want %v of 100 for tok-1", p, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no progress notification %v", want)
				}
			}
		})
	}
}

func TestLogging(t *testing.T) {
	logs := make(chan string, 3)
	client := mcp.NewClient(&mcp.Implementation{Name: "logs", Version: "0"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) { logs <- req.Params.Data.(string) },
	})
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: serve(t, modes[0])},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_tool_with_logging"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
		select {
		case got := <-logs:
			if got != want {
				t.Errorf("log message %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no log message %q", want)
		}
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		uri, mime, want string
	}{
		{"test://static-text", "text/plain", "This is the content of the static text resource."},
		{"test://watched-resource", "text/plain", "Watched resource content"},
		{"test://template/7/data", "application/json", `{"id":"7","templateTest":true,"data":"Data for ID: 7"}`},
		{"test://static-binary", "image/png", "\x89PNG*"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			for _, tt := range tests {
				res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: tt.uri})
				if err != nil {
					t.Errorf("read %s: %v", tt.uri, err)
					continue
				}
				c := res.Contents[0]
				got := c.Text + string(c.Blob)
				if prefix, ok := strings.CutSuffix(tt.want, "*"); ok {
					got, tt.want = got[:min(len(got), len(prefix))], prefix
				}
				if c.URI != tt.uri || c.MIMEType != tt.mime || got != tt.want {
					t.Errorf("read %s = %s %s %q, want %s %q", tt.uri, c.URI, c.MIMEType, got, tt.mime, tt.want)
				}
			}
			_, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "test://missing"})
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
				t.Errorf("read of a missing resource: err = %v, want code %d", err, jsonrpc.CodeInvalidParams)
			}
		})
	}
}

func TestPrompts(t *testing.T) {
	tests := []struct {
		name string
		args map[string]string
		want string // text of the last message
	}{
		{"test_simple_prompt", nil, "This is a simple prompt for testing."},
		{"test_prompt_with_arguments", map[string]string{"arg1": "a", "arg2": "b"}, "Prompt with arguments: arg1='a', arg2='b'"},
		{"test_prompt_with_embedded_resource", map[string]string{"resourceUri": "test://static-text"}, "Please process the embedded resource above."},
		{"test_prompt_with_image", nil, "Please analyze the image above."},
		{"test_input_required_result_prompt", nil, "Context: unit tests"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			for _, tt := range tests {
				res, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: tt.name, Arguments: tt.args})
				if err != nil {
					t.Errorf("get %s: %v", tt.name, err)
					continue
				}
				last := res.Messages[len(res.Messages)-1]
				if got := textOfResult(t, []mcp.Content{last.Content}); got != tt.want {
					t.Errorf("get %s: last message %q, want %q", tt.name, got, tt.want)
				}
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		ref  mcp.CompleteReference
		arg  mcp.CompleteParamsArgument
		want []string
	}{
		{mcp.CompleteReference{Type: "ref/prompt", Name: "test_prompt_with_arguments"}, mcp.CompleteParamsArgument{Name: "arg1", Value: "par"}, []string{"paris", "park", "party"}},
		{mcp.CompleteReference{Type: "ref/prompt", Name: "test_prompt_with_arguments"}, mcp.CompleteParamsArgument{Name: "arg2", Value: "g"}, []string{"green"}},
		{mcp.CompleteReference{Type: "ref/resource", URI: templateURI}, mcp.CompleteParamsArgument{Name: "id", Value: "1"}, []string{"1", "123"}},
		{mcp.CompleteReference{Type: "ref/prompt", Name: "test_simple_prompt"}, mcp.CompleteParamsArgument{Name: "x", Value: ""}, []string{}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cs := connect(t, m, nil)
			for _, tt := range tests {
				res, err := cs.Complete(t.Context(), &mcp.CompleteParams{Ref: &tt.ref, Argument: tt.arg})
				if err != nil {
					t.Errorf("complete %v %v: %v", tt.ref, tt.arg, err)
					continue
				}
				if got := res.Completion.Values; !slices.Equal(got, tt.want) {
					t.Errorf("complete %v %v = %v, want %v", tt.ref, tt.arg, got, tt.want)
				}
			}
		})
	}
}

func TestRequestState(t *testing.T) {
	sealed := sealState("tool_a", roundState{Round: 2, Name: "Ada"})
	tests := []struct {
		name, tool, state string
		want              roundState
		ok                bool
	}{
		{"intact", "tool_a", sealed, roundState{Tool: "tool_a", Round: 2, Name: "Ada"}, true},
		{"tampered", "tool_a", sealed + "-TAMPERED", roundState{}, false},
		{"other tool", "tool_b", sealed, roundState{}, false},
		{"not sealed", "tool_a", "round=2;name=Ada", roundState{}, false},
		{"forged payload", "tool_a", "eyJ0b29sIjoidG9vbF9hIiwicm91bmQiOjN9." + strings.SplitN(sealed, ".", 2)[1], roundState{}, false},
	}
	for _, tt := range tests {
		got, err := openState(tt.tool, tt.state)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: openState = %+v, %v; want %+v, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

// TestServerFootprint keeps a server with the toolset installed well under
// the 64 KiB an idle session may cost.
func TestServerFootprint(t *testing.T) {
	const n = 200
	servers := make([]*mcp.Server, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range servers {
		servers[i] = newServer()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perServer := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes per server", perServer)
	if perServer > 32<<10 {
		t.Errorf("a server with the toolset takes %d bytes, want at most 32 KiB", perServer)
	}
	runtime.KeepAlive(servers)
}
