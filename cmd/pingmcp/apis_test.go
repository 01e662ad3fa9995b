package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools/openapi"
	"github.com/pingmcp/pingmcp/tools/toolstest"
)

// The example APIs file of README offers the Todo API's four operations as
// tools, besides --tools' toolsets; a document that cannot be loaded stops
// the node from starting, naming --apis.
func TestAPIsToolsets(t *testing.T) {
	cfg, apiURL := exampleConfig(t)
	all, err := toolsets(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sets := all.Toolsets()
	if len(sets) != 2 || sets[0].Name() != "todo" || sets[1].Name() != "apis" {
		t.Fatalf("toolsets %v", sets)
	}
	var names []string
	for _, tool := range sets[1].(*openapi.Toolset).Tools() {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"todo_createTodo", "todo_deleteTodo", "todo_listTodos", "todo_updateTodo"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}

	cfg.APIs[0].Document = apiURL + "/missing.yaml"
	if _, err := toolsets(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "--apis") || !strings.Contains(err.Error(), "404") {
		t.Errorf("a document that does not load: %v", err)
	}
}

// A tool of --apis named as one of --tools' refuses the start, naming
// both toolsets: go-sdk would keep one of them, silently.
func TestToolNamesAcrossToolsets(t *testing.T) {
	cfg, _ := exampleConfig(t)
	cfg.APIs[0].Tools["listTodos"] = openapi.Override{Name: "get_my_todo_list"}
	_, err := toolsets(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `"get_my_todo_list"`) || !strings.Contains(err.Error(), "todo") || !strings.Contains(err.Error(), "apis") {
		t.Errorf("a tool name in two toolsets: %v", err)
	}
}

// exampleConfig is dev's configuration with README's example APIs file,
// naming a Todo API of the test's (the example names dev's), and its URL.
func exampleConfig(t *testing.T) (*config.Config, string) {
	t.Helper()
	apiURL := toolstest.TodoAPI(t, authtest.NewIssuer(t))
	cfg, err := config.Parse("dev", []string{"--apis", "../../tools/openapi/apis.example.yaml"}, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIs[0].BaseURL, cfg.APIs[0].Document = apiURL, apiURL+todoapi.DocumentPath
	return cfg, apiURL
}
