package helmtest

import (
	"strings"
	"testing"
)

func TestRenderNeedsRedis(t *testing.T) {
	_, err := Render("../../deploy/helm/pingmcp", Options{Name: "pingmcp", Namespace: "pingmcp"})
	if err == nil || !strings.Contains(err.Error(), "redis.urlSecret") || !strings.Contains(err.Error(), "is required") {
		t.Fatalf("rendered without a Redis: %v", err)
	}
	r, err := Render("../../deploy/helm/pingmcp", Options{Name: "pingmcp", Namespace: "pingmcp", Values: map[string]any{"redis": map[string]any{"url": "redis://r:6379/0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Manifest, "kind: Deployment") || r.Notes == "" {
		t.Errorf("manifest %q, notes %q", r.Manifest, r.Notes)
	}
}

// TestLint: helm lint finds nothing to warn of, for a production install
// and a trial one (with the egress policy).
func TestLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"redis.url": {"redis": map[string]any{"url": "rediss://redis.example.com:6380/0"}},
		"trial": {
			"redis":         map[string]any{"trial": map[string]any{"enabled": true}},
			"secrets":       map[string]any{"generate": true},
			"metrics":       map[string]any{"enabled": true, "scrapeTokenSecret": map[string]any{"name": "pingmcp-metrics-token"}},
			"networkPolicy": map[string]any{"egress": map[string]any{"enabled": true}},
		},
	} {
		msgs, err := Lint("../../deploy/helm/pingmcp", "pingmcp", values)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			t.Errorf("%s: helm lint: %s", name, m)
		}
	}
}

// TestSchemaRefusesMisspeltValues: values.schema.json makes a misspelt key
// an error rather than a setting silently ignored.
func TestSchemaRefusesMisspeltValues(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"redis.URL":        {"redis": map[string]any{"URL": "redis://r:6379/0"}},
		"secret.generate":  {"secret": map[string]any{"generate": true}, "redis": map[string]any{"url": "redis://r:6379/0"}},
		"replicaCount: -1": {"replicaCount": -1, "redis": map[string]any{"url": "redis://r:6379/0"}},
	} {
		if _, err := Render("../../deploy/helm/pingmcp", Options{Name: "pingmcp", Namespace: "pingmcp", Values: values}); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: rendered, or failed for another reason: %v", name, err)
		}
	}
}
