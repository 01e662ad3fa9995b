//lint:file-ignore SA1019 the suite exercises sampling and logging, deprecated by SEP-2577 but still in the 2025-11-25 protocol.

package conformance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A tool pairs a shared definition with its handler. The toolset uses the
// low-level Server.AddTool so that definitions and their JSON schemas are
// built once per process, not reflected and resolved again for each server;
// handlers decode their few arguments themselves.
type tool struct {
	def    *mcp.Tool
	handle mcp.ToolHandler
}

// noArgs is the input schema of a tool that takes no arguments.
var noArgs = json.RawMessage(`{"type":"object"}`)

var catalogue = []tool{
	// Content types (tools-call-*).
	{&mcp.Tool{Name: "test_simple_text", Description: "Returns one text content block", InputSchema: noArgs}, simpleText},
	{&mcp.Tool{Name: "test_image_content", Description: "Returns one image content block (a 1x1 PNG)", InputSchema: noArgs}, imageContent},
	{&mcp.Tool{Name: "test_audio_content", Description: "Returns one audio content block (a short WAV)", InputSchema: noArgs}, audioContent},
	{&mcp.Tool{Name: "test_embedded_resource", Description: "Returns one embedded text resource", InputSchema: noArgs}, embeddedResource},
	{&mcp.Tool{Name: "test_multiple_content_types", Description: "Returns text, image and embedded resource content", InputSchema: noArgs}, mixedContent},
	{&mcp.Tool{Name: "test_error_handling", Description: "Always fails with a tool error (isError)", InputSchema: noArgs}, failing},
	{&mcp.Tool{Name: "json_schema_2020_12_tool", Description: "Takes an input schema using the JSON Schema 2020-12 vocabulary (SEP-1613, SEP-2106)", InputSchema: schema202012}, echoArguments},
	{&mcp.Tool{Name: "test_x_mcp_header", Description: "Mirrors its region argument into the Mcp-Param-Region header (SEP-2243)", InputSchema: headerArgs}, headerArgument},

	// Notifications sent while a call runs.
	{&mcp.Tool{Name: "test_tool_with_logging", Description: "Sends three info log messages while it runs", InputSchema: noArgs}, withLogging},
	{&mcp.Tool{Name: "test_tool_with_progress", Description: "Reports progress 0, 50 and 100 of 100 to the caller's progress token", InputSchema: noArgs}, withProgress},
	{&mcp.Tool{Name: "test_reconnection", Description: "Closes its SSE stream mid-call; the result arrives after the client resumes the stream (SEP-1699)", InputSchema: noArgs}, reconnection},

	// Requests to the client on a stateful (2025-11-25) session.
	{&mcp.Tool{Name: "test_sampling", Description: "Asks the client's LLM to complete a prompt (sampling/createMessage)", InputSchema: promptArgs}, sampling},
	{&mcp.Tool{Name: "test_elicitation", Description: "Asks the user for a username and email (elicitation/create)", InputSchema: messageArgs}, elicitation},
	{&mcp.Tool{Name: "test_elicitation_sep1034_defaults", Description: "Elicits primitive fields that carry default values (SEP-1034)", InputSchema: noArgs}, elicitWith("Test defaults for primitives", defaultsForm)},
	{&mcp.Tool{Name: "test_elicitation_sep1330_enums", Description: "Elicits every enum form: untitled, titled, legacy enumNames, multi-select (SEP-1330)", InputSchema: noArgs}, elicitWith("Test enum schemas", enumsForm)},

	// Diagnostics of the stateless protocol (SEP-2575).
	{&mcp.Tool{Name: "test_missing_capability", Description: "Runs only if the client declared sampling; otherwise fails with -32021", InputSchema: noArgs}, needsSampling},
	{&mcp.Tool{Name: "test_streaming_elicitation", Description: "Streams progress then its result, never a request to the client, on the response stream", InputSchema: noArgs}, streamsNotifications},
	{&mcp.Tool{Name: "test_logging_tool", Description: "Logs one message, dropped unless the request set a log level", InputSchema: noArgs}, logsOnce},

	// Multi round-trip input requests (SEP-2322); see inputs.go.
	{&mcp.Tool{Name: "test_input_required_result_elicitation", Description: "Asks for the caller's name through an input request", InputSchema: noArgs}, askName},
	{&mcp.Tool{Name: "test_input_required_result_sampling", Description: "Asks for an LLM completion through an input request", InputSchema: noArgs}, askCompletion},
	{&mcp.Tool{Name: "test_input_required_result_list_roots", Description: "Asks for the client's roots through an input request", InputSchema: noArgs}, askRoots},
	{&mcp.Tool{Name: "test_input_required_result_request_state", Description: "Round-trips a signed requestState with a confirmation", InputSchema: noArgs}, confirmWithState},
	{&mcp.Tool{Name: "test_input_required_result_multiple_inputs", Description: "Asks for elicitation, sampling and roots in one round", InputSchema: noArgs}, askAll},
	{&mcp.Tool{Name: "test_input_required_result_multi_round", Description: "Asks for a name, then a colour, carrying progress in requestState", InputSchema: noArgs}, askTwice},
	{&mcp.Tool{Name: "test_input_required_result_tampered_state", Description: "Rejects a retry whose requestState fails verification", InputSchema: noArgs}, confirmWithState},
	{&mcp.Tool{Name: "test_input_required_result_capabilities", Description: "Asks only for the input kinds the client declared", InputSchema: noArgs}, askDeclared},
}

