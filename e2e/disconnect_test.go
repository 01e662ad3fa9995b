package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStatelessDisconnectAbortsTheCall: a 2026-07-28 (stateless) client
// gives up a call by closing its response stream, and sends no
// notifications/cancelled; that revision's cancellation utility says the
// server MUST take the disconnect as the request's cancellation. Here the
// call is an --apis tool whose API answers only once its caller gives up:
// when the MCP client leaves, pingmcp's call to the API is aborted.
func TestStatelessDisconnectAbortsTheCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	arrived, aborted, done := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/openapi.yaml":
			io.WriteString(w, "openapi: 3.0.3\ninfo: {title: slow, version: \"1\"}\npaths:\n  /slow:\n    get:\n      operationId: getSlow\n      responses:\n        \"200\": {description: ok}\n")
		case "/slow":
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
				aborted <- struct{}{}
			case <-done:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	defer close(done) // before api.Close, which waits for the handler
	// The token is exchanged for the resource the dev IdP knows, the Todo
	// API's; the test's API takes any.
	todoAddr := freeAddr(t)
	apis := filepath.Join(t.TempDir(), "apis.yaml")
	if err := os.WriteFile(apis, []byte(fmt.Sprintf("apis:\n  - name: slow\n    base_url: %[1]s\n    document: %[1]s/openapi.yaml\n"+
		"    resource: http://%[2]s\n    scopes: [todo_api:read]\n", api.URL, todoAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the client's leaving may end the API call within the test: not
	// the bound on API calls.
	d := runDev(t, "--todo-api-addr", todoAddr, "--apis", apis, "--upstream-timeout", "10m")
	token := login(t, ctx, d.Issuer, d.MCP, "alice", "openid offline_access todo_api:read")

	cctx, leave := context.WithCancel(ctx)
	defer leave()
	req := statelessCallRequest(cctx, d.MCP, token, "slow_getSlow")
	answered := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	select {
	case <-arrived:
	case a := <-answered:
		t.Fatalf("the call was answered before it reached the API: %s", a)
	case <-ctx.Done():
		t.Fatal("the call never reached the API")
	}
	leave() // the client closes its stream
	select {
	case <-aborted:
	case <-time.After(30 * time.Second):
		t.Fatal("the API call went on 30 s after its MCP client left")
	}
}
