package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
)

// The ValidatingAdmissionPolicy that keeps the nodes' pod patches to their
// own pod's membership labels is tried against a real API server by
// e2e/kube_test.go (TestKubeDeploy, TestKubeHelm). Here: that it names the
// nodes' service account, their namespace and their pods' labels, and the
// labels protoactor's k8s provider writes, as protoactor spells them.

// celString is s as a CEL string literal (the policy's are single-quoted).
func celString(s string) string { return "'" + s + "'" }

// checkPodPatchPolicy checks that policy and binding (nil: missing) keep
// the service account of the pingmcp Deployment d to its own pods'
// provider labels.
func checkPodPatchPolicy(t *testing.T, d *appsv1.Deployment, policy *admissionregistrationv1.ValidatingAdmissionPolicy,
	binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	if policy == nil || binding == nil {
		t.Fatalf("deployment %s: no ValidatingAdmissionPolicy or no binding of it keeps its service account to its pods' labels", d.Name)
	}
	if binding.Spec.PolicyName != policy.Name || !slices.Equal(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) ||
		binding.Spec.MatchResources != nil || binding.Spec.ParamRef != nil {
		t.Errorf("binding %s: %+v, want policy %s denying, everywhere", binding.Name, binding.Spec, policy.Name)
	}
	spec := policy.Spec
	if spec.FailurePolicy == nil || *spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("policy %s: failurePolicy %v, want Fail (a request it cannot judge is refused)", policy.Name, show(spec.FailurePolicy))
	}
	if c := spec.MatchConstraints; c == nil || len(c.ResourceRules) != 1 || c.NamespaceSelector != nil || c.ObjectSelector != nil ||
		!slices.Equal(c.ResourceRules[0].APIGroups, []string{""}) || !slices.Equal(c.ResourceRules[0].Resources, []string{"pods", "pods/*"}) ||
		!slices.Equal(c.ResourceRules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}) {
		t.Errorf("policy %s: matchConstraints %+v, want every operation on pods and their subresources, in every namespace", policy.Name, show(c))
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", d.Namespace, d.Spec.Template.Spec.ServiceAccountName)
	if m := spec.MatchConditions; len(m) != 1 || m[0].Expression != "request.userInfo.username == "+celString(user) {
		t.Errorf("policy %s: matchConditions %+v, want the user %s alone", policy.Name, m, user)
	}
	vars := map[string]string{}
	for _, v := range spec.Variables {
		vars[v.Name] = v.Expression
	}
	var pods []string
	for _, k := range slices.Sorted(maps.Keys(d.Spec.Selector.MatchLabels)) {
		pods = append(pods, celString(k)+": "+celString(d.Spec.Selector.MatchLabels[k]))
	}
	for name, want := range map[string]string{
		"podNamespace": celString(d.Namespace),
		"podLabels":    "{" + strings.Join(pods, ", ") + "}",
		// What protoactor's provider writes: these three, and a
		// LabelKind-<kind> label "true" for each kind the node hosts.
		"providerLabels": "[" + strings.Join([]string{celString(k8s.LabelCluster), celString(k8s.LabelPort), celString(k8s.LabelMemberID)}, ", ") + "]",
		"providerKind":   celString(k8s.LabelKind + "-"),
	} {
		if vars[name] != want {
			t.Errorf("policy %s: variable %s is %q, want %q", policy.Name, name, vars[name], want)
		}
	}
	if len(spec.Validations) == 0 || spec.Validations[0].Expression != "variables.patch" {
		t.Errorf("policy %s: its first validation is not variables.patch (a patch of the pod itself, nothing else)", policy.Name)
	}
	for _, v := range spec.Validations {
		if v.Reason == nil || *v.Reason != "Forbidden" || v.Message == "" {
			t.Errorf("policy %s: validation %q: reason %v, message %q; want Forbidden, with a message", policy.Name, v.Expression, show(v.Reason), v.Message)
		}
	}
}

// TestPodPatchPolicy: deploy/rbac.yaml's ValidatingAdmissionPolicy, for
// every pingmcp serve Deployment of the k8s provider.
func TestPodPatchPolicy(t *testing.T) {
	m := load(t)
	for _, b := range kubeNodes(t, m) {
		d := b.deployment
		var policy *admissionregistrationv1.ValidatingAdmissionPolicy
		var binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
		for _, p := range m.admissionPolicies {
			if strings.Contains(strings.Join(conditionExpressions(p), " "), "'system:serviceaccount:"+d.Namespace+":"+d.Spec.Template.Spec.ServiceAccountName+"'") {
				policy = p
			}
		}
		for _, pb := range m.policyBindings {
			if policy != nil && pb.Spec.PolicyName == policy.Name {
				binding = pb
			}
		}
		checkPodPatchPolicy(t, d, policy, binding)
	}
}

func conditionExpressions(p *admissionregistrationv1.ValidatingAdmissionPolicy) []string {
	var out []string
	for _, c := range p.Spec.MatchConditions {
		out = append(out, c.Expression)
	}
	return out
}

// TestHelmPodPatchPolicy: the chart renders the policy (podPatchPolicy,
// on by default) for its release's service account, namespace and pods,
// under a name of the release and its namespace (it is cluster-scoped);
// turned off, none.
func TestHelmPodPatchPolicy(t *testing.T) {
	o := defaultRelease(t, nil)
	o.Name, o.Namespace = "mcp", "tools"
	chart, _ := renderChart(t, o)
	const name = "mcp-pingmcp-cluster-membership.tools"
	var d appsv1.Deployment
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	decodeObject(t, chart["apps/v1/Deployment tools/mcp-pingmcp"], &d)
	p, b := chart["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy /"+name], chart["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding /"+name]
	if p == nil || b == nil {
		t.Fatalf("release mcp in tools: no ValidatingAdmissionPolicy or binding %s", name)
	}
	decodeObject(t, p, &policy)
	decodeObject(t, b, &binding)
	if d.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "mcp" {
		t.Fatalf("release mcp: selector %v", d.Spec.Selector.MatchLabels)
	}
	checkPodPatchPolicy(t, &d, &policy, &binding)

	o.Values = defaultRelease(t, map[string]any{"podPatchPolicy": map[string]any{"enabled": false}}).Values
	chart, _ = renderChart(t, o)
	for k := range chart {
		if strings.Contains(k, "admissionregistration") {
			t.Errorf("podPatchPolicy.enabled=false renders %s", k)
		}
	}
}
