package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resources. The SDK answers a read of any other URI with -32602 and the URI
// in the error data (sep-2164-resource-not-found).

type resource struct {
	def  *mcp.Resource
	read mcp.ResourceHandler
}

var resources = []resource{
	{&mcp.Resource{URI: "test://static-text", Name: "static-text", Description: "A static text resource", MIMEType: "text/plain"},
		textResource("This is the content of the static text resource.")},
	{&mcp.Resource{URI: "test://static-binary", Name: "static-binary", Description: "A static binary resource (a PNG image)", MIMEType: "image/png"},
		readPNG},
	{&mcp.Resource{URI: "test://watched-resource", Name: "watched-resource", Description: "A text resource clients may subscribe to", MIMEType: "text/plain"},
		textResource("Watched resource content")},
}

func textResource(body string) mcp.ResourceHandler {
	return func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: body}}}, nil
	}
}

func readPNG(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "image/png", Blob: pngPixel}}}, nil
}

const (
	templateURI    = "test://template/{id}/data"
	templatePrefix = "test://template/"
	templateSuffix = "/data"
)

var templateResource = &mcp.ResourceTemplate{
	URITemplate: templateURI,
	Name:        "template",
	Description: "A JSON document for any {id}",
	MIMEType:    "application/json",
}

// readTemplate is called only for URIs that match templateURI.
func readTemplate(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id := strings.TrimSuffix(strings.TrimPrefix(uri, templatePrefix), templateSuffix)
	body, err := json.Marshal(struct {
		ID           string `json:"id"`
		TemplateTest bool   `json:"templateTest"`
		Data         string `json:"data"`
	}{id, true, "Data for ID: " + id})
	if err != nil {
		return nil, fmt.Errorf("encode template resource: %w", err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(body)}}}, nil
}

// Prompts.

type prompt struct {
	def *mcp.Prompt
	get mcp.PromptHandler
}

var prompts = []prompt{
	{&mcp.Prompt{Name: "test_simple_prompt", Title: "Simple Test Prompt", Description: "A prompt without arguments"},
		simplePrompt},
	{&mcp.Prompt{Name: "test_prompt_with_arguments", Title: "Prompt With Arguments", Description: "A prompt with two required arguments",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		}},
		promptWithArguments},
	{&mcp.Prompt{Name: "test_prompt_with_embedded_resource", Title: "Prompt With Embedded Resource", Description: "A prompt that embeds a resource",
		Arguments: []*mcp.PromptArgument{{Name: "resourceUri", Description: "URI of the resource to embed", Required: true}}},
		promptWithResource},
	{&mcp.Prompt{Name: "test_prompt_with_image", Title: "Prompt With Image", Description: "A prompt that includes an image"},
		promptWithImage},
	{&mcp.Prompt{Name: "test_input_required_result_prompt", Title: "Prompt Needing Input", Description: "Asks for context through an input request (SEP-2322)"},
		askContext},
}

// transientPrompt is added again by test_trigger_prompt_change.
var transientPrompt = &mcp.Prompt{Name: "test_transient_prompt", Description: "Added by test_trigger_prompt_change"}

func emptyPrompt(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{}}, nil
}

func userSays(c mcp.Content) *mcp.PromptMessage { return &mcp.PromptMessage{Role: "user", Content: c} }

func simplePrompt(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return &mcp.GetPromptResult{
		Description: "A simple test prompt",
		Messages:    []*mcp.PromptMessage{userSays(&mcp.TextContent{Text: "This is a simple prompt for testing."})},
	}, nil
}

func promptWithArguments(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	args := req.Params.Arguments
	return &mcp.GetPromptResult{
		Description: "A prompt with arguments",
		Messages: []*mcp.PromptMessage{userSays(&mcp.TextContent{
			Text: fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", args["arg1"], args["arg2"]),
		})},
	}, nil
}

func promptWithResource(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	uri := req.Params.Arguments["resourceUri"]
	if uri == "" {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: `missing argument "resourceUri"`}
	}
	return &mcp.GetPromptResult{
		Description: "A prompt with an embedded resource",
		Messages: []*mcp.PromptMessage{
			userSays(&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: uri, MIMEType: "text/plain", Text: "Embedded resource content for testing."}}),
			userSays(&mcp.TextContent{Text: "Please process the embedded resource above."}),
		},
	}, nil
}

func promptWithImage(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return &mcp.GetPromptResult{
		Description: "A prompt with an image",
		Messages: []*mcp.PromptMessage{
			userSays(&mcp.ImageContent{Data: pngPixel, MIMEType: "image/png"}),
			userSays(&mcp.TextContent{Text: "Please analyze the image above."}),
		},
	}, nil
}
