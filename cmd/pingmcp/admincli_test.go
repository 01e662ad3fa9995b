package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// adminFor serves an admin API of d (its static token, no audit) for the
// test, and returns the environment the CLI finds it by.
func adminFor(t *testing.T, d *state.Stores) map[string]string {
	t.Helper()
	const token = "static-admin-token-0123456789"
	h, err := admin.Handler(admin.Options{Token: token, Stores: d, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return map[string]string{"PINGMCP_ADMIN_URL": srv.URL, "PINGMCP_ADMIN_TOKEN": token}
}

// pingmcp tasks ls | show | cancel, against an admin API: the tasks with
// their state, filtered; one task; a cancel, then the cancel of a task that
// ended (exit 1, the API's reason). Never a task's arguments.
func TestTasksCLI(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	env := adminFor(t, d)
	now := time.Now()
	for _, tk := range []*taskstore.Task{
		{ID: "t-run", Owner: "own-a", Subject: "alice", ClientID: "client-a", Status: "working", StatusMessage: "imported 3 of 10",
			Runner: "127.0.0.1:7001/act/round", LeaseUntil: now.Add(time.Minute)},
		{ID: "t-done", Owner: "own-b", Subject: "bob", ClientID: "client-b", Status: "completed"},
	} {
		tk.CreatedAt, tk.UpdatedAt, tk.TTL = now, now, time.Hour
		tk.Request = json.RawMessage(`{"name":"import_todos","arguments":{"note":"secret-argument-4711"}}`)
		if err := d.Tasks.Create(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := adminCLI(context.Background(), args[0], args[1:], func(k string) string { return env[k] }, &out, &errOut)
		if strings.Contains(out.String()+errOut.String(), "secret-argument-4711") {
			t.Errorf("%v prints a task's arguments", args)
		}
		return out.String(), errOut.String(), code
	}

	out, errOut, code := cli("tasks", "ls")
	if code != 0 || !strings.HasPrefix(out, "TASK (OWNER/ID)") || !strings.Contains(out, "own-a/t-run") || !strings.Contains(out, "own-b/t-done") ||
		!strings.Contains(out, "imported 3 of 10") || !strings.Contains(out, "127.0.0.1:7001") || !strings.Contains(out, "import_todos") {
		t.Errorf("tasks ls: %d\n%s%s", code, out, errOut)
	}
	out, _, code = cli("tasks", "ls", "--user", "bob", "-o", "json")
	var listed struct{ Tasks []admin.TaskInfo }
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Tasks) != 1 || listed.Tasks[0].ID != "t-done" {
		t.Errorf("tasks ls --user bob -o json: %d %s", code, out)
	}
	out, _, code = cli("tasks", "ls", "--status", "working")
	if code != 0 || !strings.Contains(out, "t-run") || strings.Contains(out, "t-done") {
		t.Errorf("tasks ls --status working: %d\n%s", code, out)
	}
	if _, errOut, code := cli("tasks", "ls", "--status", "running"); code != 1 || !strings.Contains(errOut, "status must be one of") {
		t.Errorf("tasks ls --status running: %d %s", code, errOut)
	}
	out, _, code = cli("tasks", "show", "own-a/t-run")
	for _, want := range []string{"user:", "alice", "tool:", "import_todos", "status:", "working", "node:", "127.0.0.1:7001", "lease until:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("tasks show: %d, lacks %q\n%s", code, want, out)
		}
	}
	if _, errOut, code := cli("tasks", "show", "t-run"); code != 2 || !strings.Contains(errOut, "OWNER/ID") {
		t.Errorf("tasks show without an owner: %d %s", code, errOut)
	}
	if _, errOut, code := cli("tasks", "show", "own-a/nope"); code != 1 || !strings.Contains(errOut, "no such task") || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("tasks show of an unknown task: %d %s", code, errOut)
	}
	if out, errOut, code := cli("tasks", "cancel", "own-a/t-run"); code != 0 || !strings.Contains(out, "task own-a/t-run cancelled") {
		t.Errorf("tasks cancel: %d %s%s", code, out, errOut)
	}
	if got, _ := d.Tasks.Get(context.Background(), "own-a", "t-run"); got.Status != "cancelled" || got.StatusMessage != "cancelled by an operator" {
		t.Errorf("the task after tasks cancel: %+v", got)
	}
	if _, errOut, code := cli("tasks", "cancel", "own-b/t-done"); code != 1 || !strings.Contains(errOut, "already ended (completed)") || !strings.Contains(errOut, "HTTP 409") {
		t.Errorf("tasks cancel of a completed task: %d %s", code, errOut)
	}
}

