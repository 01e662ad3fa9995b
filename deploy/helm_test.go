package deploy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/helmtest"
)

// The Helm chart (helm/pingmcp) and the kustomization must not drift: the
// chart rendered with its default values (and a Redis URL, which it asks
// for) gives the same pingmcp objects as `kustomize build deploy/`, up to
// the labels Helm adds. deploy/'s manifests are the one set of expectations:
// the other tests of this package check them, and this one checks the chart
// against them, field by field.

const chartDir = "helm/pingmcp"

// helmOnlyLabels are the labels the chart adds to what kustomize's objects
// carry (and selects on: two releases in one namespace select their own
// pods).
var helmOnlyLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"}

// object is one decoded document, generic.
type object = map[string]any

func objectKey(o object) string {
	meta, _ := o["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string) // none: cluster-scoped
	return fmt.Sprintf("%s/%s %s/%s", o["apiVersion"], o["kind"], ns, meta["name"])
}

func splitYAML(t *testing.T, stream string) map[string]object {
	t.Helper()
	out := map[string]object{}
	for i, doc := range documentSeparator.Split(stream, -1) {
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("document %d: %v\n%s", i+1, err, doc)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		var o object
		if err := json.Unmarshal(j, &o); err != nil {
			t.Fatal(err)
		}
		k := objectKey(o)
		if _, dup := out[k]; dup {
			t.Errorf("%s rendered twice", k)
		}
		out[k] = o
	}
	return out
}

// kustomizeBuild is `kustomize build deploy/`, with kustomize's own library.
func kustomizeBuild(t *testing.T) map[string]object {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	y, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return splitYAML(t, string(y))
}

// kustomizeRedisURL is the Redis URL deploy/pingmcp.yaml gives pingmcp.
func kustomizeRedisURL(t *testing.T) string {
	t.Helper()
	d := load(t).deployment("pingmcp")
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "PINGMCP_REDIS_URL" {
			return e.Value
		}
	}
	t.Fatal("deploy/pingmcp.yaml gives no PINGMCP_REDIS_URL")
	return ""
}

func renderChart(t *testing.T, o helmtest.Options) (map[string]object, helmtest.Rendered) {
	t.Helper()
	r, err := helmtest.Render(chartDir, o)
	if err != nil {
		t.Fatal(err)
	}
	return splitYAML(t, r.Manifest), r
}

// defaultRelease is the release the chart is compared as: named pingmcp in
// the namespace pingmcp, so that its objects have deploy/'s names.
func defaultRelease(t *testing.T, values map[string]any) helmtest.Options {
	v := map[string]any{"redis": map[string]any{"url": kustomizeRedisURL(t)}}
	for k, x := range values {
		v[k] = x
	}
	return helmtest.Options{Name: "pingmcp", Namespace: "pingmcp", Values: v}
}

// helmOnlyLabelLiteral is an entry of a CEL map literal naming one of
// helmOnlyLabels (the pod labels of the chart's ValidatingAdmissionPolicy).
var helmOnlyLabelLiteral = regexp.MustCompile(`'(` + strings.Join(helmOnlyLabelPatterns(), "|") + `)': '[^']*', `)

func helmOnlyLabelPatterns() []string {
	var out []string
	for _, l := range helmOnlyLabels {
		out = append(out, regexp.QuoteMeta(l))
	}
	return out
}

