package deploy

import (
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/helmtest"
)

// TestHelmNotesNameTheSecrets: the NOTES name every Secret the release
// reads by reference, and only those: the Redis URL's when redis.urlSecret
// names one (and no trial Redis replaces it), the grant manager's only with
// a grantsUser, the state keys and cluster TLS only when not generated.
func TestHelmNotesNameTheSecrets(t *testing.T) {
	secrets := func(o helmtest.Options) string {
		t.Helper()
		_, r := renderChart(t, o)
		_, list, ok := strings.Cut(r.Notes, "Secrets read by reference")
		if !ok {
			t.Fatalf("the NOTES list no Secrets:\n%s", r.Notes)
		}
		list, _, _ = strings.Cut(list, "\n")
		return list
	}
	urlSecret := map[string]any{"urlSecret": map[string]any{"name": "pingmcp-redis"}}
	for _, c := range []struct {
		name      string
		values    map[string]any
		want, not []string
	}{
		{"redis.url", nil,
			[]string{"pingmcp-exchange-client", "pingmcp-grant-manager", "pingmcp-state-keys", "pingmcp-cluster-tls"}, []string{"pingmcp-redis"}},
		{"redis.urlSecret", map[string]any{"redis": urlSecret},
			[]string{"pingmcp-exchange-client", "pingmcp-grant-manager", "pingmcp-redis", "pingmcp-state-keys", "pingmcp-cluster-tls"}, nil},
		{"redis.urlSecret with the trial Redis", map[string]any{"redis": map[string]any{"urlSecret": urlSecret["urlSecret"], "trial": map[string]any{"enabled": true}}},
			[]string{"pingmcp-exchange-client"}, []string{"pingmcp-redis"}},
		{"trial, no grantsUser", map[string]any{"redis": map[string]any{"trial": map[string]any{"enabled": true}}, "secrets": map[string]any{"generate": true}, "grantsUser": ""},
			[]string{"pingmcp-exchange-client"}, []string{"pingmcp-grant-manager", "pingmcp-state-keys", "pingmcp-cluster-tls", "pingmcp-redis"}},
	} {
		got := secrets(defaultRelease(t, c.values))
		for _, s := range c.want {
			if !strings.Contains(got, s) {
				t.Errorf("%s: the NOTES' Secrets%s lack %s", c.name, got, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(got, s+",") || strings.Contains(got, s+".") {
				t.Errorf("%s: the NOTES' Secrets%s name %s", c.name, got, s)
			}
		}
	}
}
