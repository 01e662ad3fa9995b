package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pingmcp/pingmcp/config"
)

// The test binary is the process that checks an API's document too
// (apisOptions: the executable run with its check-openapi command), and
// another local user's listener (foreignListener).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == checkOpenAPI {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(adminCLIEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(foreignListenerEnv) == "1" {
		serveForeignListener()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{[]string{"--help"}, 0, "Commands:"},
		{nil, 2, "Usage: pingmcp"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"dev", "--help"}, 0, "PINGMCP_ADDR"},
		{[]string{"serve", "--help"}, 0, "PINGMCP_CLUSTER_SEEDS"},
		{[]string{"serve", "--auth", "none"}, 2, "not a loopback address"},
		{[]string{"dev", "--tools", "nope"}, 2, "--tools"},
		{[]string{"dev", "--auth", "none", "--addr", taken.Addr().String()}, 1, "address already in use"},
		{[]string{"idp", "--client-secret", "x", "--addr", "0.0.0.0:0"}, 1, "loopback"},
		{[]string{"todo-api", "--help"}, 0, "PINGMCP_REDIS_URL"},
		{[]string{"certs", "--help"}, 0, "PINGMCP_CA_VALIDITY"},
		{[]string{"certs"}, 2, "--dir is required"},
		{[]string{"certs", "--dir", dir, "--nodes", "2"}, 0, "node-2: --cluster-tls-cert " + filepath.Join(dir, "node-2.crt")},
		{[]string{"certs", "--dir", dir, "--names", "node-2,node-3"}, 1, "not overwritten"},
		{[]string{"serve", "--auth", "none", "--addr", "127.0.0.1:0", "--cluster-seeds", "127.0.0.1:1"}, 2, "pingmcp certs --dir DIR"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("pingmcp %v: exit %d, output %q; want exit %d mentioning %q", tt.args, code, stdout.String()+stderr.String(), tt.code, tt.out)
		}
	}
}

// TestSplitArgs: flags go before or after the session id, which may begin
// with "-".
func TestSplitArgs(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("admin-url", "", "")
	fs.String("o", "table", "")
	flags, pos := splitArgs(fs, []string{"-oqd8GUgdsuCu0i0O-JRYg", "--admin-url", "http://a", "-o=json", "-o", "table", "--", "-x"})
	if want := []string{"--admin-url", "http://a", "-o=json", "-o", "table"}; !slices.Equal(flags, want) {
		t.Errorf("flags %q, want %q", flags, want)
	}
	if want := []string{"-oqd8GUgdsuCu0i0O-JRYg", "-x"}; !slices.Equal(pos, want) {
		t.Errorf("positional %q, want %q", pos, want)
	}
	if flags, pos := splitArgs(fs, []string{"-h", "ID"}); !slices.Equal(flags, []string{"-h"}) || !slices.Equal(pos, []string{"ID"}) {
		t.Errorf("-h: flags %q, positional %q", flags, pos)
	}
}

// The grant service's URL: --grants-url, else the issuer's without a
// doubled slash; plain http beyond loopback is warned about.
func TestGrantsService(t *testing.T) {
	for _, tc := range []struct {
		issuer, grantsURL, want string
		warn                    bool
	}{
		{"https://pf.example", "", "https://pf.example/pf-ws/rest/oauth/users", false},
		{"https://pf.example/", "", "https://pf.example/pf-ws/rest/oauth/users", false},
		{"https://pf.example/", "https://admin.pf.example/pf-ws/rest/oauth/users", "https://admin.pf.example/pf-ws/rest/oauth/users", false},
		{"http://127.0.0.1:9031/", "", "http://127.0.0.1:9031/pf-ws/rest/oauth/users", false},
		{"http://localhost:9031", "", "http://localhost:9031/pf-ws/rest/oauth/users", false},
		{"http://[::1]:9031", "", "http://[::1]:9031/pf-ws/rest/oauth/users", false},
		{"https://pf.example", "http://pf.internal:9031/pf-ws/rest/oauth/users", "http://pf.internal:9031/pf-ws/rest/oauth/users", true},
		{"http://10.0.0.4:9031", "", "http://10.0.0.4:9031/pf-ws/rest/oauth/users", true},
	} {
		got, warning := grantsService(&config.Config{Issuer: tc.issuer, GrantsURL: tc.grantsURL})
		if got != tc.want || (warning != "") != tc.warn {
			t.Errorf("issuer %q, --grants-url %q: %q, warning %q; want %q, warning %v", tc.issuer, tc.grantsURL, got, warning, tc.want, tc.warn)
		}
	}
}

// pingmcp dev's authorization server knows the MCP resource by each URI
// the edge answers to, so that a token's aud is the URL the client used.
func TestDevIdPResources(t *testing.T) {
	cfg, err := config.Parse("dev", []string{"--addr", "127.0.0.1:8090"}, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range devIdPOptions(cfg, nil).Resources {
		uris = append(uris, r.URI)
	}
	want := []string{"http://127.0.0.1:8090/mcp", "http://localhost:8090/mcp", "http://[::1]:8090/mcp", cfg.TodoAPIURL}
	if !slices.Equal(uris, want) {
		t.Errorf("resources %v, want %v", uris, want)
	}
}

// A node's calls to one API come from many sessions at once: the upstream
// client keeps their connections for the next burst instead of closing all
// but two (Go's default) and dialing again.
func TestUpstreamKeepsConnections(t *testing.T) {
	const concurrent, rounds = 32, 5
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
		dialed  atomic.Int64
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every request of a round is held until all have arrived, so
		// that each needs a connection of its own.
		mu.Lock()
		arrived++
		if arrived == concurrent {
			arrived = 0
			close(release)
			release = make(chan struct{})
		} else {
			wait := release
			mu.Unlock()
			<-wait
			mu.Lock()
		}
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	client := upstream(&config.Config{})
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		wg.Wait()
	}
	// The first round dials 32; later rounds find them idle (a request
	// racing a connection's return to the pool may dial one more). With
	// Go's default of 2 idle per host, each later round dials 30 again.
	if n := dialed.Load(); n < concurrent || n > concurrent+concurrent/2 {
		t.Fatalf("%d rounds of %d concurrent calls dialed %d connections, want %d to %d", rounds, concurrent, n, concurrent, concurrent+concurrent/2)
	}
}

// The request journal a node reads follows the calls a session may run at
// once (--max-concurrent-requests): a journal of a session of a node with
// a higher limit is read, not refused as larger than pingmcp writes.
func TestJournalEntriesFollowRunningCalls(t *testing.T) {
	for _, c := range []struct {
		running int
		want    int64
	}{{16, 1024}, {512, 1024}, {2000, 4000}, {0, 1 << 16}} {
		if got := journalEntries(c.running); got != c.want {
			t.Errorf("--max-concurrent-requests %d: %d journal entries read, want %d", c.running, got, c.want)
		}
	}
}
