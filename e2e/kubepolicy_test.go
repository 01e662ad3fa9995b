package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pingmcp/pingmcp/internal/kubetest"
)

// The ValidatingAdmissionPolicy of deploy/rbac.yaml and of the chart: the
// nodes' service account may patch pods (RBAC cannot narrow that to a pod
// or a field), and the policy lets it change only the labels protoactor's
// k8s provider writes, of its own pod.

// policyName is the name of the ValidatingAdmissionPolicy (and of its
// binding) of the release fullname in namespace ns.
func policyName(fullname, ns string) string { return fullname + "-cluster-membership." + ns }

// mergePatch and jsonPatch are the two kinds of patch the nodes send: the
// provider replaces /metadata/labels with a JSON patch (registering,
// leaving), pingmcp's kubeRejoin merges a new member id.
const (
	mergePatch = "application/merge-patch+json"
	jsonPatch  = "application/json-patch+json"
)

// podPatch is a patch of pod name in ns with token.
func podPatch(t *testing.T, ctx context.Context, kc *kubetest.Cluster, token, ns, name, contentType string, patch any, dryRun bool) (int, string) {
	t.Helper()
	path := "/api/v1/namespaces/" + ns + "/pods/" + name
	if dryRun {
		path += "?dryRun=All"
	}
	status, body, err := kc.DoAs(ctx, token, http.MethodPatch, path, contentType, patch)
	if err != nil {
		t.Fatalf("PATCH %s: %v", path, err)
	}
	return status, string(body)
}

// labelsPatch is a merge patch of a pod's labels (nil: remove).
func labelsPatch(labels map[string]any) map[string]any {
	return map[string]any{"metadata": map[string]any{"labels": labels}}
}

// deniedBy says whether an answer is the policy's refusal.
func deniedBy(policy string, status int, body string) bool {
	return status == http.StatusForbidden && strings.Contains(body, "ValidatingAdmissionPolicy '"+policy+"'")
}

