package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestConsole drives the operator console of pingmcp dev in headless
// Chromium, as an operator would: signs in with the admin token, sees a
// user's live session appear in the list (the page refreshes itself), opens
// it, ends it and sees it go; the user's client is then told its session is
// gone. A screenshot of the list and one of the session are saved as
// artifacts (console.png, console-session.png).
func TestConsole(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if _, ci := os.LookupEnv("CI"); ci {
			t.Fatalf("chromium is not installed (scripts/test.sh installs it): %v", err)
		}
		t.Skip("chromium is not installed (scripts/test.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, adminAddr, token := runDevAdmin(t)
	console := "http://" + adminAddr + "/console/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.DisableGPU, chromedp.WindowSize(1400, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, closeBrowser := chromedp.NewContext(allocCtx)
	defer closeBrowser()
	os.Remove(filepath.Join("..", "artifacts", "console-failure.png")) // of an earlier run
	started := time.Now()
	// The first action starts the browser, for as long as its context
	// lives: this one, not a step's.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	defer func() {
		if t.Failed() && browser.Err() == nil {
			screenshot(t, browser, "console-failure.png")
		}
	}()

	// Signed out, the console sends to its sign-in form.
	if err := browse(browser, chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS(`body[data-page="login"]`))); err != nil {
		t.Fatalf("open the console: %v", err)
	}
	if loc, _ := chromedp.Run(browser, chromedp.Location()); !strings.HasSuffix(loc, "/console/login") {
		t.Errorf("signed out, the console is at %s", loc)
	}
	t.Logf("chromium started and showed the sign-in form in %v", time.Since(started).Round(time.Millisecond))
	// A wrong token is refused with a message, and not shown back.
	if err := browse(browser, chromedp.SendKeys(chromedp.CSS("#token"), "not-"+token), chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#login-error"))); err != nil {
		t.Fatalf("sign in with a wrong token: %v", err)
	}
	if html := pageHTML(t, browser); strings.Contains(html, token) {
		t.Error("the refused token is shown on the page")
	}
	if err := browse(browser, chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-page="list"]`))); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if n := count(t, browser, `tr[data-subject="alice"]`); n != 0 {
		t.Fatalf("the list shows %d sessions of alice before she connected", n)
	}

	// Alice signs in through the OAuth flow and calls a tool: her session
	// appears in the list, which refreshes itself.
	const all = "openid offline_access todo_api:read todo_api:write"
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", all)
	as := connectAs(t, ctx, d.MCP, alice)
	if _, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Fatal("alice's call failed")
	}
	row := `tr[data-session="` + as.ID() + `"]`
	connected := time.Now()
	if err := browse(browser, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("alice's session never appeared in the list: %v", err)
	}
	t.Logf("alice's session appeared in the list %v after her call", time.Since(connected).Round(time.Millisecond))
	if n := count(t, browser, `tr[data-subject="alice"]`); n != 1 {
		t.Errorf("the list shows %d sessions of alice, want 1", n)
	}
	screenshot(t, browser, "console.png")

	// Her session's page: the client and the exchanged token described,
	// no token anywhere in the page.
	if err := clickThrough(browser, row+" a.detail", `body[data-page="session"]`); err != nil {
		t.Fatalf("open alice's session: %v", err)
	}
	var described struct {
		Delegations []struct{ Audience string }
	}
	status, body, _ := adminCall(t, ctx, http.MethodGet, "http://"+adminAddr+"/admin/v1/sessions/"+as.ID(), token)
	if json.Unmarshal([]byte(body), &described); status != http.StatusOK || len(described.Delegations) == 0 || described.Delegations[0].Audience == "" {
		t.Fatalf("alice's session through the API: %d %s", status, body)
	}
	if got := text(t, browser, "#client-name"); got != "e2e" {
		t.Errorf("client name on the page: %q, want e2e", got)
	}
	if got := text(t, browser, "#subject"); !strings.HasPrefix(got, "alice") {
		t.Errorf("user on the page: %q", got)
	}
	if got := text(t, browser, "td.audience"); got != described.Delegations[0].Audience {
		t.Errorf("exchanged token's audience on the page: %q, want %q", got, described.Delegations[0].Audience)
	}
	html := pageHTML(t, browser)
	for _, secret := range []string{alice, token, "eyJ"} {
		if strings.Contains(html, secret) {
			t.Errorf("the session's page shows a token (%.12s…)", secret)
		}
	}
	screenshot(t, browser, "console-session.png")

	// End it: back on the list, the session is gone, and so it is for her
	// client.
	end := `body[data-page="session"] form[action="/console/sessions/` + as.ID() + `/end"] button`
	if err := clickThrough(browser, end, `body[data-page="list"]`); err != nil {
		t.Fatalf("end alice's session: %v", err)
	}
	if err := browse(browser, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("alice's ended session stays in the list: %v", err)
	}
	if d.awaitCount(ctx, `"msg":"admin console: session ended"`, 1) < 1 || !d.logged(`"msg":"admin console: session ended"`, as.ID(), "static-admin-token") {
		t.Error("the end is not logged with the session and the operator")
	}
	if !d.logged(`"log":"audit"`, `"action":"sessions.kill"`, `"target":"`+as.ID()+`"`, `"operator":"static-admin-token"`, `"outcome":"ok"`) ||
		!d.logged(`"log":"audit"`, `"action":"console.login"`, `"outcome":"ok"`) || !d.logged(`"log":"audit"`, `"action":"console.login"`, `"outcome":"denied"`) {
		t.Error("the console's sign-ins and the end are not in the audit log")
	}
	// Her client gave up when the end closed its standalone stream; the
	// session's id, asked again, is not found.
	if _, err := as.CallTool(ctx, &mcp.CallToolParams{Name: "get_my_todo_list"}); err == nil {
		t.Error("alice's client still works after the end")
	}
	if status, _ := rawToolCall(t, ctx, d.MCP, alice, as.ID(), "get_my_todo_list", "{}"); status != http.StatusNotFound {
		t.Errorf("a call in alice's ended session: %d, want 404", status)
	}
	if d.logged(token) || d.logged(alice) {
		t.Error("a token appears in the logs")
	}
	t.Logf("the browser part took %v", time.Since(started).Round(time.Millisecond))
}

// stepTimeout bounds a step of the test in the browser, so that a failed
// one leaves time for a screenshot of the page as it was.
const stepTimeout = 30 * time.Second

func browse(browser context.Context, actions ...chromedp.Action[chromedp.Void]) error {
	step, cancel := context.WithTimeout(browser, stepTimeout)
	defer cancel()
	return chromedp.Do(step, actions...)
}

// reloadRetry bounds one try of a browser action on a page that reloads
// itself (the console's list and session pages, every 2 s): a reload can
// take away the node an action works on, so the action is tried again on
// the new page.
const reloadRetry = 5 * time.Second

// clickThrough clicks sel, then waits until want is on the page; a click
// that a reload swallowed is made again on the reloaded page. sel must
// match only on the page the click is made from.
func clickThrough(browser context.Context, sel, want string) error {
	deadline := time.Now().Add(stepTimeout)
	for {
		try, cancel := context.WithTimeout(browser, reloadRetry)
		err := chromedp.Do(try, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(want)))
		cancel()
		if err == nil {
			return nil
		}
		if browser.Err() != nil || time.Now().After(deadline) {
			return err
		}
		// The click may have landed with the answer slower than the try.
		if ok, _ := chromedp.Run(browser, chromedp.Evaluate[bool](`document.querySelector(`+jsString(want)+`) !== null`)); ok {
			return nil
		}
	}
}

// evaluate runs a JavaScript expression on the page, again if a reload of
// the page interrupted it.
func evaluate[T any](t *testing.T, browser context.Context, expr string) T {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		try, cancel := context.WithTimeout(browser, reloadRetry)
		v, err := chromedp.Run(try, chromedp.Evaluate[T](expr))
		cancel()
		if err == nil {
			return v
		}
		if browser.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
	}
}

func count(t *testing.T, browser context.Context, sel string) int {
	t.Helper()
	return evaluate[int](t, browser, `document.querySelectorAll(`+jsString(sel)+`).length`)
}

func text(t *testing.T, browser context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(evaluate[string](t, browser, `(document.querySelector(`+jsString(sel)+`)?.textContent ?? "")`))
}

func pageHTML(t *testing.T, browser context.Context) string {
	t.Helper()
	return evaluate[string](t, browser, `document.documentElement.outerHTML`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves a full-page screenshot of the browser as a test
// artifact: in $PINGMCP_ARTIFACTS (or the test's temporary directory) and
// in the repository's artifacts/ folder.
func screenshot(t *testing.T, browser context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{os.Getenv("PINGMCP_ARTIFACTS"), filepath.Join("..", "artifacts")}
	if dirs[0] == "" {
		dirs[0] = t.TempDir()
	}
	for _, dir := range dirs {
		path, _ := filepath.Abs(filepath.Join(dir, name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		t.Logf("screenshot: %s", path)
	}
}
