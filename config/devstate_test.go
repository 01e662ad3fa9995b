package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dev keeps its authorization server's state in the user's cache directory
// unless told another file or off (flag or environment); the token
// lifetimes default to the development authorization server's.
func TestDevState(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, DefaultDevState()},
		{[]string{"--dev-state", "off"}, nil, ""},
		{[]string{"--dev-state", ""}, nil, ""},
		{nil, map[string]string{"PINGMCP_DEV_STATE": "off"}, ""},
		{[]string{"--dev-state", "/tmp/x.json"}, map[string]string{"PINGMCP_DEV_STATE": "off"}, "/tmp/x.json"},
	} {
		c, err := Parse("dev", tc.args, env(tc.env), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if c.DevState != tc.want {
			t.Errorf("%v %v: dev state %q, want %q", tc.args, tc.env, c.DevState, tc.want)
		}
		if c.AccessTokenTTL != 10*time.Minute || c.RefreshTokenTTL != 8*time.Hour {
			t.Errorf("token lifetimes %s, %s", c.AccessTokenTTL, c.RefreshTokenTTL)
		}
	}
	if dir, err := os.UserCacheDir(); err == nil && DefaultDevState() != filepath.Join(dir, "pingmcp", "dev", "state.json") {
		t.Errorf("default dev state %q, not in %s", DefaultDevState(), dir)
	}
	c, err := Parse("dev", []string{"--dev-state", "rel.json"}, env(nil), new(bytes.Buffer))
	if err != nil || !filepath.IsAbs(c.DevState) {
		t.Errorf("a relative --dev-state is made absolute: %q %v", c.DevState, err)
	}
	for _, cmd := range []string{"dev", "idp"} {
		args := []string{"--access-token-ttl", "30s", "--refresh-token-ttl", "1h", "--client-secret", "s"}
		c, err := Parse(cmd, args, env(nil), new(bytes.Buffer))
		if err != nil || c.AccessTokenTTL != 30*time.Second || c.RefreshTokenTTL != time.Hour {
			t.Errorf("%s: %v %+v", cmd, err, c)
		}
		if _, err := Parse(cmd, []string{"--access-token-ttl", "0s", "--client-secret", "s"}, env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--access-token-ttl") {
			t.Errorf("%s: a zero access token lifetime: %v", cmd, err)
		}
	}
}
