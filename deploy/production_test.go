package deploy

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/helmtest"
)

// The chart, as its operator and an attacker in the cluster meet it. Each
// test was found by a review of the deployment.

// A Redis URL with a password is never written into the Deployment (whoever
// may read Deployments or Pods, the built-in view role among them, reads
// it): the chart refuses one in redis.url, and takes the whole URL from a
// Secret (redis.urlSecret).
func TestRedisPasswordNeverInTheDeployment(t *testing.T) {
	_, err := helmtest.Render(chartDir, helmtest.Options{Name: "pingmcp", Namespace: "pingmcp",
		Values: map[string]any{"redis": map[string]any{"url": "rediss://:s3cr3t@redis.example.com:6380/0"}}})
	if err == nil || !strings.Contains(err.Error(), "redis.urlSecret") {
		t.Errorf("a redis.url with a password: %v, want a refusal naming redis.urlSecret", err)
	}
	chart, r := renderChart(t, helmtest.Options{Name: "pingmcp", Namespace: "pingmcp",
		Values: map[string]any{"redis": map[string]any{"urlSecret": map[string]any{"name": "pingmcp-redis", "key": "url"}}}})
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string
							Value     string
							ValueFrom *struct {
								SecretKeyRef struct{ Name, Key string }
							}
						}
					}
				}
			}
		}
	}
	decodeLoose(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	found := false
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "PINGMCP_REDIS_URL" {
			found = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "pingmcp-redis" && e.ValueFrom.SecretKeyRef.Key == "url"
		}
	}
	if !found {
		t.Errorf("redis.urlSecret: PINGMCP_REDIS_URL is not taken from the Secret:\n%s", r.Manifest)
	}
}

// The admin port (its token drains nodes, ends sessions, revokes users) is
// admitted only from metrics.allowedFrom, not from every pod of every
// namespace.
func TestAdminPortOnlyFromAllowed(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, map[string]any{"metrics": map[string]any{"enabled": true}}))
	var np struct {
		Spec struct {
			Ingress []struct {
				From  []map[string]any
				Ports []struct{ Port any }
			}
		}
	}
	decodeLoose(t, chart["networking.k8s.io/v1/NetworkPolicy pingmcp/pingmcp"], &np)
	admitted := false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != "admin" {
				continue
			}
			admitted = true
			b, _ := json.Marshal(rule.From)
			if len(rule.From) == 0 || !strings.Contains(string(b), "monitoring") {
				t.Errorf("the admin port is admitted from %s; want the monitoring namespace alone", b)
			}
		}
	}
	if !admitted {
		t.Error("metrics.enabled: the admin port is not admitted at all")
	}
}

// A terminating pod keeps listening a moment (preStop), while endpoints
// stop routing to it, and a new pod counts as available only a while
// after it is ready (minReadySeconds), so that a rollout replaces pods one
// at a time; the grace period covers the preStop sleep, the drain and the
// leave.
func TestRolloutAndTermination(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, nil))
	var d struct {
		Spec struct {
			MinReadySeconds int
			Template        struct {
				Spec struct {
					TerminationGracePeriodSeconds int
					Containers                    []struct {
						Args      []string
						Lifecycle struct {
							PreStop struct {
								Sleep struct{ Seconds int }
							}
						}
					}
				}
			}
		}
	}
	decodeLoose(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	c := d.Spec.Template.Spec.Containers[0]
	if c.Lifecycle.PreStop.Sleep.Seconds < 5 {
		t.Errorf("preStop sleep %d s: the listener closes while endpoints still route to the pod", c.Lifecycle.PreStop.Sleep.Seconds)
	}
	if d.Spec.MinReadySeconds < 20 {
		t.Errorf("minReadySeconds %d: a rollout stops an old pod as soon as a new one listens", d.Spec.MinReadySeconds)
	}
	drain := 0
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--drain-timeout="); ok {
			if n, err := parseSeconds(v); err == nil {
				drain = n
			}
		}
	}
	if need := c.Lifecycle.PreStop.Sleep.Seconds + drain + 10; drain == 0 || d.Spec.Template.Spec.TerminationGracePeriodSeconds < need {
		t.Errorf("terminationGracePeriodSeconds %d, drain %d s: want at least %d (preStop, drain, leave)", d.Spec.Template.Spec.TerminationGracePeriodSeconds, drain, need)
	}
}

// parseSeconds reads a duration in whole seconds ("20s").
func parseSeconds(s string) (int, error) {
	d, err := time.ParseDuration(s)
	return int(d.Seconds()), err
}

// decodeLoose decodes the fields of o that v names.
func decodeLoose(t *testing.T, o object, v any) {
	t.Helper()
	b, err := json.Marshal(o)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", objectKey(o), err)
	}
}

