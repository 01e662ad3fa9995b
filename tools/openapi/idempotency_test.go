package openapi

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tools"
)

const ordersDoc = `
openapi: 3.1.0
info: {title: orders, version: "1"}
paths:
  /orders:
    post:
      operationId: createOrder
      parameters:
        - {name: Idempotency-Key, in: header, required: false, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {item: {type: string}}}
      responses: {"200": {description: ok}}
    get:
      operationId: listOrders
      parameters:
        - {name: Idempotency-Key, in: header, required: false, schema: {type: string}}
      responses: {"200": {description: ok}}
  /notes:
    post:
      operationId: createNote
      responses: {"200": {description: ok}}
`

// A write whose operation declares Idempotency-Key gets a key pingmcp
// derives from the tool call's key (session and JSON-RPC id): the same call
// sent again carries the same key, another call (another id, other
// arguments) another one. None is made outside a session, for a read, for
// an operation that declares none, or over the model's own.
func TestIdempotencyKeyPerCall(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := New(t.Context(), []API{{Name: "shop", BaseURL: api.URL, Document: writeDoc(t, ordersDoc),
		Scopes: []string{"shop"}, Include: Selector{Methods: []string{"GET", "POST"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*operationTool{}
	for _, op := range ts.tools {
		byName[op.def.Name] = op
	}
	sent := func(tool, callKey, args string) string {
		t.Helper()
		ctx := context.Background()
		if callKey != "" {
			ctx = tools.WithCallKey(ctx, callKey)
		}
		req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: tool, Arguments: json.RawMessage(args)}}
		n := len(api.requests())
		if res := byName[tool].call(ctx, &countingCaller{}, req); res.IsError {
			t.Fatalf("%s: %s", tool, text(res))
		}
		reqs := api.requests()
		if len(reqs) != n+1 {
			t.Fatalf("%s: %d requests, want one more than %d", tool, len(reqs), n)
		}
		return reqs[n].Header.Get("Idempotency-Key")
	}
	first := sent("shop_createOrder", "session-1 7", `{"body":{"item":"tea"}}`)
	if first == "" {
		t.Fatal("a write declaring Idempotency-Key was sent without one")
	}
	if again := sent("shop_createOrder", "session-1 7", `{"body":{"item":"tea"}}`); again != first {
		t.Errorf("the same call sent again carried %q, then %q", first, again)
	}
	for _, other := range []struct{ key, args string }{
		{"session-1 8", `{"body":{"item":"tea"}}`},
		{"session-2 7", `{"body":{"item":"tea"}}`},
		{"session-1 7", `{"body":{"item":"coffee"}}`},
	} {
		if k := sent("shop_createOrder", other.key, other.args); k == first || k == "" {
			t.Errorf("call %s %s carried %q (the first call's: %q)", other.key, other.args, k, first)
		}
	}
	if k := sent("shop_createOrder", "", `{"body":{"item":"tea"}}`); k != "" {
		t.Errorf("outside a session a key was made: %q", k)
	}
	if k := sent("shop_createOrder", "session-1 9", `{"body":{"item":"tea"},"Idempotency-Key":"mine"}`); k != "mine" {
		t.Errorf("the model's own key was replaced by %q", k)
	}
	if k := sent("shop_listOrders", "session-1 10", `{}`); k != "" {
		t.Errorf("a read carried a key: %q", k)
	}
	if k := sent("shop_createNote", "session-1 11", `{}`); k != "" {
		t.Errorf("an operation declaring no Idempotency-Key got one: %q", k)
	}
}