// normalize drops what only Helm adds: its labels wherever a label map or
// a selector is, or a CEL map literal, and metadata annotations.
func normalize(v any) any {
	switch x := v.(type) {
	case string:
		return helmOnlyLabelLiteral.ReplaceAllString(x, "")
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if slices.Contains(helmOnlyLabels, k) {
				continue
			}
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// differences lists the paths at which a and b differ.
func differences(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		var out []string
		for _, k := range sortedKeys(keys) {
			out = append(out, differences(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, differences(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, ja, jb)}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHelmChartMatchesKustomize renders the chart with its default values
// and compares each pingmcp object with kustomize's: the Deployment (pod
// template: args, env, GOMEMLIMIT, ports, probes, resources,
// securityContext, volumes, spreading; strategy), the Service, the
// ServiceAccount, the Role's rules and the RoleBinding, the
// PodDisruptionBudget, the autoscaler and the NetworkPolicy.
func TestHelmChartMatchesKustomize(t *testing.T) {
	kust := kustomizeBuild(t)
	chart, _ := renderChart(t, defaultRelease(t, nil))
	want := []string{
		"v1/ServiceAccount pingmcp/pingmcp",
		"rbac.authorization.k8s.io/v1/Role pingmcp/pingmcp-cluster-membership",
		"rbac.authorization.k8s.io/v1/RoleBinding pingmcp/pingmcp-cluster-membership",
		"apps/v1/Deployment pingmcp/pingmcp",
		"v1/Service pingmcp/pingmcp",
		"policy/v1/PodDisruptionBudget pingmcp/pingmcp",
		"autoscaling/v2/HorizontalPodAutoscaler pingmcp/pingmcp",
		"networking.k8s.io/v1/NetworkPolicy pingmcp/pingmcp",
		"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy /pingmcp-cluster-membership.pingmcp",
		"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding /pingmcp-cluster-membership.pingmcp",
	}
	var got []string
	for k := range chart {
		got = append(got, k)
	}
	sort.Strings(got)
	if w := slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Errorf("the chart renders\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
	for _, k := range want {
		c, ok := chart[k]
		if !ok {
			continue
		}
		kv, ok := kust[k]
		if !ok {
			t.Errorf("%s: the chart has it, kustomize build deploy/ does not", k)
			continue
		}
		cm := c["metadata"].(map[string]any)
		if l, _ := cm["labels"].(map[string]any); l["app.kubernetes.io/instance"] != "pingmcp" || l["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s: labels %v, want the release's", k, l)
		}
		delete(cm, "annotations")
		for _, d := range differences(k, normalize(c), normalize(kv)) {
			t.Error(d)
		}
	}
	// The chart's selectors select its release's pods, kustomize's the same
	// pods without the instance label.
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	if d.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "pingmcp" || d.Spec.Template.Labels["app.kubernetes.io/instance"] != "pingmcp" {
		t.Errorf("the chart's Deployment does not select its release's pods: selector %v, pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

func decodeObject(t *testing.T, o object, v any) {
	t.Helper()
	j, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(j, v); err != nil {
		t.Fatalf("%s: %v", objectKey(o), err)
	}
}

// TestHelmTrialRedisMatchesKustomize: the chart's trial Redis is deploy/'s
// demo Redis (pod template, Service ports, NetworkPolicy), under the
// release's names.
func TestHelmTrialRedisMatchesKustomize(t *testing.T) {
	kust := kustomizeBuild(t)
	chart, r := renderChart(t, helmtest.Options{Name: "pingmcp", Namespace: "pingmcp", Values: map[string]any{
		"redis": map[string]any{"trial": map[string]any{"enabled": true}},
	}})
	for _, pair := range [][2]string{
		{"apps/v1/Deployment pingmcp/pingmcp-redis", "apps/v1/Deployment pingmcp/redis"},
		{"v1/Service pingmcp/pingmcp-redis", "v1/Service pingmcp/redis"},
		{"networking.k8s.io/v1/NetworkPolicy pingmcp/pingmcp-redis", "networking.k8s.io/v1/NetworkPolicy pingmcp/redis"},
	} {
		c, k := chart[pair[0]], kust[pair[1]]
		if c == nil || k == nil {
			t.Errorf("%s (chart) or %s (kustomize) missing", pair[0], pair[1])
			continue
		}
		for _, d := range differences(pair[0]+".spec", normalize(c["spec"]), normalize(k["spec"])) {
			// deploy/'s Redis admits every pod of pingmcp (the Todo API
			// too); the chart's, only pingmcp's own.
			if strings.Contains(d, ".ingress[0].from[0].podSelector.matchLabels") {
				continue
			}
			t.Error(d)
		}
	}
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	env := d.Spec.Template.Spec.Containers[0].Env
	i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "PINGMCP_REDIS_URL" })
	if i < 0 || env[i].Value != "redis://pingmcp-redis.pingmcp.svc.cluster.local:6379/0" {
		t.Errorf("PINGMCP_REDIS_URL with the trial Redis: %v", env)
	}
	if !strings.Contains(r.Notes, "NOT FOR PRODUCTION") || !strings.Contains(r.Notes, "redis.trial.enabled=true") {
		t.Errorf("the NOTES of a trial Redis do not say loudly that it is not for production:\n%s", r.Notes)
	}
}

// TestHelmTrialSecrets: with secrets.generate the chart makes state keys of
// the form pingmcp wants and a CA and node certificate that pass the checks
// a node makes of its cluster TLS files, and says loudly that this is for a
// trial.
func TestHelmTrialSecrets(t *testing.T) {
	chart, r := renderChart(t, defaultRelease(t, map[string]any{"secrets": map[string]any{"generate": true}}))
	var keys, certs corev1.Secret
	decodeObject(t, chart["v1/Secret pingmcp/pingmcp-trial-state-keys"], &keys)
	decodeObject(t, chart["v1/Secret pingmcp/pingmcp-trial-cluster-tls"], &certs)
	id, key, ok := strings.Cut(keys.StringData["state-keys"], ":")
	if b, err := base64.StdEncoding.DecodeString(key); !ok || id == "" || err != nil || len(b) != 32 {
		t.Errorf("state-keys %q: want keyid:<32 bytes in base64>", keys.StringData["state-keys"])
	}
	pair, err := tls.X509KeyPair([]byte(certs.StringData["tls.crt"]), []byte(certs.StringData["tls.key"]))
	if err != nil {
		t.Fatalf("tls.crt and tls.key: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(certs.StringData["ca.crt"])) {
		t.Fatal("ca.crt holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	// A node is the server of the connections it accepts and the client of
	// those it makes: the same certificate must verify as both.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("the node certificate does not verify for %v: %v", usage, err)
		}
	}
	if b, _ := pem.Decode([]byte(certs.StringData["ca.crt"])); b == nil {
		t.Error("ca.crt is no PEM")
	}
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	spec := d.Spec.Template.Spec
	if v := spec.Volumes[slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "cluster-tls" })]; v.Secret == nil || v.Secret.SecretName != certs.Name {
		t.Errorf("the cluster-tls volume is %+v, not the generated Secret %s", v.VolumeSource, certs.Name)
	}
	env := spec.Containers[0].Env
	if i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "PINGMCP_STATE_KEYS" }); i < 0 ||
		env[i].ValueFrom.SecretKeyRef.Name != keys.Name || env[i].ValueFrom.SecretKeyRef.Key != "state-keys" {
		t.Errorf("PINGMCP_STATE_KEYS does not come from the generated Secret %s", keys.Name)
	}
	if !strings.Contains(r.Notes, "NOT FOR PRODUCTION") || !strings.Contains(r.Notes, "secrets.generate=true") {
		t.Errorf("the NOTES of generated Secrets do not say loudly that they are not for production:\n%s", r.Notes)
	}
	// Without the trial settings the NOTES warn of nothing.
	if _, r := renderChart(t, defaultRelease(t, nil)); strings.Contains(r.Notes, "WARNING") {
		t.Errorf("the default NOTES warn:\n%s", r.Notes)
	}
}

// TestHelmServiceMonitor: the ServiceMonitor is rendered only where the
// cluster serves monitoring.coreos.com/v1, and it scrapes the admin port
// with the metrics token (metrics.scrapeTokenSecret), never the admin
// token: without a scrape token, or with the admin token's Secret and key
// as one, the chart refuses to render it; with the ServiceMonitor off it
// renders without one.
func TestHelmServiceMonitor(t *testing.T) {
	scrape := map[string]any{"name": "pingmcp-metrics-token", "key": "scrape"}
	values := map[string]any{"metrics": map[string]any{"enabled": true, "scrapeTokenSecret": scrape}}
	const sm = "monitoring.coreos.com/v1/ServiceMonitor pingmcp/pingmcp"
	chart, _ := renderChart(t, defaultRelease(t, values))
	if _, ok := chart[sm]; ok {
		t.Error("a ServiceMonitor on a cluster without monitoring.coreos.com/v1")
	}
	o := defaultRelease(t, values)
	o.APIVersions = []string{"monitoring.coreos.com/v1"}
	chart, r := renderChart(t, o)
	m, ok := chart[sm]
	if !ok {
		t.Fatal("no ServiceMonitor on a cluster with monitoring.coreos.com/v1")
	}
	var svc corev1.Service
	decodeObject(t, chart["v1/Service pingmcp/pingmcp-admin"], &svc)
	var monitor struct {
		Spec struct {
			Selector  struct{ MatchLabels map[string]string }
			Endpoints []struct {
				Port, Path    string
				Authorization struct {
					Type        string
					Credentials struct{ Name, Key string }
				}
			}
		}
	}
	decodeLoose(t, m, &monitor)
	for k, v := range monitor.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%v, the admin Service is labelled %v", k, v, svc.Labels)
		}
	}
	if e := monitor.Spec.Endpoints; len(e) != 1 || e[0].Port != "admin" || e[0].Path != "/metrics" || e[0].Authorization.Type != "Bearer" ||
		e[0].Authorization.Credentials.Name != "pingmcp-metrics-token" || e[0].Authorization.Credentials.Key != "scrape" {
		t.Errorf("the ServiceMonitor's endpoints %+v: want the admin port's /metrics with the scrape token's Secret and key", e)
	}
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	c := d.Spec.Template.Spec.Containers[0]
	if _, p := containerPort(&d.Spec.Template.Spec, "admin"); p == nil || !slices.Contains(c.Args, fmt.Sprintf("--admin-addr=:%d", p.ContainerPort)) ||
		!slices.Contains(c.Args, "--admin-token-file=/etc/pingmcp/admin/token") || !slices.Contains(c.Args, "--metrics-token-file=/etc/pingmcp/metrics/token") {
		t.Errorf("metrics.enabled: args %v, ports %v: want --admin-addr on the admin port, --admin-token-file and --metrics-token-file", c.Args, c.Ports)
	}
	if !strings.Contains(r.Notes, "pingmcp-admin-token, pingmcp-metrics-token.") {
		t.Errorf("the NOTES do not name the scrape token's Secret:\n%s", r.Notes)
	}

	// No scrape token, or the admin token as one: refused, saying why.
	for name, metrics := range map[string]map[string]any{
		"no scrape token":           {"enabled": true},
		"the admin token to scrape": {"enabled": true, "scrapeTokenSecret": map[string]any{"name": "pingmcp-admin-token", "key": "token"}},
	} {
		o.Values = defaultRelease(t, map[string]any{"metrics": metrics}).Values
		_, err := helmtest.Render(chartDir, o)
		if err == nil || !strings.Contains(err.Error(), "metrics.scrapeTokenSecret") || !strings.Contains(err.Error(), "admin token") {
			t.Errorf("%s with a ServiceMonitor: %v, want the chart to refuse it naming metrics.scrapeTokenSecret", name, err)
		}
	}
	// Without the ServiceMonitor, no scrape token is needed.
	o.Values = defaultRelease(t, map[string]any{"metrics": map[string]any{"enabled": true, "serviceMonitor": map[string]any{"enabled": false}}}).Values
	if chart, _ := renderChart(t, o); chart[sm] != nil || chart["v1/Service pingmcp/pingmcp-admin"] == nil {
		t.Error("serviceMonitor off: a ServiceMonitor, or no admin Service")
	}
	// Metrics off: no ServiceMonitor even with the API.
	o.Values = defaultRelease(t, nil).Values
	if chart, _ := renderChart(t, o); chart[sm] != nil || chart["v1/Service pingmcp/pingmcp-admin"] != nil {
		t.Error("metrics off, yet a ServiceMonitor or admin Service")
	}
}

// TestHelmMetricsToken: with metrics.scrapeTokenSecret the pods read the
// scrape token from that Secret's key (mounted as the admin token is, mode
// 0440) as --metrics-token-file, and pingmcp takes the Deployment as it is
// rendered; one whose Secrets hold the same token for both is refused
// (config.Parse, as the pod would start).
func TestHelmMetricsToken(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, map[string]any{"metrics": map[string]any{"enabled": true,
		"scrapeTokenSecret": map[string]any{"name": "pingmcp-metrics-token", "key": "scrape"}}}))
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	for _, tc := range []struct {
		name                string
		adminToken, metrics string
		refused             string // "": accepted
	}{
		{"tokens of their own", "admin-token-0123456789abcdef", "scrape-token-0123456789abcdef", ""},
		{"the admin token in both", "admin-token-0123456789abcdef", "admin-token-0123456789abcdef\n", "--metrics-token-file holds the admin token"},
		{"a short scrape token", "admin-token-0123456789abcdef", "short", "--metrics-token-file: the token must be at least 16 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *load(t) // load's manifests are shared: add to a copy of their Secrets
			m.secrets = slices.Clone(m.secrets)
			for name, data := range map[string]map[string]string{
				"pingmcp-admin-token":   {"token": tc.adminToken},
				"pingmcp-metrics-token": {"scrape": tc.metrics},
			} {
				m.secrets = append(m.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "pingmcp"}, StringData: data})
			}
			b, err := m.parseBinary(t, &d, &d.Spec.Template.Spec.Containers[0])
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("pingmcp took the pod: %v, want a refusal mentioning %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for flag, want := range map[string][2]string{
				b.cfg.AdminTokenFile:   {"pingmcp-admin-token", "token"},
				b.cfg.MetricsTokenFile: {"pingmcp-metrics-token", "scrape"},
			} {
				key, sm, ok := b.secretFile(flag)
				if !ok || sm.volume.Secret.SecretName != want[0] || key != want[1] || !sm.mount.ReadOnly ||
					sm.volume.Secret.DefaultMode == nil || *sm.volume.Secret.DefaultMode != 0o440 {
					t.Errorf("%s: from Secret %s key %q (mounted %v), want %s key %q, read-only, mode 0440", flag, sm.volume.Secret.SecretName, key, ok, want[0], want[1])
				}
			}
		})
	}
}