// awaitPodPatchPolicy returns once the API server enforces policy (it
// loads policies in the background, after they are created): a dry-run
// patch of pod in ns with a token of the service account sa that is bound
// to no pod is refused by it.
func awaitPodPatchPolicy(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, sa, pod, policy string) {
	t.Helper()
	token := serviceAccountToken(t, ctx, kc, ns, sa, nil)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		status, body := podPatch(t, ctx, kc, token, ns, pod, mergePatch, labelsPatch(map[string]any{"cluster.proto.actor/member-id": "probe"}), true)
		if deniedBy(policy, status, body) {
			return
		}
		if status != http.StatusOK {
			t.Fatalf("a dry-run patch of pod %s as %s, awaiting the policy %s: %d %s", pod, sa, policy, status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server does not enforce the ValidatingAdmissionPolicy %s after 30 s", policy)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
}

// checkPodPatchPolicy tries the policy of the pingmcp Deployment deployment
// in ns against the API server. Pods are made from the Deployment's
// template (nothing runs them): the node's own, another of the same
// Deployment, and one of another app (as the same service account). With a
// token of the service account bound to its own pod, a node may set, change
// and remove the provider's labels on that pod, as the provider and
// kubeRejoin do; every other change is refused by the policy: another label
// (a new one, one of its Deployment's, protoactor's prefix with a label the
// provider never writes, a kind label not "true"), an annotation, the spec,
// finalizers, the same labels on the other pods (with a token bound to the
// other app's pod too), and any patch with a token bound to no pod. The
// admin is not bound by it.
func checkPodPatchPolicy(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, deployment, policy string) {
	t.Helper()
	d := getDeployment(t, ctx, kc, ns, deployment)
	create := func(name string, labels map[string]string) *corev1.Pod {
		t.Helper()
		pod := corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       *d.Spec.Template.Spec.DeepCopy(),
		}
		status, body, err := kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", pod)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create pod %s: %d %v %s", name, status, err, body)
		}
		if err := json.Unmarshal(body, &pod); err != nil {
			t.Fatal(err)
		}
		return &pod
	}
	podLabels := d.Spec.Template.Labels
	own := create(deployment+"-policy-own", podLabels)
	sibling := create(deployment+"-policy-sibling", podLabels)
	// Another app's pod, which runs as the nodes' service account too.
	other := create("other-app", map[string]string{"app.kubernetes.io/name": "other-app"})
	sa := d.Spec.Template.Spec.ServiceAccountName
	awaitPodPatchPolicy(t, ctx, kc, ns, sa, own.Name, policy)
	token := serviceAccountToken(t, ctx, kc, ns, sa, own)

	// What the provider writes (registerMember: the pod's labels and its
	// own, replaced as a whole), what kubeRejoin merges, and the provider's
	// leaving (its labels removed, the pod's own kept).
	registered := map[string]string{
		"cluster.proto.actor/cluster": "pingmcp", "cluster.proto.actor/port": "7000", "cluster.proto.actor/member-id": "0123abcd",
		"cluster.proto.actor/kind-session": "true", "cluster.proto.actor/kind-principal": "true", "cluster.proto.actor/kind-prototopic": "true",
	}
	maps.Copy(registered, podLabels)
	replaceLabels := func(labels map[string]string) []map[string]any {
		return []map[string]any{{"op": "replace", "path": "/metadata/labels", "value": labels}}
	}
	for _, c := range []struct {
		what        string
		contentType string
		patch       any
	}{
		{"the provider registers", jsonPatch, replaceLabels(registered)},
		{"kubeRejoin gives a new member id", mergePatch, labelsPatch(map[string]any{"cluster.proto.actor/member-id": "4567ef01"})},
		{"the provider registers again", jsonPatch, replaceLabels(registered)},
		{"the provider leaves", jsonPatch, replaceLabels(podLabels)},
	} {
		if status, body := podPatch(t, ctx, kc, token, ns, own.Name, c.contentType, c.patch, false); status != http.StatusOK {
			t.Errorf("%s on its own pod: %d %s", c.what, status, body)
		}
	}
	var after corev1.Pod
	if status, body, err := kc.Do(ctx, http.MethodGet, "/api/v1/namespaces/"+ns+"/pods/"+own.Name, nil); err != nil || status != http.StatusOK {
		t.Fatalf("GET pod %s: %d %v %s", own.Name, status, err, body)
	} else if err := json.Unmarshal(body, &after); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(after.Labels, podLabels) {
		t.Errorf("pod %s's labels after the node's patches: %v, want %v", own.Name, after.Labels, podLabels)
	}
	if status, body := podPatch(t, ctx, kc, token, ns, own.Name, jsonPatch, replaceLabels(registered), false); status != http.StatusOK {
		t.Fatalf("the provider registers on its own pod: %d %s", status, body)
	}

	unbound := serviceAccountToken(t, ctx, kc, ns, sa, nil)
	provider := labelsPatch(map[string]any{"cluster.proto.actor/cluster": "pingmcp", "cluster.proto.actor/member-id": "89ab"})
	for _, c := range []struct {
		what        string
		token, pod  string
		contentType string
		patch       any
	}{
		{"a label of its own", token, own.Name, mergePatch, labelsPatch(map[string]any{"team": "x"})},
		{"its Deployment's label changed", token, own.Name, mergePatch, labelsPatch(map[string]any{"app.kubernetes.io/component": "other"})},
		{"its Deployment's label removed", token, own.Name, mergePatch, labelsPatch(map[string]any{"app.kubernetes.io/part-of": nil})},
		{"a label of protoactor's the provider never writes", token, own.Name, mergePatch, labelsPatch(map[string]any{"cluster.proto.actor/status-value": "x"})},
		{"a kind label not true", token, own.Name, mergePatch, labelsPatch(map[string]any{"cluster.proto.actor/kind-session": "false"})},
		{"every label replaced by the provider's", token, own.Name, jsonPatch, replaceLabels(map[string]string{"cluster.proto.actor/cluster": "pingmcp"})},
		{"an annotation", token, own.Name, mergePatch, map[string]any{"metadata": map[string]any{"annotations": map[string]any{"x": "y"}}}},
		{"the image", token, own.Name, jsonPatch, []map[string]any{{"op": "replace", "path": "/spec/containers/0/image", "value": "example.invalid/evil:1"}}},
		{"a deadline", token, own.Name, mergePatch, map[string]any{"spec": map[string]any{"activeDeadlineSeconds": 1}}},
		{"a finalizer", token, own.Name, mergePatch, map[string]any{"metadata": map[string]any{"finalizers": []string{"example.com/keep"}}}},
		{"the provider's labels on another pod of its Deployment", token, sibling.Name, mergePatch, provider},
		{"the provider's labels on another app's pod", token, other.Name, mergePatch, provider},
		{"the provider's labels with a token bound to no pod", unbound, own.Name, mergePatch, provider},
		{"the provider's labels on its own pod, another app's", serviceAccountToken(t, ctx, kc, ns, sa, other), other.Name, mergePatch, provider},
	} {
		if status, body := podPatch(t, ctx, kc, c.token, ns, c.pod, c.contentType, c.patch, false); !deniedBy(policy, status, body) {
			t.Errorf("%s (pod %s): %d %s; want the policy %s to refuse it", c.what, c.pod, status, body, policy)
		}
	}
	// The policy binds the nodes' service account alone.
	if status, body := podPatch(t, ctx, kc, kc.AdminToken, ns, other.Name, mergePatch, labelsPatch(map[string]any{"team": "x"}), false); status != http.StatusOK {
		t.Errorf("the admin labelling another app's pod: %d %s", status, body)
	}
	// The pods go (unscheduled: at once), none left labelled a member.
	for _, p := range []*corev1.Pod{own, sibling, other} {
		if status, body, err := kc.Do(ctx, http.MethodDelete, "/api/v1/namespaces/"+ns+"/pods/"+p.Name+"?gracePeriodSeconds=0", nil); err != nil || status != http.StatusOK {
			t.Errorf("DELETE pod %s: %d %v %s", p.Name, status, err, body)
		}
	}
}