// Tools that change the server's lists, to test list_changed notifications on
// subscriptions/listen streams (SEP-2575). Install binds their handlers.
var (
	triggerToolChange   = &mcp.Tool{Name: "test_trigger_tool_change", Description: "Re-adds a tool, so listeners get notifications/tools/list_changed", InputSchema: noArgs}
	triggerPromptChange = &mcp.Tool{Name: "test_trigger_prompt_change", Description: "Re-adds a prompt, so listeners get notifications/prompts/list_changed", InputSchema: noArgs}
	transientTool       = &mcp.Tool{Name: "test_transient_tool", Description: "Added by test_trigger_tool_change; does nothing", InputSchema: noArgs}
)

func noop(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{}}, nil
}

// Fixed binary content, from the suite's reference servers.
var (
	pngPixel   = mustDecode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==") // 1x1 red PNG
	wavSilence = mustDecode("UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=")                                     // silent WAV
)

// mustDecode decodes a base64 literal of this file; like regexp.MustCompile,
// it fails only on a programming error, at package initialisation.
func mustDecode(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("conformance: bad base64 literal: %v", err))
	}
	return b
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// toolError reports a failure the model should see: a result with isError,
// not a JSON-RPC error.
func toolError(err error) *mcp.CallToolResult {
	var res mcp.CallToolResult
	res.SetError(err)
	return &res
}

// decodeArguments unmarshals the call's arguments into v, leaving v as it is
// when there are none.
func decodeArguments(req *mcp.CallToolRequest, v any) error {
	if len(req.Params.Arguments) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.Params.Arguments, v); err != nil {
		return fmt.Errorf("invalid arguments: %w", err)
	}
	return nil
}

func simpleText(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return text("This is a simple text response for testing."), nil
}

func imageContent(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: pngPixel, MIMEType: "image/png"}}}, nil
}

func audioContent(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: wavSilence, MIMEType: "audio/wav"}}}, nil
}

func embedded(uri string) *mcp.EmbeddedResource {
	return &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: uri, MIMEType: "text/plain", Text: "This is an embedded resource"}}
}

func embeddedResource(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{embedded("test://embedded-resource")}}, nil
}

func mixedContent(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: "This is text content"},
		&mcp.ImageContent{Data: pngPixel, MIMEType: "image/png"},
		embedded("test://embedded-in-multiple"),
	}}, nil
}

func failing(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return toolError(errors.New("this tool intentionally returns an error for testing")), nil
}

// schema202012 is the suite's fixture for json-schema-2020-12: the keywords
// must reach tools/list untouched.
var schema202012 = json.RawMessage(`{
	"$schema": "https://json-schema.org/draft/2020-12/schema",
	"type": "object",
	"$defs": {
		"address": {
			"$anchor": "addressDef",
			"type": "object",
			"properties": {"street": {"type": "string"}, "city": {"type": "string"}}
		}
	},
	"properties": {
		"name": {"type": "string"},
		"address": {"$ref": "#/$defs/address"},
		"contactMethod": {"type": "string", "enum": ["phone", "email"]},
		"phone": {"type": "string"},
		"email": {"type": "string"}
	},
	"allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
	"if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
	"then": {"required": ["phone"]},
	"else": {"required": ["email"]},
	"additionalProperties": false
}`)

func echoArguments(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return text(fmt.Sprintf("JSON Schema 2020-12 tool called with: %s", req.Params.Arguments)), nil
}

var headerArgs = json.RawMessage(`{
	"type": "object",
	"properties": {
		"region": {"type": "string", "description": "mirrored into Mcp-Param-Region", "x-mcp-header": "Region"},
		"level": {"type": "integer", "description": "not mirrored"}
	}
}`)

func headerArgument(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Region string `json:"region"`
	}
	if err := decodeArguments(req, &in); err != nil {
		return toolError(err), nil
	}
	return text("region=" + in.Region), nil
}

func withLogging(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	for _, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
		if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "conformance", Data: msg}); err != nil {
			return nil, fmt.Errorf("send log message: %w", err)
		}
	}
	return text("Tool with logging executed successfully"), nil
}

func withProgress(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	token := req.Params.GetProgressToken()
	if token == nil {
		return text("no progress token"), nil
	}
	for _, done := range []float64{0, 50, 100} {
		p := &mcp.ProgressNotificationParams{ProgressToken: token, Progress: done, Total: 100, Message: fmt.Sprintf("%.0f of 100 done", done)}
		if err := req.Session.NotifyProgress(ctx, p); err != nil {
			return nil, fmt.Errorf("notify progress: %w", err)
		}
	}
	return text(fmt.Sprint(token)), nil
}

