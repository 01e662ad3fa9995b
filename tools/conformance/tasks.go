package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/tasks"
)

// The fixtures of the suite's tasks-* scenarios (the tasks extension,
// SEP-2663; see package tasks). greet is synchronous; the others are
// task-capable: a client that negotiated the extension gets a task.

var (
	greetArgs   = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`)
	computeArgs = json.RawMessage(`{"type":"object","properties":{"seconds":{"type":"number","minimum":0,"maximum":600},"label":{"type":"string"}}}`)
	deleteArgs  = json.RawMessage(`{"type":"object","properties":{"filename":{"type":"string"}},"required":["filename"]}`)
	deleteForm  = json.RawMessage(`{"type":"object","properties":{"confirm":{"type":"boolean"}},"required":["confirm"]}`)
	inputForm   = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"},"confirm":{"type":"boolean"}}}`)
)

var greetTool = &mcp.Tool{Name: "greet", Description: "Says hello to name (synchronous, never a task)", InputSchema: greetArgs}

// installTasks adds the fixtures to s.
func installTasks(s *mcp.Server) {
	s.AddTool(greetTool, greet)
	tasks.Add(s, &mcp.Tool{Name: "slow_compute", Description: "Works for seconds seconds (a task), then answers; cancellable; resumed from its start if its node dies", InputSchema: computeArgs}, tasks.Optional, slowCompute, tasks.Resumable())
	tasks.Add(s, &mcp.Tool{Name: "failing_job", Description: "A task that ends in a tool error after about a second; task support required", InputSchema: noArgs}, tasks.Required, failingJob)
	tasks.Add(s, &mcp.Tool{Name: "protocol_error_job", Description: "A task whose handler panics: a protocol error, the task fails", InputSchema: noArgs}, tasks.Optional, protocolErrorJob)
	tasks.Add(s, &mcp.Tool{Name: "confirm_delete", Description: "A task that asks the user to confirm (elicitation) before deleting filename", InputSchema: deleteArgs}, tasks.Optional, confirmDelete)
	tasks.Add(s, &mcp.Tool{Name: "multi_input", Description: "A task that asks two questions at once", InputSchema: noArgs}, tasks.Optional, multiInput)
	tasks.AddDeferred(s, &mcp.Tool{Name: "test_tool_with_task", Description: "Asks for a name in an input_required round, then becomes a task that greets it; task support required", InputSchema: noArgs}, tasks.Required, toolWithTask)
}

func greet(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &args); err != nil || args.Name == "" {
		return toolError(errors.New("greet needs a name")), nil
	}
	return text(fmt.Sprintf("Hello, %s!", args.Name)), nil
}

func slowCompute(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		Seconds float64 `json:"seconds"`
		Label   string  `json:"label"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &args); err != nil || args.Seconds < 0 || args.Seconds > 600 {
		return toolError(errors.New("seconds must be a number from 0 to 600")), nil
	}
	if err := sleep(ctx, time.Duration(args.Seconds*float64(time.Second))); err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("computed %q in %gs", args.Label, args.Seconds)), nil
}

// sleep waits d, or until ctx ends (a cancelled task).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func failingJob(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	return toolError(errors.New("failing_job failed, as it always does")), nil
}

func protocolErrorJob(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	panic("protocol_error_job fails with a protocol error, as it always does")
}

func confirmDelete(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &args); err != nil || args.Filename == "" {
		return toolError(errors.New("confirm_delete needs a filename")), nil
	}
	if r, ok := req.Params.InputResponses["confirm"].(*mcp.ElicitResult); ok && r != nil {
		if ok, _ := r.Content["confirm"].(bool); r.Action == "accept" && ok {
			return text("Deleted " + args.Filename), nil
		}
		return text("Kept " + args.Filename + ": the user did not confirm"), nil
	}
	return needInput(mcp.InputRequestMap{
		"confirm": &mcp.ElicitParams{Message: "Delete " + args.Filename + "?", RequestedSchema: deleteForm},
	}, ""), nil
}

func multiInput(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	in := req.Params.InputResponses
	first, ok1 := accepted(in, "first")
	second, ok2 := accepted(in, "second")
	if ok1 && ok2 {
		return text(fmt.Sprintf("Both answered: %v and %v", first["name"], second["name"])), nil
	}
	missing := mcp.InputRequestMap{}
	if !ok1 {
		missing["first"] = &mcp.ElicitParams{Message: "First question: your name?", RequestedSchema: inputForm}
	}
	if !ok2 {
		missing["second"] = &mcp.ElicitParams{Message: "Second question: confirm?", RequestedSchema: inputForm}
	}
	return needInput(missing, ""), nil
}

func toolWithTask(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	name, ok := acceptedString(req.Params.InputResponses, "user_name", "name")
	if !ok {
		return needInput(mcp.InputRequestMap{"user_name": askForName()}, ""), nil
	}
	if err := tasks.Start(ctx); err != nil {
		return nil, err
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	return text(fmt.Sprintf("Hello, %s! (asked before the task began)", name)), nil
}
