package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/config"
)

// The banner's example command runs this program again: pingmcp when it is
// installed, the go run command of its source when go run built it (no
// pingmcp on the PATH then), relative to the working directory, or with
// go -C from outside the module.
func TestRunCommand(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Dir(file) // this package's source: …/cmd/pingmcp
	root := filepath.Dir(filepath.Dir(src))
	goRun := filepath.Join(os.TempDir(), "go-build1655503543", "b001", "exe", "pingmcp")
	for _, tc := range []struct {
		name, exe, wd, src, want string
	}{
		{"installed", "/usr/local/bin/pingmcp", root, src, "pingmcp"},
		{"go install", filepath.Join(os.Getenv("HOME"), "go", "bin", "pingmcp"), root, src, "pingmcp"},
		{"go run at the module's root", goRun, root, src, "go run ./cmd/pingmcp"},
		{"go run in cmd", goRun, filepath.Join(root, "cmd"), src, "go run ./pingmcp"},
		{"go run in the package", goRun, src, src, "go run ."},
		{"go run from a sibling folder", goRun, filepath.Join(root, "e2e"), src, "go run ../cmd/pingmcp"},
		{"go run from elsewhere", goRun, "/", src, "go -C " + shellQuote(root) + " run ./cmd/pingmcp"},
		{"go run -trimpath", goRun, root, "github.com/pingmcp/pingmcp/cmd/pingmcp", "go run github.com/pingmcp/pingmcp/cmd/pingmcp"},
	} {
		if got := runCommand(tc.exe, tc.wd, tc.src); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := shellQuote("/tmp/my dir/it's"); got != `'/tmp/my dir/it'\''s'` {
		t.Errorf("shellQuote: %s", got)
	}
}

// The example command the banner prints works as printed: built by go run
// into a go-build directory (as `go run ./cmd/pingmcp dev` does), this
// program names go run, and a shell with no pingmcp on its PATH running
// that command in the same directory runs this program.
func TestBannerCommandUnderGoRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	// Where go run puts what it builds; runCommand looks at the path only.
	exe := filepath.Join(os.TempDir(), "go-build123", "b001", "exe", "pingmcp")
	got := runCommand(exe, root, filepath.Dir(file))
	if got != "go run ./cmd/pingmcp" {
		t.Fatalf("runCommand %q", got)
	}
	sh := exec.Command("sh", "-c", got+" sessions ls --admin-url http://127.0.0.1:1")
	sh.Dir = root
	sh.Env = append(os.Environ(), "PATH="+filepath.Dir(goBinary(t))) // go, and no pingmcp
	out, _ := sh.CombinedOutput()
	if !strings.Contains(string(out), "pingmcp: no admin token") {
		t.Errorf("%s sessions --help, in %s:\n%s", got, root, out)
	}
}

func goBinary(t *testing.T) string {
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on the PATH")
	}
	return p
}

// The banner says where the logins are kept, and how to turn that off.
func TestDevBannerState(t *testing.T) {
	base := config.Config{Command: "dev", Auth: "jwt", IdPAddr: "127.0.0.1:9031", Issuer: "http://127.0.0.1:9031", Resource: "http://127.0.0.1:8080/mcp"}
	for _, tc := range []struct {
		state, issuer, want string
	}{
		{"/home/u/.cache/pingmcp/dev-state.json", "", "kept in /home/u/.cache/pingmcp/dev-state.json"},
		{"", "", "in memory only (--dev-state off)"},
		{"/x", "https://pf.example", ""},
	} {
		cfg := base
		cfg.DevState = tc.state
		if tc.issuer != "" {
			cfg.Issuer = tc.issuer
		}
		var out bytes.Buffer
		printDevBanner(&out, &cfg)
		line := ""
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "Logins:") {
				line = l
			}
		}
		if (tc.want == "" && line != "") || !strings.Contains(line, tc.want) {
			t.Errorf("state %q, issuer %q: Logins line %q, want %q", tc.state, cfg.Issuer, line, tc.want)
		}
	}
}

// A second dev on the state file of a running one is refused before it
// listens, saying which file and what to do; so is a state file others may
// read, which is left as it was.
func TestDevStateRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev-state.json")
	held, err := devidp.OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"dev", "--addr", "127.0.0.1:0", "--idp-addr", "127.0.0.1:0", "--todo-api-addr", "127.0.0.1:0", "--admin-addr", "", "--dev-state", path}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), path) || !strings.Contains(stderr.String(), "--dev-state off") ||
		!strings.Contains(stderr.String(), "another pingmcp dev") {
		t.Errorf("second dev on %s: exit %d\n%s", path, code, stderr.String())
	}
	held.Close()

	os.WriteFile(path, []byte(`{"version": 1}`), 0o644)
	stderr.Reset()
	if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "group or others") || !strings.Contains(stderr.String(), "left as it is") {
		t.Errorf("dev on a state file others may read: exit %d\n%s", code, stderr.String())
	}
	if b, _ := os.ReadFile(path); string(b) != `{"version": 1}` {
		t.Errorf("the refused state file was changed: %s", b)
	}
}
