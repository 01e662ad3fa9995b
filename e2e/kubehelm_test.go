package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/helmtest"
	"github.com/pingmcp/pingmcp/internal/kubetest"
	"github.com/redis/go-redis/v9"
)

// helmNamespace is where TestKubeHelm installs the chart: a namespace of its
// own, labelled for PodSecurity "restricted" as README tells users to.
const helmNamespace = "mcp"

// applyManifest applies a YAML stream in namespace ns as applyDeploy does.
func applyManifest(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, manifest string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectlApply(t, ctx, kc, "kubectl apply of the chart", "-n", ns, "-f", file)
}

// TestKubeHelm renders deploy/helm/pingmcp with Helm (as a library: helm
// install --dry-run=client) for a trial install (generated Secrets, the
// chart's Redis, the egress policy), applies it to a real API server, lets
// PodSecurity "restricted" judge pods made from its Deployments' templates, checks what
// its service account may do, and plays kubelet for a pod of its Redis and
// two of its pingmcp Deployment: they join over the generated cluster TLS,
// a session opened through one continues through the other, and the
// sessions' snapshots are in the chart's Redis pod.
func TestKubeHelm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	kc := kubetest.Start(t)
	t.Logf("API server ready in %s", time.Since(start).Round(time.Millisecond))

	if status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces", corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: helmNamespace, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		}},
	}); err != nil || status != http.StatusCreated {
		t.Fatalf("create namespace %s: %d %v %s", helmNamespace, status, err, body)
	}

	// The chart's Redis pods use the default service account.
	createDefaultServiceAccount(t, ctx, kc, helmNamespace)

	is := authtest.NewIssuer(t)
	rendered, err := helmtest.Render("../deploy/helm/pingmcp", helmtest.Options{
		Name: "pingmcp", Namespace: helmNamespace, KubeVersion: kubetest.Version,
		Values: map[string]any{
			"issuer":    is.URL,
			"publicURL": "https://" + kubePublicHost,
			"redis":     map[string]any{"trial": map[string]any{"enabled": true}},
			"secrets":   map[string]any{"generate": true},
			// The egress policy too, for the API server to validate (no
			// network plugin enforces it here).
			"networkPolicy": map[string]any{"egress": map[string]any{"enabled": true}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The exchange client's Secret is the operator's to create, by reference.
	for name, data := range map[string]map[string][]byte{
		"pingmcp-exchange-client": {"client-secret": []byte("e2e-client-secret")},
		"pingmcp-grant-manager":   {"grants-password": []byte("e2e-grants-password")},
	} {
		if status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+helmNamespace+"/secrets", corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: helmNamespace},
			Data:       data,
		}); err != nil || status != http.StatusCreated {
			t.Fatalf("create Secret %s: %d %v %s", name, status, err, body)
		}
	}
	applyManifest(t, ctx, kc, helmNamespace, rendered.Manifest)
	applyManifest(t, ctx, kc, helmNamespace, rendered.Manifest) // a second apply is accepted and changes nothing

	for _, path := range []string{
		"/api/v1/namespaces/mcp/serviceaccounts/pingmcp",
		"/apis/rbac.authorization.k8s.io/v1/namespaces/mcp/roles/pingmcp-cluster-membership",
		"/apis/rbac.authorization.k8s.io/v1/namespaces/mcp/rolebindings/pingmcp-cluster-membership",
		"/apis/apps/v1/namespaces/mcp/deployments/pingmcp",
		"/apis/apps/v1/namespaces/mcp/deployments/pingmcp-redis",
		"/api/v1/namespaces/mcp/services/pingmcp",
		"/api/v1/namespaces/mcp/secrets/pingmcp-trial-cluster-tls",
		"/api/v1/namespaces/mcp/secrets/pingmcp-trial-state-keys",
		"/apis/policy/v1/namespaces/mcp/poddisruptionbudgets/pingmcp",
		"/apis/autoscaling/v2/namespaces/mcp/horizontalpodautoscalers/pingmcp",
		"/apis/networking.k8s.io/v1/namespaces/mcp/networkpolicies/pingmcp",
		"/apis/networking.k8s.io/v1/namespaces/mcp/networkpolicies/pingmcp-egress",
		"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/" + policyName("pingmcp", helmNamespace),
		"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/" + policyName("pingmcp", helmNamespace),
	} {
		expectObject(t, ctx, kc, path)
	}

	// PodSecurity "restricted" judges a pod from each Deployment's template.
	for _, name := range []string{"pingmcp", "pingmcp-redis"} {
		judgePodSecurity(t, ctx, kc, helmNamespace, name)
	}

	// The chart's service account may do what protoactor's provider needs,
	// in its namespace, and nothing else.
	user, groups := kubetest.ServiceAccountUser(helmNamespace, "pingmcp"), kubetest.ServiceAccountGroups(helmNamespace)
	for _, c := range []struct {
		a    kubetest.Access
		want bool
	}{
		{kubetest.Access{Verb: "get", Resource: "pods", Namespace: helmNamespace}, true},
		{kubetest.Access{Verb: "list", Resource: "pods", Namespace: helmNamespace}, true},
		{kubetest.Access{Verb: "watch", Resource: "pods", Namespace: helmNamespace}, true},
		{kubetest.Access{Verb: "patch", Resource: "pods", Namespace: helmNamespace}, true},
		{kubetest.Access{Verb: "delete", Resource: "pods", Namespace: helmNamespace}, false},
		{kubetest.Access{Verb: "create", Resource: "pods", Namespace: helmNamespace}, false},
		{kubetest.Access{Verb: "list", Resource: "pods", Namespace: "default"}, false},
		{kubetest.Access{Verb: "list", Resource: "pods"}, false},
		{kubetest.Access{Verb: "get", Resource: "secrets", Namespace: helmNamespace, Name: "pingmcp-trial-state-keys"}, false},
		{kubetest.Access{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: helmNamespace, Name: "pingmcp"}, false},
	} {
		ok, reason, err := kc.Allowed(ctx, user, groups, c.a)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.want {
			t.Errorf("%s may %s: %v (%s), want %v", user, c.a, ok, reason, c.want)
		}
	}
	// Of all it may patch, it changes only its own pod's membership labels
	// (the chart's ValidatingAdmissionPolicy); the pods below register
	// under it.
	checkPodPatchPolicy(t, ctx, kc, helmNamespace, "pingmcp", policyName("pingmcp", helmNamespace))

	// Two pods of the chart's Deployment, run as the kubelet would, with the
	// Secrets the chart generated: they join as two members (mutual TLS with
	// the generated CA), and a session opened through one goes on through
	// the other. Redis is the chart's trial Redis, a pod of its Deployment
	// run first, which they reach by its Service's name.
	k := newKubelet(t, kc, helmNamespace, map[string]string{"PINGMCP_LOG_LEVEL": "debug"})
	start = time.Now()
	rp := k.run(ctx, "pingmcp-redis-a", k.template(ctx, "pingmcp-redis"))
	tmpl := k.template(ctx, "pingmcp")
	a := k.run(ctx, "pingmcp-a", tmpl)
	b := k.run(ctx, "pingmcp-b", tmpl)
	a.Node.awaitMembers(ctx, 2)
	b.Node.awaitMembers(ctx, 2)
	t.Logf("two pods of the chart ran and joined in %s", time.Since(start).Round(time.Millisecond))
	// The process got the container's memory limit in bytes from the
	// downward API (the chart's default 512Mi) and set the Go runtime's
	// soft limit to 90 % of it.
	if !slices.Contains(a.Node.cmd.Env, "PINGMCP_MEMORY_LIMIT=536870912") || slices.ContainsFunc(a.Node.cmd.Env, func(e string) bool { return strings.HasPrefix(e, "GOMEMLIMIT=") }) {
		t.Errorf("pingmcp-a's environment has no PINGMCP_MEMORY_LIMIT=536870912 (512Mi), or has a GOMEMLIMIT: %v", a.Node.cmd.Env)
	}
	if !a.Node.logged("Go soft memory limit set", "483183820", "536870912") {
		t.Error("pingmcp-a did not log a soft memory limit of 483183820 (90 % of 512Mi)")
	}
	var sessions []string
	for i := range 6 {
		claims := is.Claims("helm-user-"+string(rune('a'+i)), kubeResource, "todo_api:read todo_api:write")
		claims["client_id"] = "helm-client-" + string(rune('a'+i))
		token := is.Token(t, claims)
		sid := podInitialize(t, ctx, a, token)
		if status, body := podCall(t, ctx, b, token, sid, toolsList); status != http.StatusOK || !strings.Contains(body, `"tools"`) {
			t.Fatalf("session %s, opened through pingmcp-a, through pingmcp-b: %d %s", sid, status, body)
		}
		sessions = append(sessions, sid)
	}
	// Their snapshots are in the chart's Redis pod.
	store := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(rp.IP, "6379")})
	defer store.Close()
	for _, sid := range sessions {
		if n, err := store.Exists(ctx, "pingmcp:session:{"+sid+"}:snap").Result(); err != nil || n != 1 {
			t.Errorf("session %s has no snapshot in the chart's Redis pod: %d %v", sid, n, err)
		}
	}
}