// TestHelmWithoutAutoscaler: autoscaling off sets replicas and renders no
// autoscaler; with it on, the Deployment leaves replicas to it.
func TestHelmWithoutAutoscaler(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, map[string]any{"autoscaling": map[string]any{"enabled": false}, "replicaCount": 4}))
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 4 {
		t.Errorf("replicas %s, want 4", show(d.Spec.Replicas))
	}
	if chart["autoscaling/v2/HorizontalPodAutoscaler pingmcp/pingmcp"] != nil {
		t.Error("an autoscaler with autoscaling.enabled=false")
	}
	// Another release name: its own objects and pods, its own cluster-port
	// policy.
	o := defaultRelease(t, nil)
	o.Name, o.Namespace = "mcp", "tools"
	chart, _ = renderChart(t, o)
	decodeObject(t, chart["apps/v1/Deployment tools/mcp-pingmcp"], &d)
	if d.Spec.Template.Spec.ServiceAccountName != "mcp-pingmcp" || d.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "mcp" {
		t.Errorf("release mcp: service account %s, selector %v", d.Spec.Template.Spec.ServiceAccountName, d.Spec.Selector.MatchLabels)
	}
	if chart["rbac.authorization.k8s.io/v1/RoleBinding tools/mcp-pingmcp-cluster-membership"] == nil {
		t.Error("release mcp: no RoleBinding mcp-pingmcp-cluster-membership")
	}
}