// reconnection closes the POST's SSE stream before answering. With an
// EventStore on the handler the answer is stored, and the client gets it by
// resuming the stream (GET with Last-Event-ID); without one the SDK offers no
// CloseSSEStream and the answer goes out on the open stream.
func reconnection(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if req.Extra != nil && req.Extra.CloseSSEStream != nil {
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
	}
	return text("Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure."), nil
}

var promptArgs = json.RawMessage(`{
	"type": "object",
	"properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
	"required": ["prompt"]
}`)

func sampling(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Prompt string `json:"prompt"`
	}
	if err := decodeArguments(req, &in); err != nil {
		return toolError(err), nil
	}
	if in.Prompt == "" {
		return toolError(errors.New(`missing argument "prompt"`)), nil
	}
	res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Prompt}}},
		MaxTokens: 100,
	})
	if err != nil {
		return toolError(fmt.Errorf("sampling: %w", err)), nil
	}
	return text("LLM response: " + textOf(res.Content)), nil
}

func textOf(c mcp.Content) string {
	if t, ok := c.(*mcp.TextContent); ok {
		return t.Text
	}
	return "(non-text response)"
}

var messageArgs = json.RawMessage(`{
	"type": "object",
	"properties": {"message": {"type": "string", "description": "The message to show the user"}},
	"required": ["message"]
}`)

// Elicitation forms. The SDK validates the client's answer against them.
var (
	userForm = json.RawMessage(`{
		"type": "object",
		"properties": {
			"username": {"type": "string", "description": "Your preferred username"},
			"email": {"type": "string", "description": "Your email address"}
		},
		"required": ["username", "email"]
	}`)
	defaultsForm = json.RawMessage(`{
		"type": "object",
		"properties": {
			"name": {"type": "string", "description": "User name", "default": "John Doe"},
			"age": {"type": "integer", "description": "User age", "default": 30},
			"score": {"type": "number", "description": "User score", "default": 95.5},
			"status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
			"verified": {"type": "boolean", "description": "Verification status", "default": true}
		}
	}`)
	enumsForm = json.RawMessage(`{
		"type": "object",
		"properties": {
			"untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
			"titledSingle": {"type": "string", "oneOf": [
				{"const": "value1", "title": "First Option"},
				{"const": "value2", "title": "Second Option"},
				{"const": "value3", "title": "Third Option"}
			]},
			"legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
			"untitledMulti": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
			"titledMulti": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"anyOf": [
				{"const": "value1", "title": "First Option"},
				{"const": "value2", "title": "Second Option"},
				{"const": "value3", "title": "Third Option"}
			]}}
		}
	}`)
)

func elicitation(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Message string `json:"message"`
	}
	if err := decodeArguments(req, &in); err != nil {
		return toolError(err), nil
	}
	if in.Message == "" {
		return toolError(errors.New(`missing argument "message"`)), nil
	}
	return elicit(ctx, req, in.Message, userForm), nil
}

func elicitWith(message string, form json.RawMessage) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return elicit(ctx, req, message, form), nil
	}
}

func elicit(ctx context.Context, req *mcp.CallToolRequest, message string, form json.RawMessage) *mcp.CallToolResult {
	res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: message, RequestedSchema: form})
	if err != nil {
		return toolError(fmt.Errorf("elicitation: %w", err))
	}
	content, err := json.Marshal(res.Content)
	if err != nil {
		return toolError(fmt.Errorf("encode elicitation content: %w", err))
	}
	return text(fmt.Sprintf("User response: action=%s, content=%s", res.Action, content))
}

// needsSampling answers -32021 with the missing capability, as SEP-2575
// requires of a request that needs a capability the client did not declare.
func needsSampling(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if caps := req.ClientCapabilities(); caps != nil && caps.Sampling != nil {
		return text("Client declared the sampling capability; tool executed."), nil
	}
	data, err := json.Marshal(mcp.MissingRequiredClientCapabilityData{
		RequiredCapabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}},
	})
	if err != nil {
		return nil, fmt.Errorf("encode required capabilities: %w", err)
	}
	return nil, &jsonrpc.Error{
		Code:    mcp.CodeMissingRequiredClientCapabilities,
		Message: "this tool requires the sampling client capability",
		Data:    data,
	}
}

// streamsNotifications sends only notifications before its result: on a
// 2026-07-28 response stream the server must never send its own requests.
func streamsNotifications(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if token := req.Params.GetProgressToken(); token != nil {
		p := &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 1, Total: 1, Message: "streamed"}
		if err := req.Session.NotifyProgress(ctx, p); err != nil {
			return nil, fmt.Errorf("notify progress: %w", err)
		}
	}
	return text("stream observed: notifications and the result only, no requests"), nil
}

// logsOnce relies on the SDK to drop the message when the request carries no
// log level (SEP-2575) or the session's level is higher.
func logsOnce(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "conformance", Data: "test_logging_tool executed"}); err != nil {
		return nil, fmt.Errorf("send log message: %w", err)
	}
	return text("Log attempted; delivered only at the requested log level."), nil
}
