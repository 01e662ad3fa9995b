//lint:file-ignore SA1019 the suite exercises sampling, roots and logging, deprecated by SEP-2577 but still in the 2025-11-25 protocol.

package conformance

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Multi round-trip requests (SEP-2322). A handler that needs input from the
// client returns InputRequests; a 2026-07-28 client answers them and calls
// again with InputResponses and the echoed RequestState, while for an older
// session the SDK sends the requests itself and calls the handler once more.
// Handlers therefore look at the responses first and ask only for what is
// still missing.

var (
	nameForm    = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`)
	colourForm  = json.RawMessage(`{"type":"object","properties":{"color":{"type":"string"}},"required":["color"]}`)
	confirmForm = json.RawMessage(`{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}`)
	contextForm = json.RawMessage(`{"type":"object","properties":{"context":{"type":"string"}},"required":["context"]}`)
)

func askForName() *mcp.ElicitParams {
	return &mcp.ElicitParams{Message: "What is your name?", RequestedSchema: nameForm}
}

func askForCompletion(prompt string) *mcp.CreateMessageParams {
	return &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: prompt}}},
		MaxTokens: 100,
	}
}

func needInput(requests mcp.InputRequestMap, state string) *mcp.CallToolResult {
	return &mcp.CallToolResult{InputRequests: requests, RequestState: state}
}

// accepted returns the content of the elicitation answered under key, if the
// user accepted it.
func accepted(responses mcp.InputResponseMap, key string) (map[string]any, bool) {
	r, ok := responses[key].(*mcp.ElicitResult)
	if !ok || r == nil || r.Action != "accept" {
		return nil, false
	}
	return r.Content, true
}

// acceptedString returns the non-empty string field of an accepted elicitation.
func acceptedString(responses mcp.InputResponseMap, key, field string) (string, bool) {
	content, _ := accepted(responses, key)
	s, ok := content[field].(string)
	return s, ok && s != ""
}

// sampled returns the text of the completion answered under key. Depending on
// the path it came by, the SDK decodes it as either result type.
func sampled(responses mcp.InputResponseMap, key string) (string, bool) {
	switch r := responses[key].(type) {
	case *mcp.CreateMessageResult:
		if r != nil {
			return textOf(r.Content), true
		}
	case *mcp.CreateMessageWithToolsResult:
		if r != nil && len(r.Content) > 0 {
			return textOf(r.Content[0]), true
		}
	}
	return "", false
}

func roots(responses mcp.InputResponseMap, key string) (*mcp.ListRootsResult, bool) {
	r, ok := responses[key].(*mcp.ListRootsResult)
	return r, ok && r != nil
}

func askName(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if name, ok := acceptedString(req.Params.InputResponses, "user_name", "name"); ok {
		return text(fmt.Sprintf("Hello, %s!", name)), nil
	}
	return needInput(mcp.InputRequestMap{"user_name": askForName()}, ""), nil
}

func askCompletion(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if answer, ok := sampled(req.Params.InputResponses, "capital_question"); ok {
		return text("Sampling response: " + answer), nil
	}
	return needInput(mcp.InputRequestMap{"capital_question": askForCompletion("What is the capital of France?")}, ""), nil
}

func askRoots(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if r, ok := roots(req.Params.InputResponses, "client_roots"); ok {
		uris := make([]string, len(r.Roots))
		for i, root := range r.Roots {
			uris[i] = root.URI
		}
		return text(fmt.Sprintf("Client exposed %d root(s): %s", len(r.Roots), strings.Join(uris, ", "))), nil
	}
	return needInput(mcp.InputRequestMap{"client_roots": &mcp.ListRootsParams{}}, ""), nil
}

// askAll asks for three kinds of input in one round, and for whatever is
// still missing in the next.
func askAll(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if s := req.Params.RequestState; s != "" {
		if _, err := openState(req.Params.Name, s); err != nil {
			return nil, invalidState(err)
		}
	}
	in := req.Params.InputResponses
	name, haveName := acceptedString(in, "user_name", "name")
	greeting, haveGreeting := sampled(in, "greeting")
	r, haveRoots := roots(in, "client_roots")
	if haveName && haveGreeting && haveRoots {
		return text(fmt.Sprintf("%s %s: %d root(s) visible", greeting, name, len(r.Roots))), nil
	}
	missing := mcp.InputRequestMap{}
	if !haveName {
		missing["user_name"] = askForName()
	}
	if !haveGreeting {
		missing["greeting"] = askForCompletion("Generate a greeting")
	}
	if !haveRoots {
		missing["client_roots"] = &mcp.ListRootsParams{}
	}
	return needInput(missing, sealState(req.Params.Name, roundState{Round: 1})), nil
}

// askTwice asks for a name, then for a colour. The server keeps nothing
// between rounds: the round and the name travel in the signed requestState.
func askTwice(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	tool, in := req.Params.Name, req.Params.InputResponses
	var st roundState // round 0: nothing asked yet
	if s := req.Params.RequestState; s != "" {
		var err error
		if st, err = openState(tool, s); err != nil {
			return nil, invalidState(err)
		}
	}
	stepOne := func() *mcp.CallToolResult {
		return needInput(mcp.InputRequestMap{
			"step1": &mcp.ElicitParams{Message: "Step 1: What is your name?", RequestedSchema: nameForm},
		}, sealState(tool, roundState{Round: 1}))
	}
	stepTwo := func(name string) *mcp.CallToolResult {
		return needInput(mcp.InputRequestMap{
			"step2": &mcp.ElicitParams{Message: "Step 2: What is your favorite color?", RequestedSchema: colourForm},
		}, sealState(tool, roundState{Round: 2, Name: name}))
	}
	switch st.Round {
	case 0:
		return stepOne(), nil
	case 1:
		name, ok := acceptedString(in, "step1", "name")
		if !ok {
			return stepOne(), nil
		}
		return stepTwo(name), nil
	default:
		colour, ok := acceptedString(in, "step2", "color")
		if !ok {
			return stepTwo(st.Name), nil
		}
		return text(fmt.Sprintf("Multi-round complete: %s likes %s", st.Name, colour)), nil
	}
}

// confirmWithState asks for a confirmation and accepts it only together with
// the requestState it issued; any other state is rejected with -32602.
func confirmWithState(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if s := req.Params.RequestState; s != "" {
		if _, err := openState(req.Params.Name, s); err != nil {
			return nil, invalidState(err)
		}
		if _, ok := accepted(req.Params.InputResponses, "confirm"); ok {
			return text("state-ok: requestState verified and confirmation accepted"), nil
		}
	}
	return needInput(mcp.InputRequestMap{
		"confirm": &mcp.ElicitParams{Message: "Please confirm", RequestedSchema: confirmForm},
	}, sealState(req.Params.Name, roundState{})), nil
}

// askDeclared asks only for the input kinds the client's capabilities cover.
func askDeclared(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if len(req.Params.InputResponses) > 0 {
		return text("Capability-aware input requests fulfilled"), nil
	}
	caps := req.ClientCapabilities()
	if caps == nil {
		caps = &mcp.ClientCapabilities{}
	}
	asks := mcp.InputRequestMap{}
	if caps.Elicitation != nil {
		asks["user_name"] = askForName()
	}
	if caps.Sampling != nil {
		asks["greeting"] = askForCompletion("Generate a short greeting")
	}
	if caps.RootsV2 != nil || caps.Roots.ListChanged {
		asks["client_roots"] = &mcp.ListRootsParams{}
	}
	if len(asks) == 0 {
		return text("No declared client capability supports an input request"), nil
	}
	return needInput(asks, ""), nil
}

// askContext is the prompts/get counterpart of askName: input requests are
// not limited to tools.
func askContext(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	if c, ok := acceptedString(req.Params.InputResponses, "user_context", "context"); ok {
		return &mcp.GetPromptResult{
			Description: "A prompt with elicited context",
			Messages:    []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "Context: " + c}}},
		}, nil
	}
	return &mcp.GetPromptResult{InputRequests: mcp.InputRequestMap{
		"user_context": &mcp.ElicitParams{Message: "Please provide context for the prompt", RequestedSchema: contextForm},
	}}, nil
}

// roundState is what a multi-round tool carries from one round to the next.
type roundState struct {
	Tool  string `json:"tool"`
	Round int    `json:"round"`
	Name  string `json:"name,omitempty"`
}

// stateKey signs requestState. It lives as long as the process: a retry
// whose state was issued by another process (say, after the principal's actor
// moved to another node) is rejected, and the client starts the call again.
var stateKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails since Go 1.24
	return k
}()

var errBadState = errors.New("requestState was not issued by this server for this tool")

// sealState encodes st for tool as payload.mac, both base64url.
func sealState(tool string, st roundState) string {
	st.Tool = tool
	payload, _ := json.Marshal(st) // a struct of strings and an int always encodes
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(stateMAC(payload))
}

func openState(tool, s string) (roundState, error) {
	p, m, ok := strings.Cut(s, ".")
	if !ok {
		return roundState{}, errBadState
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, stateMAC(payload)) {
		return roundState{}, errBadState
	}
	var st roundState
	if err := json.Unmarshal(payload, &st); err != nil || st.Tool != tool {
		return roundState{}, errBadState
	}
	return st, nil
}

func stateMAC(payload []byte) []byte {
	h := hmac.New(sha256.New, stateKey)
	h.Write(payload)
	return h.Sum(nil)
}

func invalidState(err error) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid requestState: " + err.Error()}
}
