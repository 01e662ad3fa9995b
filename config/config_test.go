package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	e := env(map[string]string{"PINGMCP_ADDR": "127.0.0.1:9000", "PINGMCP_SESSION_IDLE_TIMEOUT": "5m", "PINGMCP_ROLE": "edge"})
	c, err := Parse("serve", []string{"--auth", "none", "--role", "member"}, e, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9000" || c.SessionIdleTimeout != 5*time.Minute {
		t.Errorf("environment not applied: %+v", c)
	}
	if c.Role != "member" {
		t.Errorf("role = %q: the command line must win over the environment", c.Role)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("dev", nil, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Auth != "jwt" || c.Issuer != "http://127.0.0.1:9031" || c.Resource != "http://127.0.0.1:8080/mcp" ||
		c.TodoAPIURL != "http://127.0.0.1:8081" || c.ClusterProvider != "single" || c.Role != "both" {
		t.Errorf("dev defaults: %+v", c)
	}
	c, err = Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--cluster-seeds", "127.0.0.1:7001, 127.0.0.1:7002"}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterProvider != "automanaged" || len(c.ClusterSeeds) != 2 || c.ClusterSeeds[1] != "127.0.0.1:7002" {
		t.Errorf("seeds imply automanaged: %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name string
		cmd  string
		args []string
		env  map[string]string
		want string
	}{
		{"auth none on all interfaces", "serve", []string{"--auth", "none"}, nil, "not a loopback address"},
		{"auth none, cluster on all interfaces", "serve", []string{"--auth", "none", "--addr", "127.0.0.1:1", "--cluster-addr", "0.0.0.0:7000"}, nil, "not a loopback address"},
		{"unknown role", "serve", []string{"--auth", "none", "--addr", "127.0.0.1:1", "--role", "boss"}, nil, "--role"},
		{"unknown provider", "serve", []string{"--auth", "none", "--addr", "127.0.0.1:1", "--cluster-provider", "zk"}, nil, "--cluster-provider"},
		{"unknown toolset", "dev", []string{"--tools", "nope"}, nil, "--tools"},
		{"bad seed", "serve", []string{"--auth", "none", "--addr", "127.0.0.1:1", "--cluster-seeds", "nohost"}, nil, "--cluster-seeds"},
		{"bad env duration", "dev", nil, map[string]string{"PINGMCP_SESSION_IDLE_TIMEOUT": "soon"}, "PINGMCP_SESSION_IDLE_TIMEOUT"},
		{"jwt without issuer", "serve", []string{"--addr", "127.0.0.1:1"}, nil, "needs --issuer"},
		{"introspection without client", "serve", []string{"--auth", "introspection", "--issuer", "https://pf", "--addr", "127.0.0.1:1"}, nil, "--client-id"},
		{"bad public url", "serve", []string{"--issuer", "https://pf", "--public-url", "ftp://x"}, nil, "--public-url"},
		{"todo-api without issuer", "todo-api", nil, nil, "--issuer"},
		{"idp without secret", "idp", nil, nil, "--client-secret"},
		{"stray argument", "dev", []string{"extra"}, nil, "unexpected argument"},
		{"dev beyond loopback", "dev", []string{"--idp-addr", "0.0.0.0:9031"}, nil, "loopback only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.cmd, tt.args, env(tt.env), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

// Help documents every flag with its environment variable.
func TestHelpListsEveryFlagAndVariable(t *testing.T) {
	for _, cmd := range []string{"dev", "serve", "todo-api", "idp"} {
		var out bytes.Buffer
		_, err := Parse(cmd, []string{"--help"}, env(nil), &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		flags := []string{"addr", "tools", "auth", "allowed-origins", "allowed-hosts", "session-idle-timeout", "max-body-bytes", "log-level", "log-format",
			"public-url", "resource", "issuer", "client-id", "client-secret", "scopes", "todo-api-url"}
		if cmd == "dev" {
			flags = append(flags, "idp-addr", "todo-api-addr")
		}
		if cmd == "serve" {
			flags = append(flags, "cluster-addr", "cluster-advertised-addr", "cluster-seeds", "cluster-provider", "role")
		}
		if cmd == "todo-api" {
			flags = []string{"addr", "issuer", "resource", "redis-url", "allow-undelegated", "log-level"}
		}
		if cmd == "idp" {
			flags = []string{"addr", "issuer", "client-id", "client-secret", "resource", "todo-api-url", "force-non-loopback"}
		}
		for _, f := range flags {
			if !strings.Contains(out.String(), "--"+f+"\n") || !strings.Contains(out.String(), EnvName(f)) {
				t.Errorf("%s --help does not document --%s and %s", cmd, f, EnvName(f))
			}
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.9.9.9:1": true,
		":8080": false, "0.0.0.0:80": false, "10.0.0.1:80": false, "[::]:80": false, "example.com:80": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
