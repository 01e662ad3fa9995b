package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

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

// A node loads each document of --apis in a process of its own first (this
// executable's check-openapi command): one that takes longer than the time
// given is refused then, its loading killed, and the next loads at once
// (had its loading run on in the node, no other document would load until
// it ended).
func TestAPIsDocumentCheckedByAProcessOfItsOwn(t *testing.T) {
	cfg, _ := exampleConfig(t)
	opts := apisOptions(cfg)
	if opts.Checker == nil {
		t.Fatal("no process checks the documents")
	}
	var chain strings.Builder
	chain.WriteString("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a: {get: {operationId: getA, responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/S0'}}}}}}}\ncomponents:\n  schemas:\n")
	for i := range 1500 {
		fmt.Fprintf(&chain, "    S%d: {$ref: '#/components/schemas/S%d'}\n", i, i+1)
	}
	chain.WriteString("    S1500: {type: string}\n")
	costly := filepath.Join(t.TempDir(), "costly.yaml")
	if err := os.WriteFile(costly, []byte(chain.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	api := cfg.APIs[0]
	api.Document = costly
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := openapi.New(ctx, []openapi.API{api}, opts); err == nil || !strings.Contains(err.Error(), "not loaded and checked within the time given") {
		t.Fatalf("a document costlier than its time: %v", err)
	}
	if _, err := openapi.New(t.Context(), cfg.APIs, opts); err != nil {
		t.Errorf("the next document, right after: %v", err)
	}
}

// The process that checks a document runs the node's own code even once
// the node's executable was replaced at its path (an upgrade in place): a
// copy of this test binary, replaced by a script that fails, still loads a
// document through its checker. (Linux: /proc/self/exe.)
func TestCheckerRunsTheNodesOwnBinary(t *testing.T) {
	if os.Getenv("PINGMCP_TEST_REPLACED") == "1" {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := exampleConfig(t)
		opts := apisOptions(cfg)
		next := self + ".next"
		if err := os.WriteFile(next, []byte("#!/bin/sh\necho 'another build' >&2\nexit 3\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, self); err != nil {
			t.Fatal(err)
		}
		if _, err := openapi.New(t.Context(), cfg.APIs, opts); err != nil {
			t.Fatalf("a document checked once the node's executable was replaced: %v", err)
		}
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/exe is Linux's")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "pingmcp.test")
	if err := os.WriteFile(copied, b, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), copied, "-test.run", "^TestCheckerRunsTheNodesOwnBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "PINGMCP_TEST_REPLACED=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestCheckerRunsTheNodesOwnBinary") {
		t.Fatalf("the replaced binary's run: %v\n%s", err, out)
	}
}
