package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/certtest"
	"github.com/pingmcp/pingmcp/internal/kubetest"
	"github.com/redis/go-redis/v9"
)

// The Kubernetes tests (issue 14) run a real API server (internal/kubetest:
// etcd and kube-apiserver on loopback, RBAC and PodSecurity admission on)
// and apply deploy/ to it as a user would.

const kubeNamespace = "pingmcp"

// applyDeploy runs kubectl apply -k deploy/ against kc: server-side apply,
// so the API server validates every field (unknown ones included) and the
// admission plugins judge each object. Any warning fails the test:
// PodSecurity warns (does not refuse) when a Deployment's pod template would
// violate its namespace's policy, and an unknown or deprecated field is a
// warning too.
func applyDeploy(t *testing.T, ctx context.Context, kc *kubetest.Cluster) {
	t.Helper()
	kubectlApply(t, ctx, kc, "kubectl apply -k deploy/", "-k", "../deploy")
}

// kubectlApply runs kubectl apply --server-side --validate=strict with args;
// any warning fails the test (see applyDeploy).
// expectObject fails t unless the API server has the object at path.
func expectObject(t *testing.T, ctx context.Context, kc *kubetest.Cluster, path string) {
	t.Helper()
	if status, body, err := kc.Do(ctx, http.MethodGet, path, nil); err != nil || status != http.StatusOK {
		t.Errorf("GET %s after apply: %d %v %s", path, status, err, body)
	}
}

func kubectlApply(t *testing.T, ctx context.Context, kc *kubetest.Cluster, what string, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := kc.KubectlCmd(ctx, append([]string{"apply", "--server-side", "--field-manager", "pingmcp-e2e", "--validate=strict"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", what, err, stdout.String(), stderr.String())
	}
	t.Logf("%s (%s):\n%s", what, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stdout.String()))
	if w := strings.TrimSpace(stderr.String()); w != "" {
		t.Errorf("%s warned:\n%s", what, w)
	}
}

// judgePodSecurity has PodSecurity admission judge pods in namespace ns
// (labelled "restricted"): a pod from the Deployment's own template is
// admitted (created for real: nothing runs it here), and the same pod made
// privileged is refused.
func judgePodSecurity(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, deployment string) {
	t.Helper()
	d := getDeployment(t, ctx, kc, ns, deployment)
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: deployment + "-template", Namespace: ns, Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
	if status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", pod); err != nil || status != http.StatusCreated {
		t.Errorf("a pod from the %s Deployment's template was refused: %d %v %s", deployment, status, err, body)
	}
	pod.Name = deployment + "-privileged"
	pod.Spec.Containers[0].SecurityContext.Privileged = &[]bool{true}[0]
	pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &[]bool{true}[0]
	if status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", pod); err != nil || status != http.StatusForbidden ||
		!strings.Contains(string(body), "PodSecurity") {
		t.Errorf("a privileged %s pod in the %s namespace: %d %v %s; want 403 from PodSecurity", deployment, ns, status, err, body)
	}
}

// getDeployment is the Deployment ns/name as the API server has it.
func getDeployment(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if status, body, err := kc.Do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, nil); err != nil || status != http.StatusOK {
		t.Fatalf("GET the %s Deployment: %d %v %s", name, status, err, body)
	} else if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// createDefaultServiceAccount creates the service account "default" of
// namespace ns, which the controller manager (not running here) makes in
// every namespace: pods that name no other use it (Redis's).
func createDefaultServiceAccount(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns string) {
	t.Helper()
	if status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts", corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
	}); err != nil || status != http.StatusCreated {
		t.Fatalf("create the default service account of %s: %d %v %s", ns, status, err, body)
	}
}

