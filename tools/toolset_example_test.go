package tools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tools"
)

// orders is a toolset for what an OpenAPI document cannot describe: one
// tool, order_status, calling the team's own Orders API with a token the
// session's actor obtains for it (RFC 8693 exchange of the caller's token,
// cached, narrowed to the scopes the user holds). The toolset never sees
// the user's own token, and puts no token in its results.
type orders struct {
	apiURL string // also the API's resource: the exchanged token's audience
	client *http.Client
}

func (*orders) Name() string                 { return "orders" }
func (*orders) Configure(*mcp.ServerOptions) {}

// Scopes: the actor refuses order_status with 403 insufficient_scope to a
// token without orders:read, so that the client steps up.
func (*orders) Scopes() map[string][]string {
	return map[string][]string{"order_status": {"orders:read"}}
}

// statusTool is shared by every server: Install only registers it.
var statusTool = &mcp.Tool{
	Name:        "order_status",
	Description: "Tells where one of your orders is.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"integer","minimum":1}},"required":["order"],"additionalProperties":false}`),
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
}

func (o *orders) Install(s *mcp.Server, caller tools.Caller) {
	s.AddTool(statusTool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			Order int `json:"order"`
		}
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.Order < 1 {
			return failure("want an order number"), nil
		}
		if caller == nil {
			return failure("no user to act for"), nil
		}
		d, err := caller.Delegate(ctx, o.apiURL, []string{"orders:read"})
		if err != nil {
			return failure("could not get a token for the Orders API: " + err.Error()), nil
		}
		hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/orders/%d", o.apiURL, in.Order), nil)
		hr.Header.Set("Authorization", "Bearer "+d.Token) // there, and nowhere else
		resp, err := o.client.Do(hr)
		if err != nil {
			return failure("the Orders API could not be reached"), nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusUnauthorized {
			// Revoked before its expiry, say: the next call gets another.
			caller.Refused(ctx, d)
		}
		if resp.StatusCode != http.StatusOK {
			return failure("the Orders API answered " + resp.Status), nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
	})
}

func failure(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// exampleCaller stands in for the session's actor, which is the Caller of
// a real server: it would exchange the request's token at the
// authorization server.
type exampleCaller struct{}

func (exampleCaller) Refused(context.Context, *tools.Delegation) {}
func (exampleCaller) Claims(context.Context) map[string]any      { return map[string]any{"sub": "alice"} }
func (exampleCaller) Delegate(_ context.Context, audience string, scopes []string) (*tools.Delegation, error) {
	return &tools.Delegation{Token: "exchanged-for-" + audience, Scopes: scopes, Expiry: time.Now().Add(time.Minute)}, nil
}

// A custom toolset calls its own API with Caller.Delegate. pingmcp's
// actors install it on each session's server (actors.Config.Toolsets);
// here one server and an in-memory client show a call.
func Example_customToolset() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"order":%q,"status":"shipped"}`, r.URL.Path[len("/orders/"):])
	}))
	defer api.Close()
	var ts tools.Toolset = &orders{apiURL: api.URL, client: &http.Client{Timeout: 10 * time.Second}}

	ctx := context.Background()
	server := mcp.NewServer(&mcp.Implementation{Name: "example"}, nil)
	ts.Install(server, exampleCaller{})
	st, ct := mcp.NewInMemoryTransports()
	ss, _ := server.Connect(ctx, st, nil)
	defer ss.Close()
	cs, _ := mcp.NewClient(&mcp.Implementation{Name: "client"}, nil).Connect(ctx, ct, nil)
	defer cs.Close()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "order_status", Arguments: map[string]any{"order": 42}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	fmt.Println(ts.Scopes()["order_status"])
	// Output:
	// {"order":"42","status":"shipped"}
	// [orders:read]
}
