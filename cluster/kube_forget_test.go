package cluster

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestForgetMemberIDOutlivesATransientAPIError: a container restarted in
// place while the API server answers its first request with a transient
// error (503, a timeout: a control-plane upgrade, API priority and
// fairness shedding load) still loses the dead process's member id before
// it joins. protoactor's provider retries its registration until the API
// server takes it, keeping the labels the pod has: had forgetMemberID given
// up after one try, the pod would rejoin under the id the other nodes
// blocked, and stay out of the cluster while ready (found by a review).
func TestForgetMemberIDOutlivesATransientAPIError(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pingmcp-0", Namespace: "pingmcp",
		Labels: map[string]string{"app.kubernetes.io/name": "pingmcp", k8s.LabelCluster: "pingmcp", k8s.LabelMemberID: "dead-process-id"}}}
	client := fake.NewSimpleClientset(pod)
	var calls atomic.Int32
	client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) == 1 { // the API server's first answer only
			return true, nil, apierrors.NewServiceUnavailable("the API server is restarting")
		}
		return false, nil, nil
	})
	done := make(chan struct{})
	defer close(done)
	k := &kubeRejoin{client: client, namespace: "pingmcp", pod: "pingmcp-0", logger: slog.New(slog.DiscardHandler), done: done}
	if afterStart := k.forgetMemberID(); afterStart != nil {
		afterStart() // as the node does once it started
	}

	deadline := time.Now().Add(3 * kubeRejoinRetry)
	for {
		p, err := client.CoreV1().Pods("pingmcp").Get(context.Background(), "pingmcp-0", metav1.GetOptions{})
		if err == nil && p.Labels[k8s.LabelMemberID] != "dead-process-id" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a transient error the pod still carries the dead process's member id (labels %v, %d GETs): "+
				"protoactor's provider registers under it, which the other nodes blocked", p.Labels, calls.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without an error, the dead process's member id is gone before the node
// starts (nothing left to do after), and a pod without one is left as it
// is.
func TestForgetMemberID(t *testing.T) {
	for _, id := range []string{"dead-process-id", ""} {
		labels := map[string]string{"app.kubernetes.io/name": "pingmcp"}
		if id != "" {
			labels[k8s.LabelMemberID] = id
		}
		client := fake.NewSimpleClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pingmcp-0", Namespace: "pingmcp", Labels: labels}})
		k := &kubeRejoin{client: client, namespace: "pingmcp", pod: "pingmcp-0", logger: slog.New(slog.DiscardHandler), done: make(chan struct{})}
		if afterStart := k.forgetMemberID(); afterStart != nil {
			t.Errorf("member id %q: something left to do after the start", id)
		}
		p, err := client.CoreV1().Pods("pingmcp").Get(context.Background(), "pingmcp-0", metav1.GetOptions{})
		if _, has := p.Labels[k8s.LabelMemberID]; err != nil || has || p.Labels["app.kubernetes.io/name"] != "pingmcp" {
			t.Errorf("member id %q: the pod's labels after: %v (%v)", id, p.Labels, err)
		}
	}
}