// TestKubeDeploy applies deploy/ to a real API server and checks what
// pingmcp's service account may do, first by SubjectAccessReview, then with
// a token of its own, as a pod would hold; and which patches of pods its
// ValidatingAdmissionPolicy lets through (checkPodPatchPolicy).
func TestKubeDeploy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	kc := kubetest.Start(t)
	t.Logf("API server ready in %s", time.Since(start).Round(time.Millisecond))
	applyDeploy(t, ctx, kc)

	// Everything the kustomization names is there.
	for _, path := range []string{
		"/api/v1/namespaces/pingmcp",
		"/api/v1/namespaces/pingmcp/serviceaccounts/pingmcp",
		"/apis/rbac.authorization.k8s.io/v1/namespaces/pingmcp/roles/pingmcp-cluster-membership",
		"/apis/rbac.authorization.k8s.io/v1/namespaces/pingmcp/rolebindings/pingmcp-cluster-membership",
		"/apis/apps/v1/namespaces/pingmcp/deployments/pingmcp",
		"/apis/apps/v1/namespaces/pingmcp/deployments/todo-api",
		"/apis/apps/v1/namespaces/pingmcp/deployments/redis",
		"/api/v1/namespaces/pingmcp/services/pingmcp",
		"/api/v1/namespaces/pingmcp/secrets/pingmcp-cluster-tls",
		"/apis/policy/v1/namespaces/pingmcp/poddisruptionbudgets/pingmcp",
		"/apis/autoscaling/v2/namespaces/pingmcp/horizontalpodautoscalers/pingmcp",
		"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/" + policyName("pingmcp", kubeNamespace),
		"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/" + policyName("pingmcp", kubeNamespace),
	} {
		expectObject(t, ctx, kc, path)
	}

	// Applying again changes nothing and is accepted (what a user's second
	// apply, or a CI pipeline's, does).
	applyDeploy(t, ctx, kc)

	// PodSecurity "restricted" judges pods of the Deployment's template.
	judgePodSecurity(t, ctx, kc, kubeNamespace, "pingmcp")

	// Of all it may patch, the service account changes only its own pod's
	// membership labels (the ValidatingAdmissionPolicy of rbac.yaml).
	checkPodPatchPolicy(t, ctx, kc, kubeNamespace, "pingmcp", policyName("pingmcp", kubeNamespace))

	user, groups := kubetest.ServiceAccountUser(kubeNamespace, "pingmcp"), kubetest.ServiceAccountGroups(kubeNamespace)
	pods := func(verb, ns string) kubetest.Access {
		return kubetest.Access{Verb: verb, Resource: "pods", Namespace: ns}
	}
	allowed := []kubetest.Access{
		pods("get", kubeNamespace), pods("list", kubeNamespace), pods("watch", kubeNamespace), pods("patch", kubeNamespace),
		{Verb: "patch", Resource: "pods", Namespace: kubeNamespace, Name: "pingmcp-abc"},
	}
	denied := []kubetest.Access{
		// Other verbs on pods in its namespace.
		pods("create", kubeNamespace), pods("update", kubeNamespace), pods("delete", kubeNamespace), pods("deletecollection", kubeNamespace),
		{Verb: "patch", Resource: "pods", Subresource: "status", Namespace: kubeNamespace},
		{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: kubeNamespace},
		{Verb: "get", Resource: "pods", Subresource: "log", Namespace: kubeNamespace},
		{Verb: "create", Resource: "pods", Subresource: "eviction", Namespace: kubeNamespace},
		// Pods elsewhere, and in all namespaces.
		pods("get", "default"), pods("list", "default"), pods("watch", "kube-system"), pods("patch", "default"),
		pods("list", ""), pods("watch", ""),
		// Other resources in its namespace.
		{Verb: "get", Resource: "secrets", Namespace: kubeNamespace, Name: "pingmcp-state-keys"},
		{Verb: "list", Resource: "secrets", Namespace: kubeNamespace},
		{Verb: "get", Resource: "configmaps", Namespace: kubeNamespace},
		{Verb: "list", Resource: "services", Namespace: kubeNamespace},
		{Verb: "list", Resource: "endpoints", Namespace: kubeNamespace},
		{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: kubeNamespace, Name: "pingmcp"},
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: kubeNamespace, Name: "pingmcp"},
		{Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale", Namespace: kubeNamespace, Name: "pingmcp"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: kubeNamespace},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: kubeNamespace},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: kubeNamespace},
		// Cluster-scoped resources.
		{Verb: "list", Resource: "nodes"},
		{Verb: "get", Resource: "namespaces", Name: kubeNamespace},
	}
	for _, a := range allowed {
		ok, reason, err := kc.Allowed(ctx, user, groups, a)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("%s may not %s (%s); rbac.yaml grants it", user, a, reason)
		}
	}
	for _, a := range denied {
		ok, reason, err := kc.Allowed(ctx, user, groups, a)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Errorf("%s may %s (%s): it needs get, list, watch and patch of pods in %s, nothing else", user, a, reason, kubeNamespace)
		}
	}

	// The same with a real token of the service account (TokenRequest, as
	// the kubelet gets the one it mounts into a pod): it authenticates, and
	// the API server itself refuses what RBAC does not grant.
	token := serviceAccountToken(t, ctx, kc, kubeNamespace, "pingmcp", nil)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/v1/namespaces/pingmcp/pods", http.StatusOK},
		{http.MethodGet, "/api/v1/namespaces/pingmcp/pods?watch=1&timeoutSeconds=1", http.StatusOK},
		{http.MethodGet, "/api/v1/namespaces/default/pods", http.StatusForbidden},
		{http.MethodGet, "/api/v1/pods", http.StatusForbidden},
		{http.MethodGet, "/api/v1/namespaces/pingmcp/secrets", http.StatusForbidden},
		{http.MethodGet, "/api/v1/namespaces/pingmcp/secrets/pingmcp-state-keys", http.StatusForbidden},
		{http.MethodDelete, "/api/v1/namespaces/pingmcp/pods/pingmcp-abc", http.StatusForbidden},
	} {
		status, body, err := kc.DoAs(ctx, token, c.method, c.path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != c.want {
			t.Errorf("%s %s with pingmcp's service account token: %d, want %d: %s", c.method, c.path, status, c.want, body)
		}
	}
}

