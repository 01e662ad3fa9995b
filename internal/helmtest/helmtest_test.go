package helmtest

import (
	"strings"
	"testing"
)

func TestRenderNeedsRedis(t *testing.T) {
	_, err := Render("../../deploy/helm/pingmcp", Options{Name: "pingmcp", Namespace: "pingmcp"})
	if err == nil || !strings.Contains(err.Error(), "redis.url is required") {
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
