package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Found by an attack review: anyone who reaches the admin listener, with no credential at all,
// can post to /console/login with a foreign Origin: each such request
// writes a Warn line quoting the whole Origin header (up to
// --max-header-bytes, 64 KiB), unthrottled. Refused sign-ins (c.refusedLog)
// and refused bearer tokens (the edge's refusedLog) are throttled and the
// audit records of anonymous requests clipped and throttled; this line is
// neither.
func TestCrossOriginRefusalLogBounded(t *testing.T) {
	f := newConsoleFixture(t, nil)
	origin := "https://" + strings.Repeat("a", 32<<10) + ".example"
	const n = 40
	for range n {
		if status, _, _ := f.post("/console/login", url.Values{"token": {"x"}}, "Origin", origin); status != http.StatusForbidden {
			t.Fatalf("a cross-origin sign-in: %d", status)
		}
	}
	logs := f.logs.String()
	if lines := strings.Count(logs, "cross-origin form refused"); lines >= n {
		t.Errorf("%d log lines for %d anonymous cross-origin posts: not throttled", lines, n)
	}
	if strings.Contains(logs, strings.Repeat("a", 1024)) {
		t.Errorf("the log quotes an anonymous request's Origin whole: %d bytes of log for %d requests", len(logs), n)
	}
}

// Found by an attack review: the console shows a client's clientInfo name and version as they
// are (html/template escapes markup, not Unicode formatting characters):
// a U+202E in the name reverses the rest of its cell, the client id that
// names the client included; and a name of 60 KB, one unbreakable word,
// widens the table so that every other session's Node, State and End
// columns leave the screen. The CLI escapes the first (printable); neither
// bounds the second.
func TestConsoleShowsClientChosenTextEscaped(t *testing.T) {
	f := newConsoleFixture(t, nil)
	ctx := t.Context()
	save := func(id, sub, name string) {
		t.Helper()
		n, _ := json.Marshal(name)
		epoch, _, err := f.d.Snapshots.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		snap := `{"v":1,"iss":"https://idp.example","sub":"` + sub + `","client_id":"c-` + sub + `","initialize":{"protocolVersion":"2025-11-25","clientInfo":{"name":` +
			string(n) + `,"version":"1"}},"protocol_version":"2025-11-25","initialized":true,"created":"` + now + `","active":"` + now + `"}`
		if err := f.d.Snapshots.Save(ctx, id, epoch, []byte(snap), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	save("sess-bob", "bob", "Claude Desktop")
	save("sess-mallory", "mallory", "Claude Desktop\u202e"+strings.Repeat("A", 60<<10))
	f.login()
	_, page, _ := f.get("/console/")
	if strings.ContainsRune(page, '\u202e') {
		t.Error("the console page holds a client's U+202E RIGHT-TO-LEFT OVERRIDE as is")
	}
	if strings.Contains(page, strings.Repeat("A", 4096)) {
		t.Errorf("the console list shows a client-chosen name of %d bytes whole (page: %d bytes)", 60<<10, len(page))
	}
}
