package config

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The limit flags have their defaults in dev and serve, are read from the
// environment like the others, and refuse values that make no sense.
func TestLimitFlags(t *testing.T) {
	for _, cmd := range []string{"dev", "serve"} {
		c, err := Parse(cmd, []string{"--auth", "none", "--addr", "127.0.0.1:0"}, env(nil), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if c.RateLimit != 20 || c.RateBurst != 40 || c.MaxConcurrentRequests != 16 || c.MaxStreamsPerPrincipal != 8 ||
			c.MaxStreamsPerSession != 4 || c.EventsBuffer != 10000 || c.MaxHeaderBytes != 64<<10 ||
			c.UpstreamTimeout != 10*time.Second || c.RedisTimeout != 2*time.Second ||
			c.UserRateLimit != 40 || c.UserRateBurst != 80 || c.UserMaxConcurrent != 32 || c.UserMaxStreams != 16 ||
			c.MaxSessionsPerUser != 100 || c.MaxTasksPerUser != 100 || c.TrustedProxies != nil {
			t.Errorf("%s limit defaults: %+v", cmd, c)
		}
	}
	c, err := Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--max-streams-per-session", "0"},
		env(map[string]string{"PINGMCP_RATE_BURST": "7", "PINGMCP_UPSTREAM_TIMEOUT": "3s", "PINGMCP_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,2001:db8::/32, ::ffff:172.16.0.0/108",
			"PINGMCP_MAX_SESSIONS_PER_USER": "5", "PINGMCP_MAX_TASKS_PER_USER": "0"}), new(bytes.Buffer))
	if err != nil {
		t.Fatalf("zero turns a limit off: %v", err)
	}
	if c.RateLimit != 0 || c.MaxStreamsPerSession != 0 || c.RateBurst != 7 || c.UpstreamTimeout != 3*time.Second || c.MaxTasksPerUser != 0 {
		t.Errorf("flags and environment not applied: %+v", c)
	}
	if fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 192.0.2.1/32 2001:db8::/32 172.16.0.0/12]" || c.MaxSessionsPerUser != 5 {
		t.Errorf("trusted proxies %v, sessions per user %d", c.TrustedProxies, c.MaxSessionsPerUser)
	}
	for _, bad := range [][]string{
		{"--rate-limit", "-1"}, {"--rate-burst", "0"}, {"--max-concurrent-requests", "-1"}, {"--max-streams-per-principal", "-2"},
		{"--max-streams-per-session", "-1"}, {"--events-buffer", "0"}, {"--max-header-bytes", "100"},
		{"--upstream-timeout", "0s"}, {"--redis-timeout", "-1s"},
		{"--user-rate-limit", "-1"}, {"--user-rate-burst", "0"}, {"--user-max-concurrent-requests", "-1"}, {"--user-max-streams", "-1"},
		{"--max-sessions-per-user", "-1"}, {"--max-tasks-per-user", "-1"}, {"--trusted-proxies", "10.0.0.0/33"}, {"--trusted-proxies", "proxy.example"}, {"--trusted-proxies", "::ffff:0.0.0.0/80"},
		{"--session-idle-timeout", "0"}, // with the default --max-sessions-per-user
	} {
		_, err := Parse("serve", append([]string{"--auth", "none", "--addr", "127.0.0.1:0"}, bad...), env(nil), new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "-")) {
			t.Errorf("%v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
	// todo-api and idp have none of them.
	if _, err := Parse("todo-api", []string{"--issuer", "http://x", "--rate-limit", "1"}, env(nil), new(bytes.Buffer)); err == nil {
		t.Error("todo-api took --rate-limit")
	}
}