// serviceAccountToken makes a token of the service account ns/name with a
// TokenRequest: bound to pod if it is not nil, as the kubelet requests the
// one it mounts into a pod (for 3607 s, as it does), else to nothing.
func serviceAccountToken(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, name string, pod *corev1.Pod) string {
	t.Helper()
	spec := map[string]any{"expirationSeconds": 3600}
	if pod != nil {
		spec = map[string]any{
			"expirationSeconds": 3607,
			"boundObjectRef":    map[string]any{"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID)},
		}
	}
	status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+name+"/token", map[string]any{
		"apiVersion": "authentication.k8s.io/v1",
		"kind":       "TokenRequest",
		"spec":       spec,
	})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("TokenRequest for %s/%s: %d %v %s", ns, name, status, err, body)
	}
	var tr struct {
		Status struct{ Token string }
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.Status.Token == "" {
		t.Fatalf("TokenRequest for %s/%s: %v %s", ns, name, err, body)
	}
	return tr.Status.Token
}

// TestKubeCluster plays kubelet (e2e/kubelet_test.go) for a pod of the
// redis Deployment (redis-server with the manifest's args) and two pods of
// the pingmcp Deployment, each a `pingmcp serve --cluster-provider=k8s`
// process given what its pod would give it (Redis's Service name among it,
// resolved by the pod's /etc/hosts), and proves through the API server that
// they find each other: each registers itself by labelling its
// own pod, and both see two members. Sessions opened through one pod are
// served through the other. A third pod joins and owns about a third of
// the sessions' identities: their pods register them with it, none moves,
// and each answers through it. One pod is stopped as the kubelet stops a
// deleted pod's container (SIGTERM): it drains, removes its labels and
// leaves, and every session goes on (those that lived on the stopped pod
// rehydrated from Redis). Another is killed (kill -9), turns not ready and
// is deleted: its sessions continue on the last pod within BENCHMARKS.md's
// failover bound. Every session's snapshot is in the Redis pod.
func TestKubeCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kc := kubetest.Start(t)
	applyDeploy(t, ctx, kc)

	// The Secrets' placeholders replaced, as an operator does before a real
	// install: state keys, and the cluster's mutual TLS.
	key := make([]byte, 32)
	rand.Read(key)
	setSecret(t, ctx, kc, kubeNamespace, "pingmcp-state-keys", map[string][]byte{"state-keys": []byte("k1:" + base64.StdEncoding.EncodeToString(key))})
	tlsFiles := certtest.NewCA(t, "kube-e2e").Node(t, "pingmcp-node")
	setSecret(t, ctx, kc, kubeNamespace, "pingmcp-cluster-tls", map[string][]byte{
		"tls.crt": mustRead(t, tlsFiles.Cert), "tls.key": mustRead(t, tlsFiles.Key), "ca.crt": mustRead(t, tlsFiles.CA),
	})

	// The operator's own issuer in the Deployment's args, as an overlay of
	// deploy/ sets it: here a test issuer on loopback.
	is := authtest.NewIssuer(t)
	setContainerArg(t, ctx, kc, "pingmcp", "--issuer=", is.URL)

	// Debug logs tell which node serves each session's requests.
	k := newKubelet(t, kc, kubeNamespace, map[string]string{"PINGMCP_LOG_LEVEL": "debug"})
	start := time.Now()

	// The manifest's Redis first, a pod of deploy/redis.yaml's Deployment:
	// the pingmcp pods reach it by its Service's name, from their
	// manifest's PINGMCP_REDIS_URL.
	createDefaultServiceAccount(t, ctx, kc, kubeNamespace)
	rp := k.run(ctx, "redis-a", k.template(ctx, "redis"))
	// The nodes label their pods under rbac.yaml's ValidatingAdmissionPolicy.
	awaitPodPatchPolicy(t, ctx, kc, kubeNamespace, "pingmcp", rp.Pod.Name, policyName("pingmcp", kubeNamespace))
	store := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(rp.IP, "6379")})
	defer store.Close()
	// It runs with the manifest's args: its data in the pod's emptyDir
	// (/data), no snapshots, no append-only file.
	for param, want := range map[string]string{"dir": filepath.Join(k.dir, "redis-a", "volumes", "data"), "save": "", "appendonly": "no"} {
		if got, err := store.ConfigGet(ctx, param).Result(); err != nil || got[param] != want {
			t.Errorf("the Redis pod's %s: %v %v, want %q", param, got, err, want)
		}
	}

	tmpl := k.template(ctx, "pingmcp")
	a := k.run(ctx, "pingmcp-a", tmpl)
	b := k.run(ctx, "pingmcp-b", tmpl)
	a.Node.awaitMembers(ctx, 2)
	b.Node.awaitMembers(ctx, 2)
	t.Logf("the Redis pod and two pingmcp pods ran, and these joined, in %s", time.Since(start).Round(time.Millisecond))

	// Their Redis URL is the manifest's, the Service's name, which their
	// /etc/hosts resolves to the Redis pod (the cluster DNS's and
	// kube-proxy's part).
	var redisURL string
	for _, e := range tmpl.Spec.Containers[0].Env {
		if e.Name == "PINGMCP_REDIS_URL" {
			redisURL = e.Value
		}
	}
	if !strings.Contains(redisURL, "://redis.") || !slices.Contains(a.Node.cmd.Env, "PINGMCP_REDIS_URL="+redisURL) {
		t.Errorf("pingmcp-a's PINGMCP_REDIS_URL is not the manifest's Service name %q: %v", redisURL, a.Node.cmd.Env)
	}
	// The manifest's memory limit (512Mi) reached the process through the
	// downward API, which set the Go soft limit to 90 % of it.
	if !slices.Contains(a.Node.cmd.Env, "PINGMCP_MEMORY_LIMIT=536870912") || !a.Node.logged("Go soft memory limit set", "483183820", "536870912") {
		t.Errorf("pingmcp-a did not get PINGMCP_MEMORY_LIMIT=536870912 (512Mi), or did not log a soft memory limit of 483183820 (90 %% of it): %v", a.Node.cmd.Env)
	}
	hosts := string(mustRead(t, fmt.Sprintf("/proc/%d/root/etc/hosts", a.Node.cmd.Process.Pid)))
	if !strings.Contains(hosts, rp.IP+"\tredis.pingmcp.svc.cluster.local ") {
		t.Errorf("pingmcp-a's /etc/hosts does not map the Redis Service's name to the Redis pod's IP %s:\n%s", rp.IP, hosts)
	}

	// Each node labelled its own pod (protoactor's k8s provider: a patch
	// with pingmcp's service account token).
	for _, p := range []*kubePod{a, b} {
		var pod corev1.Pod
		k.get(ctx, "/api/v1/namespaces/"+kubeNamespace+"/pods/"+p.Pod.Name, &pod)
		l := pod.Labels
		if l["cluster.proto.actor/cluster"] == "" || l["cluster.proto.actor/member-id"] == "" || l["cluster.proto.actor/port"] != "7000" {
			t.Errorf("pod %s: labels %v, want protoactor's cluster, member-id and port 7000", p.Pod.Name, l)
		}
	}

	// A pod that turns unready (a probe timed out under load) leaves the
	// cluster, and protoactor blocks its member id for good; its node, which
	// runs on, labels the pod with a new member id (cluster/kube.go), and
	// once ready again the pod is a member again, on both sides.
	memberID := func(p *kubePod) string {
		var pod corev1.Pod
		k.get(ctx, "/api/v1/namespaces/"+kubeNamespace+"/pods/"+p.Pod.Name, &pod)
		return pod.Labels["cluster.proto.actor/member-id"]
	}
	before := memberID(b)
	k.writeStatus(ctx, b, false)
	a.Node.awaitMembers(ctx, 1)
	b.Node.awaitLogged(t, ctx, `"msg":"this node's pod left the cluster while the node ran`)
	k.writeStatus(ctx, b, true)
	a.Node.awaitMembers(ctx, 2)
	b.Node.awaitMembers(ctx, 2)
	if after := memberID(b); after == before || after == "" {
		t.Errorf("pingmcp-b's member id after it turned unready and ready: %q, before %q; want a new one", after, before)
	}

	// A container restarted in place (killed for its memory, or by its
	// liveness probe): the pod keeps its labels, the dead process's member
	// id among them, which pod a blocked as the pod turned not ready.
	// protoactor's provider keeps the labels a pod has over its own: the
	// new process would take on the blocked id and never be a member of
	// a's cluster again; it takes a new one (cluster/kube.go).
	before = memberID(b)
	k.kill(ctx, b)
	a.Node.awaitMembers(ctx, 1)
	k.start(ctx, b)
	a.Node.awaitMembers(ctx, 2)
	b.Node.awaitMembers(ctx, 2)
	if after := memberID(b); after == before || after == "" {
		t.Errorf("pingmcp-b's member id after its container restarted: %q, before %q; want a new one", after, before)
	}

	// Sessions opened through one pod continue through the other (one node
	// forwards to the other over the cluster's mutual TLS). A session lives
	// on the pod that opened it: half are opened through each.
	// Each session is another user's (and client's), under pingmcp's
	// per-user and per-client rate limits.
	const nSessions = 30
	var sessions []string
	tokens := map[string]string{}
	onA, onB := 0, 0
	for i := range nSessions {
		claims := is.Claims(fmt.Sprintf("user-%d", i), kubeResource, "todo_api:read todo_api:write")
		claims["client_id"] = fmt.Sprintf("client-%d", i)
		token := is.Token(t, claims)
		via, other := a, b
		if i%2 == 1 {
			via, other = b, a
		}
		sid := podInitialize(t, ctx, via, token)
		sessions = append(sessions, sid)
		tokens[sid] = token
		if status, body := podCall(t, ctx, other, tokens[sid], sid, toolsList); status != http.StatusOK || !strings.Contains(body, `"tools"`) {
			t.Fatalf("session %s, opened through %s, through %s: %d %s", sid, via.Pod.Name, other.Pod.Name, status, body)
		}
		switch served := `"session":"` + sid + `"`; {
		case a.Node.logged(`"msg":"request started"`, served):
			onA++
			if via != a {
				t.Errorf("session %s, opened through pingmcp-b, lives on pingmcp-a", sid)
			}
		case b.Node.logged(`"msg":"request started"`, served):
			onB++
			if via != b {
				t.Errorf("session %s, opened through pingmcp-a, lives on pingmcp-b", sid)
			}
		default:
			t.Fatalf("session %s: neither pod logged serving it", sid)
		}
	}
	t.Logf("%d sessions, each opened through one pod and served through the other: %d lived on pingmcp-a, %d on pingmcp-b", nSessions, onA, onB)

	// Scale out: a third pod joins and owns about a third of the sessions'
	// identities. Their activations stay where they are, registered with
	// it (a session lives where its client's requests arrive, not where
	// its identity hashes), and every session answers through it.
	c := k.run(ctx, "pingmcp-c", tmpl)
	for _, p := range []*kubePod{a, b, c} {
		p.Node.awaitMembers(ctx, 3)
	}
	registered := awaitRegistered(t, ctx, c.Node, sessions, a.Node, b.Node, c.Node)
	for _, sid := range sessions {
		if status, body := podCall(t, ctx, c, tokens[sid], sid, toolsList); status != http.StatusOK || !strings.Contains(body, `"tools"`) {
			t.Errorf("session %s after pingmcp-c joined: %d %s", sid, status, body)
		}
	}
	t.Logf("scale-out to 3 pods: pingmcp-c lists %d of the %d sessions' activations", registered, nSessions)
	if registered < 2 || registered > 2*nSessions/3 {
		t.Errorf("pingmcp-c lists %d of %d sessions' activations, registered by their pods; want about a third", registered, nSessions)
	}
	if moved := c.Node.count(`"msg":"session rehydrated"`); moved != 0 {
		t.Errorf("scale-out to 3 pods moved %d sessions to the new pod, want none", moved)
	}

	// SIGTERM: pod a drains and leaves, and its pod loses protoactor's
	// labels (the kubelet would next remove the pod; its labels must not
	// outlive the process in the meantime).
	stopped := time.Now()
	left := a.Node.watch(`"msg":"node left the cluster"`)
	a.Node.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-left:
	case <-ctx.Done():
		t.Fatal("pingmcp-a did not leave the cluster after SIGTERM")
	}
	select {
	case <-a.Node.done:
	case <-ctx.Done():
		t.Fatal("pingmcp-a did not exit after SIGTERM")
	}
	// Under the race detector a process that saw a race exits 66; the races
	// it saw are checked at cleanup (only protoactor's own pass).
	if code := a.Node.cmd.ProcessState.ExitCode(); code != 0 && (!raceEnabled || code != 66) {
		t.Errorf("pingmcp-a exited with %d after SIGTERM, want 0", code)
	}
	var pod corev1.Pod
	k.get(ctx, "/api/v1/namespaces/"+kubeNamespace+"/pods/pingmcp-a", &pod)
	for l := range pod.Labels {
		if strings.HasPrefix(l, "cluster.proto.actor/") {
			t.Errorf("pod pingmcp-a still has label %s after its node left", l)
		}
	}
	if pod.Labels["app.kubernetes.io/name"] != "pingmcp" {
		t.Errorf("pod pingmcp-a lost its own labels: %v", pod.Labels)
	}
	b.Node.awaitMembers(ctx, 2)
	c.Node.awaitMembers(ctx, 2)
	t.Logf("pingmcp-a drained and left in %s", time.Since(stopped).Round(time.Millisecond))
	k.delete(ctx, a)

	// Every session goes on through pod b: those whose actors were on pod a
	// are rehydrated from Redis.
	for _, sid := range sessions {
		if status, body := podCall(t, ctx, b, tokens[sid], sid, toolsList); status != http.StatusOK || !strings.Contains(body, `"tools"`) {
			t.Errorf("session %s after pingmcp-a left: %d %s", sid, status, body)
		}
	}

	// kill -9 of pod b's process, then what the kubelet and the node
	// controller would do: the pod turns not ready (its readiness probe
	// fails), then it is deleted. Its sessions continue on pod c; the time
	// is counted from the pod's turning not ready (before that, only the
	// kubelet's probe period and threshold could tell: 5 s × 6 in deploy/).
	k.kill(ctx, b)
	notReady := time.Now()
	k.delete(ctx, b)
	var slowest time.Duration
	for _, sid := range sessions {
		for {
			callCtx, cancelCall := context.WithTimeout(ctx, 15*time.Second)
			status, body := podCall(t, callCtx, c, tokens[sid], sid, toolsList)
			cancelCall()
			if status == http.StatusOK && strings.Contains(body, `"tools"`) {
				break
			}
			if status != http.StatusServiceUnavailable || ctx.Err() != nil {
				t.Fatalf("session %s after pingmcp-b was killed: %d %s", sid, status, body)
			}
			time.Sleep(100 * time.Millisecond) // a client honouring Retry-After, faster
		}
		slowest = max(slowest, time.Since(notReady))
	}
	c.Node.awaitMembers(ctx, 1)
	t.Logf("kill -9 of pingmcp-b: every session continued through pingmcp-c within %s of the pod turning not ready", slowest.Round(time.Millisecond))
	if slowest > 5*time.Second {
		t.Errorf("sessions continued %s after pingmcp-b turned not ready; BENCHMARKS.md's failover bound is 5 s", slowest.Round(time.Millisecond))
	}

	// They lived in the Redis pod (the only Redis there is): every
	// session's snapshot is there.
	for _, sid := range sessions {
		if n, err := store.Exists(ctx, "pingmcp:session:{"+sid+"}:snap").Result(); err != nil || n != 1 {
			t.Errorf("session %s has no snapshot in the Redis pod: %d %v", sid, n, err)
		}
	}
}