// TestHelmImageDigest: with image.digest the image is pulled by digest
// (the tag ignored), so that what runs is what was built and scanned;
// without it, by tag; the schema refuses a digest that is not sha256.
func TestHelmImageDigest(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		image map[string]any
		want  string
	}{
		{map[string]any{"repository": "registry.example/pingmcp", "tag": "1.2.3", "digest": digest}, "registry.example/pingmcp@" + digest},
		{map[string]any{"repository": "registry.example/pingmcp", "tag": "1.2.3"}, "registry.example/pingmcp:1.2.3"},
	} {
		chart, _ := renderChart(t, defaultRelease(t, map[string]any{"image": c.image}))
		var d appsv1.Deployment
		decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != c.want {
			t.Errorf("image %v: %s, want %s", c.image, got, c.want)
		}
	}
	for _, bad := range []string{"1.2.3", "sha256:abc", "md5:0123456789abcdef0123456789abcdef"} {
		if _, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"image": map[string]any{"repository": "r/p", "digest": bad}})); err == nil {
			t.Errorf("image.digest %q: rendered, want the schema to refuse it", bad)
		}
	}
}

// TestHelmSpread: the pods spread over nodes and zones as spread says
// (ScheduleAnyway by default, as deploy/'s; DoNotSchedule for a cluster
// with a node and a zone for each replica), each rollout's by themselves;
// the schema refuses anything else.
func TestHelmSpread(t *testing.T) {
	for _, want := range []string{"ScheduleAnyway", "DoNotSchedule"} {
		chart, _ := renderChart(t, defaultRelease(t, map[string]any{"spread": map[string]any{"whenUnsatisfiable": want}}))
		var d appsv1.Deployment
		decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
		cs := d.Spec.Template.Spec.TopologySpreadConstraints
		if len(cs) != 2 {
			t.Fatalf("%s: %d spread constraints, want 2 (nodes, zones)", want, len(cs))
		}
		for _, c := range cs {
			if string(c.WhenUnsatisfiable) != want || !slices.Equal(c.MatchLabelKeys, []string{"pod-template-hash"}) {
				t.Errorf("%s: the spread over %s: %s, matchLabelKeys %v", want, c.TopologyKey, c.WhenUnsatisfiable, c.MatchLabelKeys)
			}
		}
	}
	for _, bad := range []any{"Never", "", 1} {
		if _, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"spread": map[string]any{"whenUnsatisfiable": bad}})); err == nil {
			t.Errorf("spread.whenUnsatisfiable %v: rendered, want the schema to refuse it", bad)
		}
	}
}

