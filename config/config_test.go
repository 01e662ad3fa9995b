package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/certtest"
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
	c, err = Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--cluster-seeds", "127.0.0.1:7001, 127.0.0.1:7002", "--cluster-insecure"}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterProvider != "automanaged" || len(c.ClusterSeeds) != 2 || c.ClusterSeeds[1] != "127.0.0.1:7002" {
		t.Errorf("seeds imply automanaged: %+v", c)
	}
}

// The development authorization server accepts client metadata documents
// unless told not to; fetching from loopback and an extra CA are asked for.
func TestCIMDFlags(t *testing.T) {
	for _, cmd := range []string{"dev", "idp"} {
		c, err := Parse(cmd, []string{"--client-secret", "s"}, env(nil), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if !c.CIMD || c.CIMDAllowLoopback || c.CIMDCAFile != "" {
			t.Errorf("%s CIMD defaults: on %v, loopback %v, CA %q; want on, no loopback, no CA", cmd, c.CIMD, c.CIMDAllowLoopback, c.CIMDCAFile)
		}
		c, err = Parse(cmd, []string{"--client-secret", "s", "--dev-cimd-allow-loopback"},
			env(map[string]string{"PINGMCP_DEV_CIMD_CA": "/tmp/ca.pem"}), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if !c.CIMD || !c.CIMDAllowLoopback || c.CIMDCAFile != "/tmp/ca.pem" {
			t.Errorf("%s CIMD test settings not applied: %+v", cmd, c)
		}
	}
}

// dev makes a grant manager for its embedded authorization server, as it
// makes the exchange client's secret; not when it is pointed elsewhere.
func TestDevGrantManager(t *testing.T) {
	c, err := Parse("dev", nil, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.GrantsUser == "" || len(c.GrantsPassword) < 16 {
		t.Errorf("dev grant manager: user %q, a password of %d characters", c.GrantsUser, len(c.GrantsPassword))
	}
	c, err = Parse("dev", []string{"--issuer", "https://pf.example.test"}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.GrantsUser != "" || c.GrantsPassword != "" {
		t.Errorf("dev against another issuer made a grant manager %q", c.GrantsUser)
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
		{"grants user without password", "serve", []string{"--issuer", "https://pf", "--grants-user", "g"}, nil, "--grants-password"},
		{"grants password without user", "idp", []string{"--client-secret", "s"}, map[string]string{"PINGMCP_GRANTS_PASSWORD": "p"}, "--grants-user"},
		{"bad grants url", "serve", []string{"--issuer", "https://pf", "--grants-url", "pf/pf-ws"}, nil, "--grants-url"},
		{"CIMD test flags without CIMD", "dev", []string{"--dev-cimd=false", "--dev-cimd-allow-loopback"}, nil, "need --dev-cimd"},
		{"CIMD CA without CIMD", "idp", []string{"--client-secret", "s"}, map[string]string{"PINGMCP_DEV_CIMD": "false", "PINGMCP_DEV_CIMD_CA": "/ca.pem"}, "need --dev-cimd"},
		{"CIMD from loopback off loopback", "idp", []string{"--client-secret", "s", "--force-non-loopback", "--dev-cimd-allow-loopback"}, nil, "--dev-cimd-allow-loopback"},
		{"resource beside public url, other host", "serve", []string{"--issuer", "https://pf", "--public-url", "https://mcp.example", "--resource", "https://other.example/mcp"}, nil, "differ in scheme, host or port"},
		{"resource beside public url, other port", "dev", []string{"--public-url", "http://localhost:8080"}, map[string]string{"PINGMCP_RESOURCE": "http://localhost:8081/mcp"}, "differ in scheme, host or port"},
		{"resource beside public url, other scheme", "serve", []string{"--issuer", "https://pf", "--public-url", "https://mcp.example", "--resource", "http://mcp.example/mcp"}, nil, "differ in scheme, host or port"},
		{"grants url with credentials", "serve", []string{"--issuer", "https://pf", "--grants-url", "https://g:pw@pf/pf-ws/rest/oauth/users"}, nil, "credentials in the URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.cmd, tt.args, env(tt.env), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "g:pw@") {
				t.Errorf("the refusal shows the URL's credentials: %v", err)
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
			"public-url", "resource", "issuer", "client-id", "client-secret", "scopes", "todo-api-url",
			"actor-idle-timeout", "drain-timeout", "sse-keepalive", "redis-url", "redis-prefix", "state-keys", "events-max", "events-ttl"}
		if cmd == "dev" {
			flags = append(flags, "idp-addr", "todo-api-addr", "dev-state", "access-token-ttl", "refresh-token-ttl")
		}
		if cmd == "serve" {
			flags = append(flags, "cluster-addr", "cluster-advertised-addr", "cluster-seeds", "cluster-provider", "role",
				"cluster-tls-cert", "cluster-tls-key", "cluster-tls-ca", "cluster-insecure")
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

// A valid --state-keys value: two keys, newest first.
var (
	key1      = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2      = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	stateKeys = "k2:" + key2 + ",k1:" + key1
)

// serveArgs make a valid serve command line on loopback.
func serveArgs(extra ...string) []string {
	return append([]string{"--auth", "none", "--addr", "127.0.0.1:0"}, extra...)
}

func TestDurabilityDefaults(t *testing.T) {
	for _, cmd := range []string{"dev", "serve"} {
		args := []string(nil)
		if cmd == "serve" {
			args = serveArgs()
		}
		c, err := Parse(cmd, args, env(nil), new(bytes.Buffer))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if c.RedisURL != "" || c.StateKeys != "" || c.RedisPrefix != "pingmcp:" || c.SessionIdleTimeout != 30*time.Minute ||
			c.ActorIdleTimeout != 5*time.Minute || c.DrainTimeout != 20*time.Second || c.EventsMax != 1000 || c.EventsTTL != time.Hour ||
			c.SSEKeepAlive != 25*time.Second {
			t.Errorf("%s: redis %q, keys set %v, prefix %q, session idle %s, actor idle %s, drain %s, events %d for %s",
				cmd, c.RedisURL, c.StateKeys != "", c.RedisPrefix, c.SessionIdleTimeout, c.ActorIdleTimeout, c.DrainTimeout, c.EventsMax, c.EventsTTL)
		}
	}
}

func TestDurabilityAccepted(t *testing.T) {
	tests := []struct {
		name  string
		cmd   string
		args  []string
		env   map[string]string
		check func(c *Config) bool
	}{
		{"serve with Redis and keys", "serve", serveArgs("--redis-url", "redis://redis:6379/0", "--state-keys", stateKeys), nil,
			func(c *Config) bool { return c.RedisURL == "redis://redis:6379/0" && c.StateKeys == stateKeys }},
		{"serve with TLS Redis", "serve", serveArgs("--redis-url", "rediss://user:pw@redis.example.com:6380/2", "--state-keys", stateKeys), nil,
			func(c *Config) bool { return c.RedisURL == "rediss://user:pw@redis.example.com:6380/2" }},
		{"keys from the environment", "serve", serveArgs("--redis-url", "redis://redis:6379"), map[string]string{"PINGMCP_STATE_KEYS": stateKeys},
			func(c *Config) bool { return c.StateKeys == stateKeys }},
		{"Redis and keys from the environment", "serve", serveArgs(),
			map[string]string{"PINGMCP_REDIS_URL": "redis://redis:6379/0", "PINGMCP_STATE_KEYS": "k1:" + key1, "PINGMCP_REDIS_PREFIX": "a:"},
			func(c *Config) bool {
				return c.RedisURL == "redis://redis:6379/0" && c.StateKeys == "k1:"+key1 && c.RedisPrefix == "a:"
			}},
		{"the command line wins over PINGMCP_STATE_KEYS", "serve", serveArgs("--state-keys", "k1:"+key1), map[string]string{"PINGMCP_STATE_KEYS": "bad"},
			func(c *Config) bool { return c.StateKeys == "k1:"+key1 }},
		{"serve in memory needs no keys", "serve", serveArgs(), nil, func(c *Config) bool { return c.StateKeys == "" }},
		{"dev with Redis needs no keys", "dev", []string{"--redis-url", "redis://127.0.0.1:6379/0"}, nil,
			func(c *Config) bool { return c.RedisURL != "" && c.StateKeys == "" }},
		{"actor timeout 0 takes the session's", "serve", serveArgs("--session-idle-timeout", "10m", "--actor-idle-timeout", "0"), nil,
			func(c *Config) bool { return c.ActorIdleTimeout == 10*time.Minute }},
		{"session and actor never end", "serve", serveArgs("--session-idle-timeout", "0", "--actor-idle-timeout", "0", "--max-sessions-per-user", "0"), nil,
			func(c *Config) bool { return c.SessionIdleTimeout == 0 && c.ActorIdleTimeout == 0 }},
		{"actors end, sessions never", "serve", serveArgs("--session-idle-timeout", "0", "--actor-idle-timeout", "1h", "--max-sessions-per-user", "0"), nil,
			func(c *Config) bool { return c.ActorIdleTimeout == time.Hour }},
		{"actor timeout equal to the session's", "dev", []string{"--session-idle-timeout", "5m", "--actor-idle-timeout", "5m"}, nil,
			func(c *Config) bool { return c.ActorIdleTimeout == 5*time.Minute }},
		{"session timeout shorter than the default actor one", "serve", serveArgs("--session-idle-timeout", "2m"), nil,
			func(c *Config) bool { return c.ActorIdleTimeout == 2*time.Minute }},
		{"session timeout from the environment shorter than the default actor one", "serve", serveArgs(),
			map[string]string{"PINGMCP_SESSION_IDLE_TIMEOUT": "3s"},
			func(c *Config) bool { return c.ActorIdleTimeout == 3*time.Second }},
		{"durations from the environment", "serve", serveArgs(),
			map[string]string{"PINGMCP_ACTOR_IDLE_TIMEOUT": "1m", "PINGMCP_DRAIN_TIMEOUT": "0", "PINGMCP_EVENTS_MAX": "5", "PINGMCP_EVENTS_TTL": "10m"},
			func(c *Config) bool {
				return c.ActorIdleTimeout == time.Minute && c.DrainTimeout == 0 && c.EventsMax == 5 && c.EventsTTL == 10*time.Minute
			}},
		{"keep-alive from the environment", "serve", serveArgs(), map[string]string{"PINGMCP_SSE_KEEPALIVE": "40s"},
			func(c *Config) bool { return c.SSEKeepAlive == 40*time.Second }},
		{"keep-alive off", "dev", []string{"--sse-keepalive", "0"}, nil, func(c *Config) bool { return c.SSEKeepAlive == 0 }},
		{"task defaults", "serve", serveArgs(), nil,
			func(c *Config) bool { return c.TaskTTL == time.Hour && c.TaskLease == 6*time.Second }},
		{"task TTL and lease from the environment", "serve", serveArgs(),
			map[string]string{"PINGMCP_TASK_TTL": "10m", "PINGMCP_TASK_LEASE": "2s"},
			func(c *Config) bool { return c.TaskTTL == 10*time.Minute && c.TaskLease == 2*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.cmd, tt.args, env(tt.env), new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: redis %q, prefix %q, session idle %s, actor idle %s, drain %s, events %d for %s",
					c.RedisURL, c.RedisPrefix, c.SessionIdleTimeout, c.ActorIdleTimeout, c.DrainTimeout, c.EventsMax, c.EventsTTL)
			}
		})
	}
}

func TestDurabilityRefusals(t *testing.T) {
	const secret = "hunter2-password"
	tests := []struct {
		name string
		cmd  string
		args []string
		env  map[string]string
		want []string
	}{
		{"serve with Redis and no keys", "serve", serveArgs("--redis-url", "redis://redis:6379/0"), nil,
			[]string{"--redis-url needs --state-keys", "PINGMCP_STATE_KEYS", "every node", "head -c32 /dev/urandom | base64"}},
		{"serve with Redis from the environment and no keys", "serve", serveArgs(), map[string]string{"PINGMCP_REDIS_URL": "redis://redis:6379/0"},
			[]string{"--redis-url needs --state-keys"}},
		{"key not base64", "serve", serveArgs("--state-keys", "k1:not-base64!"), nil, []string{"--state-keys", "k1"}},
		{"key too short", "serve", serveArgs("--state-keys", "k1:"+base64.StdEncoding.EncodeToString([]byte("short"))), nil,
			[]string{"--state-keys", "32 bytes"}},
		{"key without id", "dev", []string{"--state-keys", key1}, nil, []string{"--state-keys", "keyid:base64"}},
		{"key id twice", "serve", serveArgs("--state-keys", "k1:"+key1+",k1:"+key2), nil, []string{"--state-keys", "twice"}},
		{"only commas", "serve", serveArgs("--state-keys", ","), nil, []string{"--state-keys"}},
		{"bad keys from the environment", "serve", serveArgs(), map[string]string{"PINGMCP_STATE_KEYS": "k1:" + key1[:20]}, []string{"--state-keys"}},
		{"Redis URL without scheme", "serve", serveArgs("--redis-url", "redis.local:6379", "--state-keys", stateKeys), nil,
			[]string{"--redis-url", "invalid URL scheme", "redis://"}},
		{"Redis URL with a bad database", "dev", []string{"--redis-url", "redis://:" + secret + "@redis:6379/zero"}, nil,
			[]string{"--redis-url redis://:xxxxx@redis:6379/zero", "database number"}},
		{"Redis URL that does not parse", "dev", []string{"--redis-url", "redis://:" + secret + "@redis:port/0"}, nil,
			[]string{"--redis-url (unparsable)", "invalid port"}},
		{"Redis URL with an unknown option", "dev", []string{"--redis-url", "redis://redis:6379/0?password=" + secret}, nil,
			[]string{"--redis-url redis://redis:6379/0?…", "unexpected option"}},
		{"todo-api with a bad Redis URL", "todo-api", []string{"--issuer", "https://pf", "--redis-url", "http://redis"}, nil,
			[]string{"--redis-url", "invalid URL scheme"}},
		{"actor outlives its session", "serve", serveArgs("--session-idle-timeout", "10m", "--actor-idle-timeout", "11m"), nil,
			[]string{"--actor-idle-timeout 11m0s is longer than --session-idle-timeout 10m0s"}},
		{"actor outlives its session, from the environment", "serve", serveArgs("--session-idle-timeout", "1m"),
			map[string]string{"PINGMCP_ACTOR_IDLE_TIMEOUT": "2m"}, []string{"--actor-idle-timeout 2m0s is longer than --session-idle-timeout 1m0s"}},
		{"negative actor timeout", "serve", serveArgs("--actor-idle-timeout", "-1s"), nil, []string{"--actor-idle-timeout must not be negative"}},
		{"negative session timeout", "dev", []string{"--session-idle-timeout", "-1s"}, nil, []string{"--session-idle-timeout must not be negative"}},
		{"negative drain timeout", "serve", serveArgs("--drain-timeout", "-1s"), nil, []string{"--drain-timeout must not be negative"}},
		{"keep-alive too frequent", "serve", serveArgs("--sse-keepalive", "10ms"), nil, []string{"--sse-keepalive 10ms: want 0 (off) or between 1s and 1h"}},
		{"negative keep-alive", "dev", nil, map[string]string{"PINGMCP_SSE_KEEPALIVE": "-5s"}, []string{"--sse-keepalive -5s"}},
		{"admin without a token", "serve", serveArgs("--admin-addr", "127.0.0.1:9090"), nil, []string{"--admin-addr with --auth none needs --admin-token-file"}},
		{"admin token file missing", "serve", serveArgs("--admin-addr", "127.0.0.1:9090", "--admin-token-file", "/nonexistent/token"), nil, []string{"--admin-token-file"}},
		{"admin on the /mcp listener", "serve", serveArgs("--addr", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:8080", "--admin-token-file", "/nonexistent/token"), nil, []string{"--admin-addr must differ from --addr"}},
		{"probe interval too short", "serve", serveArgs("--cluster-probe-interval", "1ms"), nil, []string{"--cluster-probe-interval must be at least 50ms"}},
		{"no probe failures", "serve", serveArgs("--cluster-probe-failures", "0"), nil, []string{"--cluster-probe-failures at least 1"}},
		{"no events kept", "serve", serveArgs("--events-max", "0"), nil, []string{"--events-max must be positive"}},
		{"task lease too short to renew", "serve", serveArgs("--task-lease", "100ms"), nil, []string{"--task-lease 100ms: must be from 300ms to 10m0s"}},
		{"task lease too long", "dev", nil, map[string]string{"PINGMCP_TASK_LEASE": "1h"}, []string{"--task-lease 1h0m0s: must be from"}},
		{"task TTL within the lease", "serve", serveArgs("--task-ttl", "5s"), nil, []string{"--task-ttl 5s must be longer than --task-lease 6s"}},
		{"task TTL within the lease, from the environment", "dev", []string{"--task-lease", "1m"}, map[string]string{"PINGMCP_TASK_TTL": "1m"},
			[]string{"--task-ttl 1m0s must be longer than --task-lease 1m0s"}},
		{"events expire at once", "dev", []string{"--events-ttl", "0"}, nil, []string{"--events-ttl must be positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.cmd, tt.args, env(tt.env), new(bytes.Buffer))
			if err == nil {
				t.Fatalf("parsed without error, want mention of %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want mention of %q", err, w)
				}
			}
			for _, leak := range []string{secret, key1, key2, key1[:20], "not-base64"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("err = %v: it shows secret material %q", err, leak)
				}
			}
		})
	}
}

// The cluster's transport: mutual TLS with the three files, plaintext on
// loopback, or plaintext beyond it only when asked for.
func TestClusterTLS(t *testing.T) {
	ca, other := certtest.NewCA(t, "cluster CA"), certtest.NewCA(t, "other CA")
	node := ca.Node(t, "node")
	expired := ca.Issue(t, "expired", certtest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	stranger := other.Node(t, "stranger")
	// A CA file others may write: any of them could add their CA to it.
	shared := certtest.NewCA(t, "cluster CA").Node(t, "shared")
	if err := os.Chmod(shared.CA, 0o666); err != nil {
		t.Fatal(err)
	}
	// Cluster flags beyond loopback; the HTTP listener and auth are beside
	// the point (jwt, so that auth none's own loopback rule stays out).
	wide := func(extra ...string) []string {
		return append([]string{"--issuer", "https://pf.example.com", "--addr", "127.0.0.1:0"}, extra...)
	}
	ok := []struct {
		name string
		args []string
	}{
		{"single node, plaintext", serveArgs("--cluster-addr", "127.0.0.1:7000")},
		{"single node, plaintext beyond loopback (it accepts no connection)", wide("--cluster-addr", "0.0.0.0:7000")},
		{"loopback, plaintext, insecure asked for", serveArgs("--cluster-addr", "127.0.0.1:7000", "--cluster-seeds", "127.0.0.1:7001", "--cluster-insecure")},
		{"loopback with TLS", serveArgs(append([]string{"--cluster-provider", "automanaged"}, node.Args()...)...)},
		{"all interfaces with TLS", wide(append([]string{"--cluster-addr", "0.0.0.0:7000", "--cluster-advertised-addr", "10.1.2.3:7000"}, node.Args()...)...)},
		{"plaintext beyond loopback, insecure asked for", wide("--cluster-addr", "10.1.2.3:0", "--cluster-insecure")},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("serve", tt.args, env(nil), new(bytes.Buffer)); err != nil {
				t.Fatal(err)
			}
		})
	}
	c, err := Parse("serve", wide(), env(map[string]string{
		"PINGMCP_CLUSTER_TLS_CERT": node.Cert, "PINGMCP_CLUSTER_TLS_KEY": node.Key, "PINGMCP_CLUSTER_TLS_CA": node.CA, "PINGMCP_CLUSTER_ADDR": ":7000",
	}), new(bytes.Buffer))
	if err != nil || c.ClusterTLSCert != node.Cert || c.ClusterTLSKey != node.Key || c.ClusterTLSCA != node.CA {
		t.Fatalf("TLS from the environment: %+v %v", c, err)
	}

	refused := []struct {
		name string
		args []string
		want []string
	}{
		{"plaintext beyond loopback", wide("--cluster-addr", "10.1.2.3:0", "--cluster-provider", "automanaged"),
			[]string{`--cluster-addr "10.1.2.3:0": not a loopback address, and the cluster has no TLS`, "bearer tokens", "pingmcp certs", "--cluster-tls-cert", "--cluster-insecure"}},
		{"plaintext on all interfaces", wide("--cluster-addr", ":7000", "--cluster-seeds", "10.1.2.4:7000"), []string{`--cluster-addr ":7000"`, "bearer tokens"}},
		{"plaintext advertised beyond loopback", serveArgs("--cluster-advertised-addr", "10.1.2.3:7000", "--cluster-provider", "k8s"),
			[]string{`--cluster-advertised-addr "10.1.2.3:7000"`, "bearer tokens"}},
		{"plaintext on loopback, automanaged", serveArgs("--cluster-provider", "automanaged"),
			[]string{"--cluster-provider automanaged without TLS", "any process on this host", "pingmcp certs --dir DIR --nodes N", "--cluster-tls-cert", "--cluster-insecure"}},
		{"plaintext on loopback, seeds", serveArgs("--cluster-seeds", "127.0.0.1:7001"), []string{"--cluster-provider automanaged without TLS", "pingmcp certs"}},
		{"cert without key and CA", wide("--cluster-addr", "0.0.0.0:7000", "--cluster-tls-cert", node.Cert),
			[]string{"go together", "--cluster-tls-cert given without --cluster-tls-key, --cluster-tls-ca"}},
		{"TLS and insecure", wide(append(node.Args(), "--cluster-insecure")...), []string{"--cluster-insecure contradicts"}},
		{"missing file", wide("--cluster-tls-cert", node.Cert, "--cluster-tls-key", node.Key+".nope", "--cluster-tls-ca", node.CA),
			[]string{"--cluster-tls-key: open", "no such file"}},
		{"certificate of another CA", wide("--cluster-tls-cert", stranger.Cert, "--cluster-tls-key", stranger.Key, "--cluster-tls-ca", node.CA),
			[]string{"not one the cluster accepts", "unknown authority"}},
		{"expired certificate", wide(expired.Args()...), []string{"expired"}},
		{"key of another certificate", wide("--cluster-tls-cert", node.Cert, "--cluster-tls-key", stranger.Key, "--cluster-tls-ca", node.CA),
			[]string{"private key does not match"}},
		{"CA file that is no certificate", wide("--cluster-tls-cert", node.Cert, "--cluster-tls-key", node.Key, "--cluster-tls-ca", node.Key),
			[]string{"holds no PEM certificate"}},
		{"CA file others may write", wide(shared.Args()...), []string{"--cluster-tls-ca: " + shared.CA, "written by group or others"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("serve", tt.args, env(nil), new(bytes.Buffer))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant mention of %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error shows key material: %v", err)
			}
		})
	}
}

func TestCertsFlags(t *testing.T) {
	c, err := Parse("certs", []string{"--dir", "d"}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.CertsDir != "d" || c.CertsNodes != 1 || len(c.CertsNames) != 0 || strings.Join(c.CertsHosts, ",") != "localhost,127.0.0.1,::1" ||
		c.CertsValidity != 365*24*time.Hour || c.CertsCAValidity != 10*365*24*time.Hour {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse("certs", []string{"--names", "a, b"}, env(map[string]string{"PINGMCP_DIR": "e", "PINGMCP_HOSTS": "pingmcp.example"}), new(bytes.Buffer))
	if err != nil || c.CertsDir != "e" || strings.Join(c.CertsNames, ",") != "a,b" || strings.Join(c.CertsHosts, ",") != "pingmcp.example" {
		t.Errorf("names and environment: %+v %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--dir is required"},
		{[]string{"--dir", "d", "--nodes", "3", "--names", "a,b"}, "disagree"},
		{[]string{"--dir", "d", "--nodes", "0"}, "--nodes must be between"},
		{[]string{"--dir", "d", "--validity", "-1h"}, "must be positive"},
	} {
		if _, err := Parse("certs", tc.args, env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	var out bytes.Buffer
	if _, err := Parse("certs", []string{"--help"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, f := range []string{"dir", "nodes", "names", "hosts", "validity", "ca-validity"} {
		if !strings.Contains(out.String(), "--"+f+"\n") || !strings.Contains(out.String(), EnvName(f)) {
			t.Errorf("certs --help does not document --%s", f)
		}
	}
}

// A loopback edge whose resource is derived answers to every loopback name
// (each its own resource); a resource or public URL given is the only one,
// and so is the resource of an edge beyond loopback. The Host picks the
// resource (and is refused when it names none) unless how clients reach
// the edge is unknown: --resource alone, or beyond loopback without
// --public-url.
func TestResources(t *testing.T) {
	loopback := []string{"http://127.0.0.1:8080/mcp", "http://localhost:8080/mcp", "http://[::1]:8080/mcp"}
	for _, tc := range []struct {
		command string
		args    []string
		env     map[string]string
		want    []string
		byHost  bool
	}{
		{"dev", nil, nil, loopback, true},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031", "--addr", "127.0.0.1:8080"}, nil, loopback, true},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031"}, nil, []string{"http://localhost:8080/mcp"}, false}, // :8080, every interface
		{"dev", []string{"--addr", "localhost:8080"}, nil, []string{"http://localhost:8080/mcp", "http://127.0.0.1:8080/mcp", "http://[::1]:8080/mcp"}, true},
		{"idp", []string{"--client-secret", "s"}, nil, loopback, true},
		{"dev", []string{"--public-url", "http://localhost:8080"}, nil, []string{"http://localhost:8080/mcp"}, true},
		{"dev", nil, map[string]string{"PINGMCP_PUBLIC_URL": "http://localhost:8080"}, []string{"http://localhost:8080/mcp"}, true},
		{"dev", []string{"--resource", "http://127.0.0.1:8080/mcp"}, nil, []string{"http://127.0.0.1:8080/mcp"}, false},
		{"serve", []string{"--issuer", "https://pf.example", "--public-url", "https://mcp.example"}, nil, []string{"https://mcp.example/mcp"}, true},
		{"serve", []string{"--issuer", "https://pf.example", "--addr", "0.0.0.0:8080"}, nil, []string{"http://localhost:8080/mcp"}, false},
		{"idp", []string{"--client-secret", "s", "--resource", "https://mcp.example/mcp"}, nil, []string{"https://mcp.example/mcp"}, false},
		{"serve", []string{"--issuer", "https://pf.example", "--public-url", "https://mcp.example", "--resource", "https://mcp.example/api"}, nil, []string{"https://mcp.example/api"}, true},
		{"serve", []string{"--issuer", "https://pf.example", "--public-url", "https://mcp.example", "--resource", "HTTPS://MCP.example:443/api"}, nil, []string{"https://mcp.example/api"}, true}, // the same origin, spelt canonically
		{"dev", []string{"--public-url", "HTTP://LocalHost:8080"}, nil, []string{"http://localhost:8080/mcp"}, true},
	} {
		c, err := Parse(tc.command, tc.args, env(tc.env), new(bytes.Buffer))
		if err != nil {
			t.Fatalf("%s %v: %v", tc.command, tc.args, err)
		}
		if got := c.Resources(); !slices.Equal(got, tc.want) || c.HostNamesResource() != tc.byHost {
			t.Errorf("%s %v %v: resources %v by host %v, want %v by host %v", tc.command, tc.args, tc.env, got, c.HostNamesResource(), tc.want, tc.byHost)
		}
	}
}

// The edge holds every loopback address Resources names, and a twin the
// host lacks is no resource.
func TestLoopbackTwins(t *testing.T) {
	for _, tc := range []struct {
		command string
		args    []string
		bound   string
		want    []string
	}{
		{"dev", nil, "127.0.0.1:8080", []string{"[::1]:8080"}},
		{"dev", []string{"--addr", "localhost:8080"}, "127.0.0.1:8080", []string{"[::1]:8080"}},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031", "--addr", "[::1]:8080"}, "[::1]:8080", []string{"127.0.0.1:8080"}},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031", "--addr", "127.0.0.2:8080"}, "127.0.0.2:8080", []string{"127.0.0.1:8080", "[::1]:8080"}},
		{"dev", []string{"--public-url", "http://127.0.0.1:8080"}, "127.0.0.1:8080", nil},
		// A URL given by the name localhost: both of its addresses.
		{"dev", []string{"--public-url", "http://localhost:8080"}, "127.0.0.1:8080", []string{"[::1]:8080"}},
		{"dev", []string{"--resource", "http://localhost:8080/mcp"}, "127.0.0.1:8080", []string{"[::1]:8080"}},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031", "--addr", "[::1]:8080", "--public-url", "http://LOCALHOST:8080"}, "[::1]:8080", []string{"127.0.0.1:8080"}},
		{"dev", []string{"--public-url", "http://localhost:9999"}, "127.0.0.1:8080", nil}, // a proxy's port: not this listener's
		{"dev", []string{"--public-url", "http://localhost"}, "127.0.0.1:80", []string{"[::1]:80"}},
		{"dev", []string{"--resource", "http://127.0.0.1:8080/mcp"}, "127.0.0.1:8080", nil},
		{"serve", []string{"--issuer", "http://127.0.0.1:9031"}, "[::]:8080", nil}, // every interface: no aliases
		{"idp", []string{"--client-secret", "s"}, "127.0.0.1:9031", nil},           // no edge
	} {
		c, err := Parse(tc.command, tc.args, env(nil), new(bytes.Buffer))
		if err != nil {
			t.Fatalf("%s %v: %v", tc.command, tc.args, err)
		}
		if got := c.LoopbackTwins(tc.bound); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v bound to %s: twins %v, want %v", tc.command, tc.args, tc.bound, got, tc.want)
		}
	}

	// The authorization server and the Todo API alone: twins when the
	// URL they announce says localhost.
	for _, tc := range []struct {
		bound string
		urls  []string
		want  []string
	}{
		{"127.0.0.1:9031", []string{"http://localhost:9031"}, []string{"[::1]:9031"}},
		{"[::1]:9031", []string{"http://localhost:9031/"}, []string{"127.0.0.1:9031"}},
		{"127.0.0.1:9031", []string{"http://127.0.0.1:9031"}, nil},
		{"127.0.0.1:9031", []string{"http://localhost.:9031"}, []string{"[::1]:9031"}},
		{"127.0.0.1:9031", []string{"http://LOCALHOST.:9031/"}, []string{"[::1]:9031"}},
		{"127.0.0.1:9031", []string{"http://idp.localhost:9031"}, []string{"[::1]:9031"}},
		{"127.0.0.1:9031", []string{"http://notlocalhost:9031"}, nil},
		{"127.0.0.1:9031", []string{"%zz"}, nil},
		{"0.0.0.0:9031", []string{"http://localhost:9031"}, nil}, // every address is this server's
		{"127.0.0.1:9031", []string{"https://idp.example.com"}, nil},
	} {
		if got := LocalhostTwins(tc.bound, tc.urls...); !slices.Equal(got, tc.want) {
			t.Errorf("LocalhostTwins(%s, %v) = %v, want %v", tc.bound, tc.urls, got, tc.want)
		}
	}

	c, err := Parse("dev", nil, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	c.Unheld("[::1]:8080")
	if got, want := c.Resources(), []string{"http://127.0.0.1:8080/mcp", "http://localhost:8080/mcp"}; !slices.Equal(got, want) {
		t.Errorf("without [::1]: resources %v, want %v", got, want)
	}
	c.Rebind("127.0.0.1:8080", c.IdPAddr, c.TodoAPIAddr)
	if got := c.Resources(); slices.Contains(got, "http://[::1]:8080/mcp") {
		t.Errorf("after Rebind, resources %v name the unheld [::1] again", got)
	}
}