const toolsList = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`

// kubeResource is the MCP resource of deploy/'s --public-url: the audience
// of the tokens its pods accept.
const (
	kubePublicHost = "mcp.example.com"
	kubeResource   = "https://" + kubePublicHost + "/mcp"
)

// setContainerArg replaces the value of the arg with prefix (e.g.
// "--issuer=") of the Deployment name's first container, with a JSON patch.
func setContainerArg(t *testing.T, ctx context.Context, kc *kubetest.Cluster, name, prefix, value string) {
	t.Helper()
	path := "/apis/apps/v1/namespaces/" + kubeNamespace + "/deployments/" + name
	var d appsv1.Deployment
	status, body, err := kc.Do(ctx, http.MethodGet, path, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", path, status, err, body)
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	for i, a := range d.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, prefix) {
			patch := []map[string]any{{"op": "replace", "path": fmt.Sprintf("/spec/template/spec/containers/0/args/%d", i), "value": prefix + value}}
			status, body, err := kc.DoAs(ctx, kc.AdminToken, http.MethodPatch, path, "application/json-patch+json", patch)
			if err != nil || status != http.StatusOK {
				t.Fatalf("PATCH %s: %d %v %s", path, status, err, body)
			}
			return
		}
	}
	t.Fatalf("deployment %s has no arg %s...", name, prefix)
}

// podCall sends one JSON-RPC message to a pod's /mcp as a client of
// deploy/'s public URL reaches it (its Ingress passes the Host through), in
// session sid ("" for none), and returns the status and the whole answer.
func podCall(t *testing.T, ctx context.Context, p *kubePod, token, sid, body string) (int, string) {
	t.Helper()
	status, _, answer := podPost(t, ctx, p, token, sid, body)
	return status, answer
}

func podPost(t *testing.T, ctx context.Context, p *kubePod, token, sid, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.Node.HTTP+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = kubePublicHost
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST to %s: %v", p.Pod.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// podInitialize opens a session through pod p.
func podInitialize(t *testing.T, ctx context.Context, p *kubePod, token string) string {
	t.Helper()
	status, h, body := podPost(t, ctx, p, token, "",
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`)
	sid := h.Get("Mcp-Session-Id")
	if status != http.StatusOK || sid == "" {
		t.Fatalf("initialize through %s: %d %s", p.Pod.Name, status, body)
	}
	if status, body := podCall(t, ctx, p, token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized through %s: %d %s", p.Pod.Name, status, body)
	}
	return sid
}
