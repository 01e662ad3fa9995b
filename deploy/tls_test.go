package deploy

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/loopback"
	corev1 "k8s.io/api/core/v1"
)

// clusterTLSProblems says what keeps a pingmcp serve container from mutual
// TLS on its cluster port with files of a mounted Secret: no
// --cluster-insecure, the three TLS flags each naming a file of one Secret
// volume, mounted read-only, the key readable by the pod's user alone
// (besides root), and a non-loopback cluster address (so that the TLS
// checks of config.Parse ran on them).
func clusterTLSProblems(b binaryContainer) []string {
	var out []string
	c := b.cfg
	if c.ClusterInsecure {
		out = append(out, "--cluster-insecure: the cluster port would be plaintext, forwarded requests and their bearer tokens readable on the pod network")
	}
	if loopback.Is(c.ClusterAddr) {
		out = append(out, fmt.Sprintf("--cluster-addr %q is loopback: other pods cannot reach it", c.ClusterAddr))
	}
	spec := &b.deployment.Spec.Template.Spec
	var secret string
	for _, f := range []struct{ flag, path string }{
		{"cluster-tls-cert", c.ClusterTLSCert}, {"cluster-tls-key", c.ClusterTLSKey}, {"cluster-tls-ca", c.ClusterTLSCA},
	} {
		if f.path == "" {
			out = append(out, fmt.Sprintf("no --%s", f.flag))
			continue
		}
		key, sm, ok := b.secretFile(f.path)
		if !ok {
			out = append(out, fmt.Sprintf("--%s does not name a file of a Secret volume the container mounts", f.flag))
			continue
		}
		if secret != "" && sm.volume.Secret.SecretName != secret {
			out = append(out, fmt.Sprintf("--%s comes from Secret %s, the others from %s: keep a node's certificate, key and CA together", f.flag, sm.volume.Secret.SecretName, secret))
		}
		secret = sm.volume.Secret.SecretName
		if !sm.mount.ReadOnly {
			out = append(out, fmt.Sprintf("volume %s is mounted read-write", sm.mount.Name))
		}
		mode := int32(0o644) // the API's default
		if m := sm.volume.Secret.DefaultMode; m != nil {
			mode = *m
		}
		for _, it := range sm.volume.Secret.Items {
			if it.Key == key && it.Mode != nil {
				mode = *it.Mode
			}
		}
		// Secret files belong to root, and to the fsGroup when there is one.
		pod := spec.SecurityContext
		group := pod != nil && pod.FSGroup != nil
		if mode&0o004 == 0 && !(group && mode&0o040 != 0) {
			out = append(out, fmt.Sprintf("--%s: Secret key %s has mode %#o and the pod no fsGroup to read it by: the node cannot read it", f.flag, key, mode))
		}
		if f.flag == "cluster-tls-key" && mode&0o004 != 0 {
			out = append(out, fmt.Sprintf("--cluster-tls-key: Secret key %s has mode %#o: the node's private key is readable by any user in the container", key, mode))
		}
	}
	return out
}

// TestClusterTLS checks that every pingmcp serve container speaks mutual
// TLS on its cluster port with the files of a mounted Secret, and that the
// check itself catches a plaintext or half-configured one.
func TestClusterTLS(t *testing.T) {
	m := load(t)
	found := false
	for _, b := range binaries(t, m) {
		if b.command != "serve" {
			continue
		}
		found = true
		for _, p := range clusterTLSProblems(b) {
			t.Errorf("%s: %s", b, p)
		}
		// The files the kubelet would mount are the ones pingmcp checked:
		// the stand-in certificate was accepted by config.Parse.
		if pem, err := os.ReadFile(b.cfg.ClusterTLSCert); err != nil || !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
			t.Errorf("%s: --cluster-tls-cert holds no certificate in the test: %v", b, err)
		}
	}
	if !found {
		t.Fatal("no pingmcp serve container")
	}

	serve := m.deployment("pingmcp")
	if serve == nil {
		t.Fatal("no deployment pingmcp")
	}
	for _, tc := range []struct {
		name   string
		mutate func(spec *corev1.PodSpec, c *corev1.Container)
		want   string
	}{
		{"insecure", func(_ *corev1.PodSpec, c *corev1.Container) {
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cluster-tls-") })
			c.Args = append(c.Args, "--cluster-insecure")
		}, "--cluster-insecure"},
		{"world-readable key", func(spec *corev1.PodSpec, _ *corev1.Container) {
			for i := range spec.Volumes {
				if spec.Volumes[i].Secret != nil {
					spec.Volumes[i].Secret.DefaultMode = nil
				}
			}
		}, "readable by any user"},
		{"unreadable key", func(spec *corev1.PodSpec, _ *corev1.Container) { spec.SecurityContext.FSGroup = nil }, "cannot read it"},
		{"read-write mount", func(_ *corev1.PodSpec, c *corev1.Container) { c.VolumeMounts[0].ReadOnly = false }, "read-write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := serve.DeepCopy()
			spec := &d.Spec.Template.Spec
			tc.mutate(spec, &spec.Containers[0])
			b, err := m.parseBinary(t, d, &spec.Containers[0])
			if err != nil {
				t.Fatal(err)
			}
			if ps := clusterTLSProblems(b); !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("problems %q, want one mentioning %q", ps, tc.want)
			}
		})
	}
}
