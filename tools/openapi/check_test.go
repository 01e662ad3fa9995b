package openapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary is the checking process too (testChecker), as pingmcp's
// is (its check-openapi command).
func TestMain(m *testing.M) {
	if os.Getenv("PINGMCP_TEST_OPENAPI_CHECKER") == "1" {
		os.Exit(CheckMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// testChecker is an Options.Checker: this test binary, as CheckMain.
func testChecker(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "PINGMCP_TEST_OPENAPI_CHECKER=1")
	return cmd
}

// chainDoc is a document whose loading takes kin-openapi long: a chain of
// n $refs (its resolving is quadratic in it, and stops for no context).
func chainDoc(n int) string {
	var schemas strings.Builder
	schemas.WriteString("  schemas:\n")
	for i := range n {
		fmt.Fprintf(&schemas, "    S%d: {$ref: '#/components/schemas/S%d'}\n", i, i+1)
	}
	fmt.Fprintf(&schemas, "    S%d: {type: string}\n", n)
	return docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/S0'}}}}}}`, schemas.String())
}

// With a checking process, a document that takes longer to load than the
// time given is refused when that time ends, and its loading ends then
// too: the process is killed, nothing runs on in the node, and the next
// document loads at once.
func TestCostlyDocumentKilledWithItsChecker(t *testing.T) {
	costly := writeDoc(t, chainDoc(1500))
	small := writeDoc(t, docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok}}}`, "  schemas: {}"))
	api := func(doc string) []API {
		return []API{{Name: "t", BaseURL: "https://api.example.com", Scopes: []string{"a"}, Document: doc}}
	}
	var mu sync.Mutex
	var ran []*exec.Cmd
	checker := func(ctx context.Context) *exec.Cmd {
		cmd := testChecker(ctx)
		mu.Lock()
		ran = append(ran, cmd)
		mu.Unlock()
		return cmd
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := New(ctx, api(costly), Options{Checker: checker})
	if err == nil || !strings.Contains(err.Error(), "not loaded and checked within the time given") {
		t.Fatalf("a document costlier than its time: %v", err)
	}
	if n := abandonedLoads.Load(); n != 0 {
		t.Errorf("%d loadings given up run on in the node", n)
	}
	mu.Lock()
	if len(ran) != 1 || ran[0].ProcessState == nil || ran[0].ProcessState.Exited() {
		t.Errorf("the checking process was not killed: %v", ran)
	}
	mu.Unlock()
	if _, err := New(t.Context(), api(small), Options{Checker: checker}); err != nil {
		t.Errorf("a document loaded right after a costly one was refused: %v", err)
	}
}

// A document whose loading needs more memory than a checking process may
// have is refused, saying so, and the node never loads it; one that needs
// less is loaded.
func TestDocumentTooLargeForItsCheckerRefused(t *testing.T) {
	defer func(was int64) { checkMemory = was }(checkMemory)
	checkMemory = 256 << 20
	// An extension of 4 million numbers, 8 MB: several times 256 MiB once
	// parsed.
	large := "x-big: [" + strings.Repeat("0,", 4<<20) + "0]\n"
	for doc, ok := range map[string]bool{
		docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok}}}`, "  schemas: {}"): true,
		docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok}}}`, "  schemas: {}") + large: false,
	} {
		_, err := New(t.Context(), []API{{Name: "t", BaseURL: "https://api.example.com", Scopes: []string{"a"}, Document: writeDoc(t, doc)}}, Options{Checker: testChecker})
		// (Under the race detector, its runtime dies of the bound in words
		// of its own: the refusal is all there is to see.)
		if ok != (err == nil) || !ok && !strings.Contains(err.Error(), "MiB of memory") && !raceEnabled {
			t.Errorf("a document of %d bytes, its checker's memory %d MiB: %v", len(doc), checkMemory>>20, err)
		}
	}
}