// Without a memory limit, or with one of 0 (none, to Kubernetes), the chart
// gives pingmcp no memory limit (the downward API would give the node's
// allocatable memory), no GOMEMLIMIT, and no GOGC=400 (which only the soft
// limit bounds).
func TestNoMemoryLimitNoGOGC(t *testing.T) {
	for _, limits := range []any{nil, map[string]any{"memory": "0"}, map[string]any{"memory": 0}, map[string]any{"memory": "0Mi"}, map[string]any{"memory": "0.0Gi"}} {
		chart, r := renderChart(t, defaultRelease(t, map[string]any{
			"resources": map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "256Mi"}, "limits": limits}}))
		if strings.Contains(r.Manifest, config.EnvName("memory-limit")) || strings.Contains(r.Manifest, "GOMEMLIMIT") || strings.Contains(r.Manifest, "name: GOGC") {
			t.Errorf("limits %v: no memory limit, yet it, GOMEMLIMIT or GOGC rendered:\n%v", limits, chart["apps/v1/Deployment pingmcp/pingmcp"])
		}
	}
	if _, r := renderChart(t, defaultRelease(t, nil)); !strings.Contains(r.Manifest, config.EnvName("memory-limit")) || !strings.Contains(r.Manifest, "name: GOGC") {
		t.Error("with the default memory limit, the limit and GOGC are not rendered")
	}
}

// A grace period shorter than the preStop sleep, the drain and the leave is
// refused: the kubelet would kill pods mid-drain. drainTimeout is read as
// Go writes a duration in whole units (1m30s, 90000ms, 2h); one the chart
// cannot read is refused rather than left unchecked.
func TestGraceShorterThanDrainRefused(t *testing.T) {
	for _, v := range []map[string]any{{"drainTimeout": "60s"}, {"drainTimeout": "1m"}, {"terminationGracePeriodSeconds": 30},
		{"drainTimeout": "1m30s"}, {"drainTimeout": "90000ms"}, {"drainTimeout": "2h"},
		{"drainTimeout": "1m30s", "terminationGracePeriodSeconds": 104}, {"drainTimeout": "90001ms", "terminationGracePeriodSeconds": 105}} {
		_, err := helmtest.Render(chartDir, defaultRelease(t, v))
		if err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSeconds") {
			t.Errorf("%v: %v, want a refusal", v, err)
		}
	}
	for _, v := range []map[string]any{{"drainTimeout": "60s", "terminationGracePeriodSeconds": 80},
		{"drainTimeout": "1m30s", "terminationGracePeriodSeconds": 105}, {"drainTimeout": "90000ms", "terminationGracePeriodSeconds": 105},
		{"drainTimeout": "0"}} {
		if _, err := helmtest.Render(chartDir, defaultRelease(t, v)); err != nil {
			t.Errorf("%v: %v", v, err)
		}
	}
	for _, bad := range []string{"1.5m", "90", "", "20 s", "1s1m"} {
		_, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"drainTimeout": bad}))
		if err == nil || !strings.Contains(err.Error(), "drainTimeout") {
			t.Errorf("drainTimeout %q: %v, want a refusal naming it", bad, err)
		}
	}
}

// With secrets.generate, every render makes new state keys and a new
// cluster CA (each helm upgrade replaces the Secrets), and pods read them
// only as they start: the pod template changes with them, so that an
// upgrade rolls every pod onto the new ones. It did not change: the running
// pods kept the old CA and keys, and the next pod to start (a scale-up, an
// eviction, a restart) got the new ones, a member its peers could neither
// reach nor be reached by over mutual TLS, and that could not unseal their
// sessions' snapshots. Found by a review.
func TestHelmTrialSecretsRollThePods(t *testing.T) {
	type rendered struct{ keys, tls, template string }
	render := func() rendered {
		chart, _ := renderChart(t, defaultRelease(t, map[string]any{"secrets": map[string]any{"generate": true}}))
		var d struct {
			Spec struct {
				Template struct {
					Metadata struct{ Annotations map[string]string }
				}
			}
		}
		decodeLoose(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
		var keys, tls struct{ StringData map[string]string }
		decodeLoose(t, chart["v1/Secret pingmcp/pingmcp-trial-state-keys"], &keys)
		decodeLoose(t, chart["v1/Secret pingmcp/pingmcp-trial-cluster-tls"], &tls)
		tmpl, _ := json.Marshal(chart["apps/v1/Deployment pingmcp/pingmcp"]["spec"].(map[string]any)["template"])
		ca := tls.StringData["ca.crt"]
		if keys.StringData["state-keys"] == "" || ca == "" {
			t.Fatalf("the trial Secrets hold no state keys or no CA: %v %v", keys.StringData, tls.StringData)
		}
		// The pod template names what the Secrets of the same render hold,
		// not a value drawn apart from them.
		data := map[string]string{"state-keys": keys.StringData["state-keys"]}
		for k, v := range tls.StringData {
			data[k] = v
		}
		b, _ := json.Marshal(data)
		if got, want := d.Spec.Template.Metadata.Annotations["checksum/trial-secrets"], fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("the pod template's checksum/trial-secrets is %q, not the checksum of the trial Secrets rendered with it (%s)", got, want)
		}
		return rendered{keys.StringData["state-keys"], ca, string(tmpl)}
	}
	install, upgrade := render(), render()
	if install.keys == upgrade.keys || install.tls == upgrade.tls {
		t.Fatal("two renders generated the same trial Secrets")
	}
	if install.template == upgrade.template {
		t.Errorf("an upgrade replaces the trial state keys and cluster CA but leaves the pod template as it was: the running pods keep the old ones, and a pod that starts later gets the new ones, which its peers do not trust:\n%s", upgrade.template)
	}
}
