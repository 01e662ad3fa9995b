package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// Found by an attack review: a client's clientInfo.name (up to --max-initialize-bytes, 64 KiB)
// reaches the admin views whole. In `pingmcp sessions ls`, tabwriter pads
// every row of the block to the widest CLIENT APP cell: one hostile session
// pushes the PROTOCOL, NODE, STATE... columns of every other user's session
// tens of kilobytes to the right.
func TestCLISessionsTableBoundedByClientName(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	env := adminFor(t, d)
	ctx := context.Background()
	save := func(id, sub, name string) {
		t.Helper()
		n, _ := json.Marshal(name)
		epoch, _, err := d.Snapshots.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		snap := `{"v":1,"iss":"https://idp.example","sub":"` + sub + `","client_id":"c","initialize":{"protocolVersion":"2025-11-25","clientInfo":{"name":` +
			string(n) + `,"version":"1"}},"protocol_version":"2025-11-25","initialized":true,"created":"` + now + `","active":"` + now + `"}`
		if err := d.Snapshots.Save(ctx, id, epoch, []byte(snap), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	save("sess-bob", "bob", "Claude Desktop")
	save("sess-mallory", "mallory", strings.Repeat("A", 60<<10)) // fits a 64 KiB initialize
	var out, errOut bytes.Buffer
	if code := adminCLI(ctx, "sessions", []string{"ls"}, func(k string) string { return env[k] }, &out, &errOut); code != 0 {
		t.Fatalf("sessions ls: %d %s", code, errOut.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "sess-bob") && len(line) > 1024 {
			t.Errorf("bob's row is %d bytes wide: another user's client name pushes its PROTOCOL/NODE/STATE columns %d bytes to the right", len(line), strings.Index(line, "2025-11-25"))
		}
	}
	if strings.Contains(out.String(), strings.Repeat("A", 4096)) {
		t.Errorf("the table shows a client-chosen name of %d bytes whole", 60<<10)
	}
}