// TestHelmDisruptionBudget: podDisruptionBudget.maxUnavailable renders as
// given, a number of pods or a share; the schema refuses 0 (or 0 %, or
// what is neither), a budget that lets no pod be evicted, so that every
// node drain waits forever.
func TestHelmDisruptionBudget(t *testing.T) {
	for _, c := range []struct {
		value any
		want  intstr.IntOrString
	}{
		{1, intstr.FromInt32(1)},
		{2, intstr.FromInt32(2)},
		{"1", intstr.FromInt32(1)}, // --set-string
		{"34%", intstr.FromString("34%")},
		{"100%", intstr.FromString("100%")},
	} {
		chart, _ := renderChart(t, defaultRelease(t, map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": c.value}}))
		var pdb policyv1.PodDisruptionBudget
		decodeObject(t, chart["policy/v1/PodDisruptionBudget pingmcp/pingmcp"], &pdb)
		if got := pdb.Spec.MaxUnavailable; got == nil || *got != c.want {
			t.Errorf("maxUnavailable %v: rendered %v, want %v", c.value, got, c.want)
		}
	}
	for _, bad := range []any{0, "0", "0%", "00%", -1, "101%", 0.5, "one", ""} {
		_, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": bad}}))
		if err == nil || !strings.Contains(err.Error(), "podDisruptionBudget/maxUnavailable") {
			t.Errorf("podDisruptionBudget.maxUnavailable %#v: %v, want the schema to refuse it", bad, err)
		}
	}
}

// TestHelmGarbageCollector: GOGC comes with the container's memory limit
// given to pingmcp, which sets the soft limit from it (goGC, 400 by default, as deploy/'s), never without it, since without a
// memory limit nothing would bound the heap it lets grow; goGC 0 leaves
// Go's default; the schema refuses what is not a whole number from 0.
func TestHelmGarbageCollector(t *testing.T) {
	env := func(values map[string]any) map[string]corev1.EnvVar {
		t.Helper()
		chart, _ := renderChart(t, defaultRelease(t, values))
		var d appsv1.Deployment
		decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
		out := map[string]corev1.EnvVar{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			out[e.Name] = e
		}
		return out
	}
	for _, c := range []struct {
		name     string
		values   map[string]any
		memLimit bool
		gogc     string // "": none
	}{
		{"default", nil, true, "400"},
		{"goGC 200", map[string]any{"goGC": 200}, true, "200"},
		{"goGC 0", map[string]any{"goGC": 0}, true, ""},
		{"no memory limit from the container", map[string]any{"goMemLimitFromContainer": false}, false, ""},
	} {
		e := env(c.values)
		if _, ok := e[config.EnvName("memory-limit")]; ok != c.memLimit {
			t.Errorf("%s: %s rendered %v, want %v", c.name, config.EnvName("memory-limit"), ok, c.memLimit)
		}
		if g, ok := e["GOGC"]; ok != (c.gogc != "") || g.Value != c.gogc {
			t.Errorf("%s: GOGC %+v (rendered %v), want %q", c.name, g, ok, c.gogc)
		}
	}
	for _, bad := range []any{-1, "off", 1.5} {
		if _, err := helmtest.Render(chartDir, defaultRelease(t, map[string]any{"goGC": bad})); err == nil {
			t.Errorf("goGC %v: rendered, want the schema to refuse it", bad)
		}
	}
}

// TestHelmGoMemLimit: with a memory limit, whichever way it is written
// (a binary or decimal suffix, a fraction, bare bytes as a number), the
// chart gives pingmcp the limit as the kubelet runs it (memoryLimitEnv),
// never a GOMEMLIMIT computed when rendering; a GOMEMLIMIT of extraEnv is
// left alone (TestNoMemoryLimitNoGOGC: none without a limit).
func TestHelmGoMemLimit(t *testing.T) {
	for _, limit := range []any{"512Mi", "1Gi", "1.5Gi", "600M", "100000k", 536870912, "536870912", "0.5Gi", "1000009.5"} {
		chart, _ := renderChart(t, defaultRelease(t, map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": limit}}}))
		var d appsv1.Deployment
		decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
		c := &d.Spec.Template.Spec.Containers[0]
		if err := memoryLimitEnv(c); err != nil {
			t.Errorf("limits.memory %v: %v", limit, err)
			continue
		}
		q := c.Resources.Limits[corev1.ResourceMemory]
		if soft := softMemoryLimit(t, c); soft >= q.Value() || soft < q.Value()/10*9-1 {
			t.Errorf("limits.memory %v: soft limit %d, want 90 %% of %d bytes", limit, soft, q.Value())
		}
	}
	// Set by hand instead: the chart leaves GOMEMLIMIT to extraEnv.
	chart, _ := renderChart(t, defaultRelease(t, map[string]any{"goMemLimitFromContainer": false,
		"extraEnv": []any{map[string]any{"name": "GOMEMLIMIT", "value": "400MiB"}}}))
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	if env := d.Spec.Template.Spec.Containers[0].Env; slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" && e.Value == "400MiB" }) < 0 ||
		slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return e.Name == "GOGC" || e.Name == config.EnvName("memory-limit") }) {
		t.Errorf("goMemLimitFromContainer=false with GOMEMLIMIT in extraEnv: env %v", env)
	}
}
