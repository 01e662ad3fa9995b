package deploy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/helmtest"
)

// metrics.allowedFrom: [] (an operator meaning "no one") is refused: the
// admin rule with `from: []` is one a NetworkPolicy reads as "every
// source". Found by a review.
func TestAdminPortEmptyAllowedFromRefused(t *testing.T) {
	r, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"metrics": map[string]any{"enabled": true, "allowedFrom": []any{}}}))
	if err != nil {
		return // refused
	}
	chart := splitYAML(t, r.Manifest)
	var np struct {
		Spec struct {
			Ingress []struct {
				From  []map[string]any
				Ports []struct{ Port any }
			}
		}
	}
	decodeLoose(t, chart["networking.k8s.io/v1/NetworkPolicy pingmcp/pingmcp"], &np)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == "admin" && len(rule.From) == 0 {
				b, _ := json.Marshal(rule)
				t.Errorf("allowedFrom [] admits the admin port from every source: %s", b)
			}
		}
	}
}

// The preStop sleep needs Kubernetes 1.30 (the kubelet's sleep action): the
// chart refuses an older cluster rather than render a Deployment its API
// server rejects, or one whose pods get no pause. Found by a review.
func TestPreStopSleepNeedsKubernetes130(t *testing.T) {
	o := defaultRelease(t, nil)
	o.KubeVersion = "v1.29.4"
	r, err := helmtest.Render(chartDir, o)
	if err != nil {
		return // refused
	}
	if strings.Contains(r.Manifest, "sleep:") {
		t.Errorf("kubeVersion >=1.27 accepted 1.29, and the Deployment has a preStop sleep handler, which a 1.29 API server (PodLifecycleSleepAction off) rejects")
	}
}

// The URLs the password check must tell apart.
func TestRedisURLForms(t *testing.T) {
	for url, refused := range map[string]bool{
		"rediss://redis.example.com:6380/0":         false,
		"rediss://default@redis.example.com:6380/0": false,
		"rediss://:p%40ss@redis.example.com:6380/0": true,
		"rediss://u:pass@redis.example.com:6380/0":  true,
	} {
		_, err := helmtest.Render(chartDir, helmtest.Options{Name: "pingmcp", Namespace: "pingmcp",
			Values: map[string]any{"redis": map[string]any{"url": url}}})
		got := err != nil && strings.Contains(err.Error(), "holds a password")
		if got != refused {
			t.Errorf("%s: refused %v (%v), want %v", url, got, err, refused)
		}
	}
}
