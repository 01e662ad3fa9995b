package main

import (
	"bytes"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/config"
)

// What the standard library logs goes to pingmcp's log, but for the bytes
// a server sent unasked, which net/http's transport quotes: a server that
// reflects its requests puts the credentials a call carried there.
func TestStdLogHidesUnsolicitedBytes(t *testing.T) {
	defer log.SetOutput(os.Stderr)
	defer slog.SetDefault(slog.Default())
	var out bytes.Buffer
	cfg := &config.Config{LogFormat: "json", LogLevel: "info"}
	newLogger(cfg, &out)
	log.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", "echo: Authorization: Basic cGluZ21jcDpzZWNyZXQ=", nil)
	log.Printf("http: TLS handshake error from %s: EOF", "127.0.0.1:1234")
	got := out.String()
	if strings.Contains(got, "cGluZ21jcDpzZWNyZXQ=") || !strings.Contains(got, "a server sent bytes after its answer") {
		t.Errorf("the unsolicited bytes' line: %s", got)
	}
	if !strings.Contains(got, `"msg":"http: TLS handshake error from 127.0.0.1:1234: EOF"`) {
		t.Errorf("another line of the log package's: %s", got)
	}
}