// What a client chose (its name and version in initialize, a task's
// message) is printed with its control and formatting characters escaped:
// a client cannot erase rows of sessions ls or tasks ls, nor draw its own.
func TestCLIPrintsNoEscapes(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	env := adminFor(t, d)
	ctx := context.Background()
	evil := "evil\r\x1b[2K\x1b[1A\nfake-session alice\ttrusted\u202egnp.exe"
	name, _ := json.Marshal(evil)
	epoch, _, err := d.Snapshots.Activate(ctx, "sess-1", true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	snap := `{"v":1,"iss":"https://idp.example","sub":"alice","client_id":"c","initialize":{"protocolVersion":"2025-11-25","clientInfo":{"name":` +
		string(name) + `,"version":"1"}},"protocol_version":"2025-11-25","initialized":true,"created":"` + now + `","active":"` + now + `"}`
	if err := d.Snapshots.Save(ctx, "sess-1", epoch, []byte(snap), time.Hour); err != nil {
		t.Fatal(err)
	}
	tk := &taskstore.Task{ID: "t-1", Owner: "own-a", Subject: "alice", ClientID: "c", Status: "working", StatusMessage: evil,
		CreatedAt: time.Now(), UpdatedAt: time.Now(), TTL: time.Hour, Request: json.RawMessage(`{"name":"x"}`)}
	if err := d.Tasks.Create(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"sessions", "ls"}, {"sessions", "show", "sess-1"}, {"tasks", "ls"}, {"tasks", "show", "own-a/t-1"}} {
		var out, errOut bytes.Buffer
		if code := adminCLI(ctx, args[0], args[1:], func(k string) string { return env[k] }, &out, &errOut); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut.String())
		}
		got := out.String()
		if strings.ContainsAny(got, "\r\x1b\u202e") || strings.Contains(got, "\nfake-session") {
			t.Errorf("%v prints the client's control characters:\n%q", args, got)
		}
		if !strings.Contains(got, `evil\r\x1b[2K\x1b[1A\nfake-session alice\ttrusted\u202egnp.exe`) {
			t.Errorf("%v does not show the client's text escaped:\n%s", args, got)
		}
		if lines := strings.Count(strings.TrimSpace(got), "\n"); (args[1] == "ls") && lines != 1 {
			t.Errorf("%v: %d rows, want one:\n%s", args, lines, got)
		}
	}
}

// A session whose snapshot cannot be read (here larger than a node reads)
// is a row of sessions ls saying why in its STATE, its other cells empty,
// and sessions kill ends it; sessions ls --user leaves it out (nothing
// says whose it is).
func TestSessionsCLIUnreadable(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	d := state.MemoryStores(time.Hour)
	d.Snapshots = state.NewRedisSnapshots(client, "")
	env := adminFor(t, d)
	for _, id := range []string{"s-big", "s-fine"} {
		epoch, _, err := d.Snapshots.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Snapshots.Save(ctx, id, epoch, []byte(`{"v":1,"sub":"alice"}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	client.Set(ctx, "pingmcp:session:{s-big}:snap", strings.Repeat("s3cr3t", 1<<20), time.Hour)
	cli := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := adminCLI(ctx, args[0], args[1:], func(k string) string { return env[k] }, &out, &errOut)
		if strings.Contains(out.String()+errOut.String(), "s3cr3t") {
			t.Errorf("%v prints a snapshot's content", args)
		}
		return out.String(), errOut.String(), code
	}
	out, errOut, code := cli("sessions", "ls")
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "s-big ") {
			row = l
		}
	}
	if code != 0 || !strings.Contains(row, "unreadable: too large: 6 MiB, over its bound of 512 KiB") || strings.Count(row, " - ") < 6 || !strings.Contains(out, "s-fine") {
		t.Errorf("sessions ls: %d, the unreadable session's row %q\n%s%s", code, row, out, errOut)
	}
	if out, _, _ := cli("sessions", "ls", "--user", "alice"); strings.Contains(out, "s-big") || !strings.Contains(out, "s-fine") {
		t.Errorf("sessions ls --user alice:\n%s", out)
	}
	if out, errOut, code := cli("sessions", "kill", "s-big"); code != 0 || !strings.Contains(out, "session s-big ended") {
		t.Errorf("sessions kill of an unreadable session: %d %s%s", code, out, errOut)
	}
	if client.Exists(ctx, "pingmcp:session:{s-big}:snap").Val() != 0 {
		t.Error("sessions kill left the unreadable snapshot")
	}
}

// pingmcp sessions --help (and -h, help, or --help after a verb) prints the
// command's verbs and the flags they take, exits 0 and needs no admin
// token; no verb, or an unknown one, prints the same to stderr and exits 2.
func TestAdminCLIHelp(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{{"sessions", "--help"}, {"sessions", "-h"}, {"sessions", "help"}, {"sessions", "ls", "--help"}, {"sessions", "kill", "some-id", "-h"}} {
		var out, errOut bytes.Buffer
		code := adminCLI(context.Background(), args[0], args[1:], noEnv, &out, &errOut)
		got := out.String()
		if code != 0 || errOut.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
		for _, want := range []string{"pingmcp sessions ls", "pingmcp sessions show ID", "pingmcp sessions kill ID",
			"--admin-url", `"http://127.0.0.1:9090"`, "--admin-token-file", "PINGMCP_ADMIN_TOKEN", "-o\n", "--user", "--client", "--node", "--limit"} {
			if !strings.Contains(got, want) {
				t.Errorf("%v: the help lacks %q:\n%s", args, want, got)
			}
		}
		for _, not := range []string{"--for", "--status", "--session"} {
			if strings.Contains(got, not+"\n") {
				t.Errorf("%v: the help offers %s, a flag of other commands:\n%s", args, not, got)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := adminCLI(context.Background(), "users", []string{"--help"}, noEnv, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "pingmcp users revoke SUBJECT") || !strings.Contains(out.String(), "--for\n") || !strings.Contains(out.String(), "--issuer\n") {
		t.Errorf("users --help: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"nodes"}, "pingmcp nodes: which one? (ls, drain ADDRESS)"},
		{[]string{"nodes", "bogus"}, `unknown command "nodes bogus"`},
	} {
		var out, errOut bytes.Buffer
		code := adminCLI(context.Background(), c.args[0], c.args[1:], noEnv, &out, &errOut)
		if code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), c.says) || !strings.Contains(errOut.String(), "pingmcp nodes drain ADDRESS") ||
			strings.Contains(errOut.String(), "no admin token") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", c.args, code, out.String(), errOut.String())
		}
	}
}
