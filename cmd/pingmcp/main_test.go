package main

import (
	"bytes"
	"net"
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
