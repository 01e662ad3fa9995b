package main

import (
	"bytes"
	"flag"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
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
