package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kubeRejoin takes this node back into a cluster of the k8s provider after
// its pod left it while the node ran.
//
// protoactor's k8s provider labels the node's pod with a member id and
// reports as members the pods that are running and ready. A pod that turns
// unready (a probe that timed out under load) leaves every node's topology,
// its own too, and protoactor's MemberList blocks that member id for good:
// ready again, the pod would never be a member again. So when this node
// sees itself leave, it labels its pod with a new member id, which no node
// has blocked: the pod joins again once it is ready.
type kubeRejoin struct {
	client    kubernetes.Interface
	namespace string
	pod       string
	logger    *slog.Logger
	done      <-chan struct{} // closed as the node stops

	mu   sync.Mutex
	busy bool
}

// serviceAccountNamespace is where Kubernetes tells a pod its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func newKubeRejoin(logger *slog.Logger, done <-chan struct{}) (*kubeRejoin, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	pod, err := os.Hostname() // as protoactor's provider finds its pod
	if err != nil {
		return nil, err
	}
	ns, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return nil, err
	}
	return &kubeRejoin{client: client, namespace: strings.TrimSpace(string(ns)), pod: pod, logger: logger, done: done}, nil
}

// topology looks for this node (at addr) among the members that left.
func (k *kubeRejoin) topology(t *cluster.ClusterTopology, addr string) {
	for _, m := range t.Left {
		if m.Address() == addr {
			k.relabel(m.Id)
			return
		}
	}
}

// relabel gives the pod a new member id, trying again every kubeRejoinRetry
// until the API server takes it or the node stops.
func (k *kubeRejoin) relabel(old string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy {
		return
	}
	k.busy = true
	go func() {
		defer func() { k.mu.Lock(); k.busy = false; k.mu.Unlock() }()
		select {
		case <-k.done: // the node stops: its pod leaves for that
			return
		default:
		}
		id := newMemberID()
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{k8s.LabelMemberID: id}}})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), kubeRejoinRetry)
			_, err := k.client.CoreV1().Pods(k.namespace).Patch(ctx, k.pod, types.MergePatchType, patch, metav1.PatchOptions{})
			cancel()
			if err == nil {
				k.logger.Warn("this node's pod left the cluster while the node ran (it turned unready); it takes a new member id, to join again once ready", "pod", k.pod, "old", old, "new", id)
				return
			}
			k.logger.Error("cannot give this node's pod a new member id; it stays out of the cluster until it can", "pod", k.pod, "error", err)
			select {
			case <-k.done:
				return
			case <-time.After(kubeRejoinRetry):
			}
		}
	}()
}

// forgetMemberID removes the member id an earlier process of this pod
// labelled it with (its container restarted in place: killed for its
// memory, or by its liveness probe), before protoactor's provider labels
// the pod: the provider keeps the labels a pod has over its own, so the
// new process would take on the dead one's id, which the other nodes
// blocked when the pod turned unready, and never be a member again. On a
// pod without one it changes nothing. If the API server does not answer
// (a transient error), it returns what to call once the node started:
// that labels the pod with a new member id, trying until the API server
// takes it, as after the pod turned unready (relabel).
func (k *kubeRejoin) forgetMemberID() (afterStart func()) {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{k8s.LabelMemberID: nil}}})
	ctx, cancel := context.WithTimeout(context.Background(), kubeRejoinRetry)
	defer cancel()
	pod, err := k.client.CoreV1().Pods(k.namespace).Get(ctx, k.pod, metav1.GetOptions{})
	if err != nil {
		k.logger.Warn("cannot read this node's pod for an earlier process's member id; it takes a new one once started", "pod", k.pod, "error", err)
		return func() { k.relabel("") }
	}
	old, ok := pod.Labels[k8s.LabelMemberID]
	if !ok {
		return nil
	}
	if _, err := k.client.CoreV1().Pods(k.namespace).Patch(ctx, k.pod, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		k.logger.Warn("cannot remove an earlier process's member id from this node's pod; it takes a new one once started", "pod", k.pod, "old", old, "error", err)
		return func() { k.relabel(old) }
	}
	k.logger.Warn("this node's pod carried an earlier process's member id (its container restarted in place); the node takes a new one", "pod", k.pod, "old", old)
	return nil
}

// kubeRejoinRetry bounds one label patch, and spaces the tries.
const kubeRejoinRetry = 5 * time.Second

// newMemberID is a member id like protoactor's provider draws: 32 hex digits.
func newMemberID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
