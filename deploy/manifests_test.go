package deploy

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pingmcp/pingmcp/config"
)

// protoactorLabelPrefix is the prefix of the labels protoactor's k8s provider
// patches onto each member pod (cluster, port, member-id, kind-<kind>). It
// replaces the pod's labels with them at run time, so nothing may select on
// them.
const protoactorLabelPrefix = "cluster.proto.actor/"

// leaveTime is how long a `pingmcp serve` pod takes to leave the cluster
// once its in-flight requests are done (--drain-timeout): the k8s provider
// takes up to 5 s to deregister the pod and 5 s to stop watching.
const leaveTime = 10 * time.Second

// graceMargin is the time the termination grace period leaves beyond
// draining and leaving.
const graceMargin = 10 * time.Second

func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(podLabels))
}

// deploymentsSelected lists the Deployments whose pods match.
func (m *manifests) deploymentsSelected(namespace string, match func(map[string]string) bool) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range m.deployments {
		if d.Namespace == namespace && match(d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

func (m *manifests) serviceBackends(s *corev1.Service) []*appsv1.Deployment {
	if len(s.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	return m.deploymentsSelected(s.Namespace, func(l map[string]string) bool { return sel.Matches(labels.Set(l)) })
}

// containerPort finds the port of a pod named name.
func containerPort(spec *corev1.PodSpec, name string) (*corev1.Container, *corev1.ContainerPort) {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for j := range c.Ports {
			if c.Ports[j].Name == name {
				return c, &c.Ports[j]
			}
		}
	}
	return nil, nil
}

func portNumber(p *corev1.ContainerPort) string {
	if p == nil {
		return "missing"
	}
	return strconv.Itoa(int(p.ContainerPort))
}

func portOf(hostport string) (int32, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(p, 10, 32)
	return int32(n), err
}

// clusterScoped are the kinds here that belong to no namespace.
var clusterScoped = map[string]bool{
	"v1/Namespace": true,
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy":        true,
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": true,
}

func TestObjectsShareNamespaceAndLabels(t *testing.T) {
	m := load(t)
	if len(m.namespaces) != 1 {
		t.Fatalf("%d Namespaces, want 1", len(m.namespaces))
	}
	ns := m.namespaces[0].Name
	for _, o := range m.all {
		l := o.meta.GetLabels()
		if o.kind != "v1/Namespace" {
			want := ns
			if clusterScoped[o.kind] {
				want = ""
			}
			if o.meta.GetNamespace() != want {
				t.Errorf("%s: namespace %q, want %q", o, o.meta.GetNamespace(), want)
			}
			if l["app.kubernetes.io/component"] == "" {
				t.Errorf("%s: no app.kubernetes.io/component label", o)
			}
		}
		if l["app.kubernetes.io/name"] == "" || l["app.kubernetes.io/part-of"] != "pingmcp" {
			t.Errorf("%s: labels %v, want app.kubernetes.io/name and app.kubernetes.io/part-of=pingmcp", o, l)
		}
		for k := range l {
			if strings.HasPrefix(k, protoactorLabelPrefix) {
				t.Errorf("%s: label %s belongs to protoactor", o, k)
			}
		}
	}
	for _, d := range m.deployments {
		pod := d.Spec.Template.Labels
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"} {
			if pod[k] == "" || pod[k] != d.Labels[k] {
				t.Errorf("deployment %s: pod label %s=%q, deployment's %q", d.Name, k, pod[k], d.Labels[k])
			}
		}
		if !selects(d.Spec.Selector, pod) {
			t.Errorf("deployment %s: selector %v does not match its pods' labels %v", d.Name, d.Spec.Selector, pod)
		}
		for k := range d.Spec.Selector.MatchLabels {
			if strings.HasPrefix(k, protoactorLabelPrefix) {
				t.Errorf("deployment %s: selects on %s, which protoactor rewrites", d.Name, k)
			}
		}
		if others := m.deploymentsSelected(d.Namespace, func(l map[string]string) bool { return selects(d.Spec.Selector, l) }); len(others) != 1 {
			t.Errorf("deployment %s: its selector matches the pods of %d deployments", d.Name, len(others))
		}
	}
}

func TestServicesSelectOneWorkload(t *testing.T) {
	m := load(t)
	if len(m.services) == 0 {
		t.Fatal("no Services")
	}
	for _, s := range m.services {
		t.Run(s.Name, func(t *testing.T) {
			backends := m.serviceBackends(s)
			if len(backends) != 1 {
				t.Fatalf("selector %v matches %d deployments, want 1", s.Spec.Selector, len(backends))
			}
			d := backends[0]
			for _, p := range s.Spec.Ports {
				if p.Name == "" {
					t.Errorf("port %d has no name", p.Port)
				}
				if p.TargetPort.Type != intstr.String {
					t.Errorf("port %s: targetPort %s is a number; name the container port", p.Name, p.TargetPort.String())
					continue
				}
				c, cp := containerPort(&d.Spec.Template.Spec, p.TargetPort.StrVal)
				if cp == nil {
					t.Errorf("port %s: targetPort %q is no container port of deployment %s", p.Name, p.TargetPort.StrVal, d.Name)
					continue
				}
				if proto(cp.Protocol) != proto(p.Protocol) {
					t.Errorf("port %s: protocol %s, container %s's port %s", p.Name, proto(p.Protocol), c.Name, proto(cp.Protocol))
				}
			}
		})
	}
	// Every pingmcp listener is declared, under the name the Services use.
	for _, b := range binaries(t, m) {
		spec := &b.deployment.Spec.Template.Spec
		want, err := portOf(b.cfg.Addr)
		if err != nil {
			t.Errorf("%s: --addr %q: %v", b, b.cfg.Addr, err)
			continue
		}
		if _, cp := containerPort(spec, "http"); cp == nil || cp.ContainerPort != want {
			t.Errorf("%s: --addr %q, but container port \"http\" is %s", b, b.cfg.Addr, portNumber(cp))
		}
	}
	// /mcp is served by nodes that are edges.
	for _, s := range m.services {
		for _, b := range binaries(t, m) {
			if b.command == "serve" && slices.Contains(m.serviceBackends(s), b.deployment) && b.cfg.Role == "member" {
				t.Errorf("service %s sends traffic to %s, a member that serves no /mcp", s.Name, b)
			}
		}
	}
}

func proto(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func TestProbes(t *testing.T) {
	m := load(t)
	commands := map[*corev1.Container]binaryContainer{}
	for _, b := range binaries(t, m) {
		commands[b.container] = b
	}
	for _, d := range m.deployments {
		spec := &d.Spec.Template.Spec
		for i := range spec.Containers {
			c := &spec.Containers[i]
			t.Run(d.Name+"/"+c.Name, func(t *testing.T) {
				b, isBinary := commands[c]
				for _, p := range []struct {
					name  string
					probe *corev1.Probe
				}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
					if p.probe == nil {
						t.Errorf("no %s probe", p.name)
						continue
					}
					var port intstr.IntOrString
					switch h := p.probe.ProbeHandler; {
					case h.HTTPGet != nil:
						port = h.HTTPGet.Port
						if isBinary && b.command != "serve" && b.command != "dev" {
							t.Errorf("%s probe: GET %s, but pingmcp %s serves no health endpoint", p.name, h.HTTPGet.Path, b.command)
						}
						if isBinary && h.HTTPGet.Path != "/healthz" && h.HTTPGet.Path != "/readyz" {
							t.Errorf("%s probe: path %q; pingmcp serves /healthz and /readyz", p.name, h.HTTPGet.Path)
						}
					case h.TCPSocket != nil:
						port = h.TCPSocket.Port
					case h.Exec != nil:
						continue
					default:
						t.Errorf("%s probe: no handler", p.name)
						continue
					}
					if port.Type != intstr.String {
						t.Errorf("%s probe: port %s is a number; name the container port", p.name, port.String())
					} else if _, cp := containerPort(spec, port.StrVal); cp == nil {
						t.Errorf("%s probe: port %q is no container port", p.name, port.StrVal)
					}
				}
				if !isBinary || b.command != "serve" {
					return
				}
				if g := c.LivenessProbe.HTTPGet; g == nil || g.Path != "/healthz" {
					t.Errorf("liveness must be GET /healthz: /readyz fails while the cluster has no member, and restarting would not help")
				}
				// protoactor's k8s provider makes a pod a member only once all
				// its containers are ready; /readyz of a node serving /mcp
				// waits for a member hosting sessions. With /readyz as the
				// readiness probe no pod would ever be ready.
				if g := c.ReadinessProbe.HTTPGet; b.cfg.ClusterProvider == "k8s" && b.cfg.Role != "member" && (g == nil || g.Path != "/healthz") {
					t.Errorf("readiness of a %s node on the k8s provider must be GET /healthz (see the comment in pingmcp.yaml)", b.cfg.Role)
				}
			})
		}
	}
}

func TestDisruptionBudgetAndAutoscaler(t *testing.T) {
	m := load(t)
	serveDeployments := map[string]bool{}
	for _, b := range binaries(t, m) {
		if b.command == "serve" {
			serveDeployments[b.deployment.Name] = true
		}
	}
	budgeted := map[string]bool{}
	for _, p := range m.pdbs {
		targets := m.deploymentsSelected(p.Namespace, func(l map[string]string) bool { return selects(p.Spec.Selector, l) })
		if len(targets) != 1 {
			t.Errorf("pdb %s: selects the pods of %d deployments, want 1", p.Name, len(targets))
			continue
		}
		budgeted[targets[0].Name] = true
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("pdb %s: neither maxUnavailable nor minAvailable", p.Name)
		}
		if u := p.Spec.MaxUnavailable; u != nil && u.Type == intstr.Int && u.IntVal < 1 {
			t.Errorf("pdb %s: maxUnavailable %d blocks every node drain", p.Name, u.IntVal)
		}
	}
	scaled := map[string]bool{}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		d := find(m.deployments, h.Namespace, ref.Name)
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || d == nil {
			t.Errorf("hpa %s: scales %s %s %s, which is no deployment here", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		scaled[d.Name] = true
		if d.Spec.Replicas != nil {
			t.Errorf("hpa %s: deployment %s sets replicas, so every apply resets what the autoscaler chose", h.Name, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("hpa %s: minReplicas %s, maxReplicas %d: want 2 ≤ min ≤ max", h.Name, show(h.Spec.MinReplicas), h.Spec.MaxReplicas)
		}
		cpu := false
		for _, mt := range h.Spec.Metrics {
			if mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			t.Errorf("hpa %s: no CPU utilization metric", h.Name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Errorf("hpa %s: container %s requests no CPU, so its utilization is undefined", h.Name, c.Name)
			}
		}
		for _, p := range m.pdbs {
			if u := p.Spec.MinAvailable; u != nil && u.Type == intstr.Int && h.Spec.MinReplicas != nil && u.IntVal >= *h.Spec.MinReplicas &&
				selects(p.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("pdb %s: minAvailable %d ≥ hpa %s's minReplicas: no pod could ever be evicted", p.Name, u.IntVal, h.Name)
			}
		}
	}
	for name := range serveDeployments {
		if !budgeted[name] {
			t.Errorf("deployment %s (pingmcp serve) has no PodDisruptionBudget", name)
		}
		if !scaled[name] {
			t.Errorf("deployment %s (pingmcp serve) has no HorizontalPodAutoscaler", name)
		}
	}
}

// kubeNodes are the pingmcp serve containers of the k8s provider; there
// must be one.
func kubeNodes(t *testing.T, m *manifests) []binaryContainer {
	t.Helper()
	out := slices.DeleteFunc(binaries(t, m), func(b binaryContainer) bool {
		return b.command != "serve" || b.cfg.ClusterProvider != "k8s"
	})
	if len(out) == 0 {
		t.Fatal("no pingmcp serve container uses --cluster-provider k8s")
	}
	return out
}

// TestClusterMembership checks what protoactor's k8s provider needs of a pod:
// its service account may get, list, watch and patch pods in its namespace
// (it reads the namespace from the mounted token), its hostname is its pod
// name, and it advertises its pod IP on the port it listens on.
func TestClusterMembership(t *testing.T) {
	m := load(t)
	for _, b := range kubeNodes(t, m) {
		t.Run(b.deployment.Name, func(t *testing.T) {
			d, spec := b.deployment, &b.deployment.Spec.Template.Spec
			if spec.Hostname != "" || spec.Subdomain != "" || spec.HostNetwork {
				t.Error("hostname, subdomain or hostNetwork set: the provider takes os.Hostname() for the pod's name")
			}
			sa := find(m.serviceAccounts, d.Namespace, spec.ServiceAccountName)
			if sa == nil {
				t.Fatalf("service account %q is not defined here", spec.ServiceAccountName)
			}
			if (spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken) ||
				(spec.AutomountServiceAccountToken == nil && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken) {
				t.Error("the service account token is not mounted: the provider cannot reach the API server nor learn its namespace")
			}
			granted := map[string]bool{}
			for _, rb := range m.roleBindings {
				if rb.Namespace != d.Namespace || !slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
					return s.Kind == "ServiceAccount" && s.Name == sa.Name && s.Namespace == sa.Namespace
				}) {
					continue
				}
				if rb.RoleRef.Kind != "Role" || rb.RoleRef.APIGroup != rbacv1.GroupName {
					t.Errorf("rolebinding %s: roleRef %v, want a Role", rb.Name, rb.RoleRef)
					continue
				}
				role := find(m.roles, rb.Namespace, rb.RoleRef.Name)
				if role == nil {
					t.Errorf("rolebinding %s: no Role %s", rb.Name, rb.RoleRef.Name)
					continue
				}
				for _, r := range role.Rules {
					if slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") {
						t.Errorf("role %s: wildcard rule %v; grant only what the provider uses", role.Name, r)
					}
					if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") && len(r.ResourceNames) == 0 {
						for _, v := range r.Verbs {
							granted[v] = true
						}
					}
				}
			}
			for _, v := range []string{"get", "list", "watch", "patch"} {
				if !granted[v] {
					t.Errorf("service account %s may not %s pods", sa.Name, v)
				}
			}

			var podIPVar string
			for _, e := range b.container.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
					podIPVar = e.Name
				}
			}
			adv := b.cfg.ClusterAdvertise
			if host, _, err := net.SplitHostPort(adv); err != nil || host != samplePodIP || podIPVar == "" {
				t.Errorf("--cluster-advertised-addr %q: want $(VAR):port with VAR from status.podIP, or protoactor takes its own actors for moved ones", adv)
			}
			host, _, err := net.SplitHostPort(b.cfg.ClusterAddr)
			if ip := net.ParseIP(host); err != nil || (host != "" && (ip == nil || !ip.IsUnspecified())) {
				t.Errorf("--cluster-addr %q: other pods dial the pod IP, so listen on every interface", b.cfg.ClusterAddr)
			}
			listen, err1 := portOf(b.cfg.ClusterAddr)
			advertised, err2 := portOf(adv)
			_, cp := containerPort(spec, "cluster")
			if err1 != nil || err2 != nil || cp == nil || listen == 0 || listen != advertised || cp.ContainerPort != listen {
				t.Errorf("--cluster-addr %q, --cluster-advertised-addr %q, container port \"cluster\" %s: want one fixed port (the provider publishes it as the pod's cluster.proto.actor/port)",
					b.cfg.ClusterAddr, adv, portNumber(cp))
			}
		})
	}
	// Only the nodes get the membership role, and only they mount a token.
	nodeAccounts, runsServe := map[string]bool{}, map[*appsv1.Deployment]bool{}
	for _, b := range binaries(t, m) {
		if b.command == "serve" {
			nodeAccounts[b.deployment.Spec.Template.Spec.ServiceAccountName] = true
			runsServe[b.deployment] = true
		}
	}
	for _, d := range m.deployments {
		if runsServe[d] {
			continue
		}
		spec := &d.Spec.Template.Spec
		if spec.ServiceAccountName != "" && nodeAccounts[spec.ServiceAccountName] {
			t.Errorf("deployment %s runs as the nodes' service account %s, which may patch pods", d.Name, spec.ServiceAccountName)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("deployment %s never calls the API server: set automountServiceAccountToken: false", d.Name)
		}
	}
}

func TestReferencesResolve(t *testing.T) {
	m := load(t)
	referenced := map[string]bool{}                // Secrets used whole or in part
	referencedKeys := map[string]map[string]bool{} // Secret → keys used one by one
	useKey := func(secret, key string) {
		if referencedKeys[secret] == nil {
			referencedKeys[secret] = map[string]bool{}
		}
		referencedKeys[secret][key] = true
	}
	whole := map[string]bool{} // Secrets used whole: envFrom, volumes
	for _, d := range m.deployments {
		spec := &d.Spec.Template.Spec
		if spec.ServiceAccountName != "" && find(m.serviceAccounts, d.Namespace, spec.ServiceAccountName) == nil {
			t.Errorf("deployment %s: no ServiceAccount %s", d.Name, spec.ServiceAccountName)
		}
		for i := range spec.Containers {
			c := &spec.Containers[i]
			if _, err := m.resolveEnv(d.Namespace, c); err != nil {
				t.Errorf("deployment %s, container %s: %v", d.Name, c.Name, err)
			}
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
					referenced[r.SecretKeyRef.Name] = true
					useKey(r.SecretKeyRef.Name, r.SecretKeyRef.Key)
					// resolveEnv has checked that the Secret has that key.
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					referenced[e.SecretRef.Name] = true
					whole[e.SecretRef.Name] = true
				}
			}
			for _, vm := range c.VolumeMounts {
				if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) {
					t.Errorf("deployment %s, container %s: mounts volume %s, which the pod does not have", d.Name, c.Name, vm.Name)
				}
			}
		}
		for _, v := range spec.Volumes {
			if s := v.Secret; s != nil {
				referenced[s.SecretName] = true
				whole[s.SecretName] = true
				if find(m.secrets, d.Namespace, s.SecretName) == nil {
					t.Errorf("deployment %s, volume %s: no Secret %s", d.Name, v.Name, s.SecretName)
				}
			}
			if c := v.ConfigMap; c != nil && find(m.configMaps, d.Namespace, c.Name) == nil {
				t.Errorf("deployment %s, volume %s: no ConfigMap %s", d.Name, v.Name, c.Name)
			}
		}
		for _, s := range spec.ImagePullSecrets {
			referenced[s.Name] = true
		}
	}
	for _, s := range m.secrets {
		if !referenced[s.Name] {
			t.Errorf("secret %s: nothing references it", s.Name)
			continue
		}
		if whole[s.Name] {
			continue
		}
		keys := slices.Collect(maps.Keys(s.StringData))
		for k := range s.Data {
			keys = append(keys, k)
		}
		for _, k := range keys {
			if !referencedKeys[s.Name][k] {
				t.Errorf("secret %s: nothing reads its key %s", s.Name, k)
			}
		}
	}
}

// serviceFor resolves a URL's host to a Service of the manifests (name,
// name.ns, name.ns.svc, name.ns.svc.cluster.local) and checks that the URL's
// port is one of its ports. ok is false for a host outside the cluster.
func (m *manifests) serviceFor(namespace, rawURL string) (svc *corev1.Service, ok bool, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, true, err
	}
	host := u.Hostname()
	parts := strings.Split(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
	if len(parts) == 3 && parts[2] == "svc" {
		parts = parts[:2]
	}
	inCluster := len(parts) == 1 || (len(parts) == 2 && (strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".svc.cluster.local")))
	if !inCluster {
		return nil, false, nil
	}
	if len(parts) == 2 {
		namespace = parts[1]
	}
	svc = find(m.services, namespace, parts[0])
	if svc == nil {
		return nil, true, fmt.Errorf("%s: no Service %s/%s", rawURL, namespace, parts[0])
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "redis": "6379", "rediss": "6379"}[u.Scheme]
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
		return svc, true, fmt.Errorf("%s: Service %s has no port %s", rawURL, svc.Name, port)
	}
	return svc, true, nil
}

// TestURLsReachServices checks that the URLs one component gives for another
// name that component: pingmcp's Todo API URL is the Todo API's Service and
// resource, pingmcp's and the Todo API's Redis URLs are the Redis Service (name
// and port), and network policies let each client in.
func TestURLsReachServices(t *testing.T) {
	m := load(t)
	bs := binaries(t, m)
	byCommand := map[string]binaryContainer{}
	for _, b := range bs {
		byCommand[b.command] = b
	}
	serve, todo := byCommand["serve"], byCommand["todo-api"]
	if serve.cfg == nil || todo.cfg == nil {
		t.Fatal("want a pingmcp serve and a pingmcp todo-api container")
	}
	if serve.cfg.TodoAPIURL != todo.cfg.Resource {
		t.Errorf("pingmcp's --todo-api-url %q is not the Todo API's --resource %q: exchanged tokens would name the wrong audience", serve.cfg.TodoAPIURL, todo.cfg.Resource)
	}
	if serve.cfg.Issuer != todo.cfg.Issuer {
		t.Errorf("pingmcp trusts issuer %q, the Todo API %q", serve.cfg.Issuer, todo.cfg.Issuer)
	}
	isRedis := func(d *appsv1.Deployment) bool {
		return slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return strings.HasPrefix(c.Image, "redis:") })
	}
	for _, link := range []struct {
		client  binaryContainer
		url     string
		backend func(d *appsv1.Deployment) bool
		what    string
	}{
		{serve, serve.cfg.TodoAPIURL, func(d *appsv1.Deployment) bool { return d == todo.deployment }, "the Todo API"},
		{serve, serve.cfg.RedisURL, isRedis, "Redis"},
		{todo, todo.cfg.RedisURL, isRedis, "Redis"},
	} {
		if link.url == "" {
			continue // TestBinaryContainersParse asks for the URLs a component needs
		}
		svc, inCluster, err := m.serviceFor(link.client.deployment.Namespace, link.url)
		if err != nil {
			t.Errorf("%s: %v", link.client, err)
			continue
		}
		if !inCluster {
			continue
		}
		backends := m.serviceBackends(svc)
		if len(backends) != 1 || !link.backend(backends[0]) {
			t.Errorf("%s: %s goes to Service %s, which does not select %s", link.client, link.url, svc.Name, link.what)
			continue
		}
		for _, np := range m.networkPolicies {
			if np.Namespace != svc.Namespace || !selects(&np.Spec.PodSelector, backends[0].Spec.Template.Labels) || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
				continue
			}
			admitted := false
			for _, rule := range np.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil &&
						selects(peer.PodSelector, link.client.deployment.Spec.Template.Labels) {
						admitted = true
					}
				}
			}
			if !admitted {
				t.Errorf("networkpolicy %s keeps %s out of %s", np.Name, link.client, link.what)
			}
		}
	}
	for _, np := range m.networkPolicies {
		targets := m.deploymentsSelected(np.Namespace, func(l map[string]string) bool { return selects(&np.Spec.PodSelector, l) })
		if len(targets) == 0 {
			t.Errorf("networkpolicy %s selects no pods", np.Name)
			continue
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					t.Errorf("networkpolicy %s: port %v; name the container port", np.Name, p.Port)
				} else if _, cp := containerPort(&targets[0].Spec.Template.Spec, p.Port.StrVal); cp == nil {
					t.Errorf("networkpolicy %s: port %q is no container port of %s", np.Name, p.Port.StrVal, targets[0].Name)
				}
			}
		}
	}
}

func TestPodSecurity(t *testing.T) {
	m := load(t)
	imageUser, err := dockerfileUser()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.deployments {
		spec := &d.Spec.Template.Spec
		pod := spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("deployment %s: shares a host namespace", d.Name)
		}
		for _, c := range spec.Containers {
			t.Run(d.Name+"/"+c.Name, func(t *testing.T) {
				sc := c.SecurityContext
				if sc == nil {
					t.Fatal("no securityContext")
				}
				if !isTrue(sc.RunAsNonRoot) && !isTrue(pod.RunAsNonRoot) {
					t.Error("runAsNonRoot is not set")
				}
				user := pod.RunAsUser
				if sc.RunAsUser != nil {
					user = sc.RunAsUser
				}
				if user != nil && *user == 0 {
					t.Error("runs as root")
				}
				if c.Image == pingmcpImage && (user == nil || *user != imageUser) {
					t.Errorf("runAsUser %s, but the image's USER is %d", show(user), imageUser)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Error("allowPrivilegeEscalation is not false")
				}
				if isTrue(sc.Privileged) {
					t.Error("privileged")
				}
				if !isTrue(sc.ReadOnlyRootFilesystem) {
					t.Error("readOnlyRootFilesystem is not true")
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("capabilities %v: want drop ALL, add none", sc.Capabilities)
				}
				seccomp := pod.SeccompProfile
				if sc.SeccompProfile != nil {
					seccomp = sc.SeccompProfile
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("seccomp profile %v, want RuntimeDefault", seccomp)
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := c.Resources.Requests[r]; !ok {
						t.Errorf("no %s request", r)
					}
				}
				if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
					t.Error("no memory limit")
				}
				if c.Image != pingmcpImage {
					if _, tag, ok := strings.Cut(c.Image, ":"); !ok || tag == "latest" {
						t.Errorf("image %q: pin a version", c.Image)
					}
				}
			})
		}
	}
	images := m.kustomization.Images
	if !slices.ContainsFunc(images, func(i image) bool { return i.Name == pingmcpImage && i.NewTag != "" }) {
		t.Errorf("kustomization.yaml: no images entry giving %q a registry and tag", pingmcpImage)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// show prints an optional value.
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// TestDraining checks that a pingmcp node is given the time to drain and that
// rollouts and spreading keep nodes available.
func TestDraining(t *testing.T) {
	m := load(t)
	for _, b := range binaries(t, m) {
		if b.command != "serve" {
			continue
		}
		d := b.deployment
		spec := &d.Spec.Template.Spec
		// On SIGTERM a node gives in-flight requests --drain-timeout, then
		// leaves the cluster; the kubelet kills it at the end of the grace
		// period, whatever it is doing.
		stop := b.cfg.DrainTimeout + leaveTime
		if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < stop+graceMargin {
			t.Errorf("deployment %s: terminationGracePeriodSeconds %s; stopping takes up to %s (--drain-timeout %s, then %s to leave the cluster), leave %s more",
				d.Name, show(g), stop, b.cfg.DrainTimeout, leaveTime, graceMargin)
		}
		if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
			s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" {
			t.Errorf("deployment %s: a rollout should start each new node before it stops an old one (maxUnavailable 0)", d.Name)
		}
		spread := 0
		for _, c := range spec.TopologySpreadConstraints {
			if c.LabelSelector == nil || !selects(c.LabelSelector, d.Spec.Template.Labels) {
				t.Errorf("deployment %s: topology spread on %s does not select its own pods", d.Name, c.TopologyKey)
				continue
			}
			if c.TopologyKey == "kubernetes.io/hostname" || c.TopologyKey == "topology.kubernetes.io/zone" {
				spread++
				// A rollout's pods, counted with those they replace,
				// would pile onto the nodes the old ones leave.
				if !slices.Contains(c.MatchLabelKeys, "pod-template-hash") {
					t.Errorf("deployment %s: topology spread on %s counts the old pods of a rollout with the new (matchLabelKeys: [pod-template-hash])", d.Name, c.TopologyKey)
				}
			}
		}
		if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
			for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				if selects(w.PodAffinityTerm.LabelSelector, d.Spec.Template.Labels) {
					spread++
				}
			}
		}
		if spread == 0 {
			t.Errorf("deployment %s: nothing spreads its pods over nodes or zones", d.Name)
		}
	}
}

// TestMemoryLimit: every pingmcp serve container has a memory limit and
// gives it to pingmcp as it runs (memoryLimitEnv), so that the Go soft limit,
// 90 % of it, has the garbage collector work harder before the kernel kills
// the pod; and, bounded by it, a GOGC above Go's default.
func TestMemoryLimit(t *testing.T) {
	m := load(t)
	for _, b := range binaries(t, m) {
		if b.command != "serve" {
			continue
		}
		c := b.container
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			t.Errorf("%s: no memory limit", b)
		}
		if err := memoryLimitEnv(c); err != nil {
			t.Errorf("%s: %v", b, err)
		}
		// The collector may let the heap grow beyond Go's default, since
		// the soft limit bounds it: a quarter less CPU a call (BENCHMARKS.md).
		g := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOGC" })
		if g < 0 {
			t.Errorf("%s: no GOGC", b)
			continue
		}
		if n, err := strconv.Atoi(c.Env[g].Value); err != nil || n <= 100 || c.Env[g].ValueFrom != nil {
			t.Errorf("%s: GOGC %+v: want a number above Go's default 100", b, c.Env[g])
		}
	}
}

// memoryLimitEnv checks that container c gives pingmcp its memory limit as
// the kubelet runs it, PINGMCP_MEMORY_LIMIT from the downward API (its own
// limits.memory, in bytes), and no GOMEMLIMIT, which would win over it: a
// fixed number there would not follow the limit changed after rendering.
func memoryLimitEnv(c *corev1.Container) error {
	if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
		return errors.New("GOMEMLIMIT is set: it wins over the memory limit pingmcp reads, and would not follow it")
	}
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == config.EnvName("memory-limit") })
	if i < 0 {
		return fmt.Errorf("no %s", config.EnvName("memory-limit"))
	}
	r := c.Env[i].ValueFrom
	if c.Env[i].Value != "" || r == nil || r.ResourceFieldRef == nil || r.ResourceFieldRef.Resource != "limits.memory" ||
		(r.ResourceFieldRef.ContainerName != "" && r.ResourceFieldRef.ContainerName != c.Name) ||
		(!r.ResourceFieldRef.Divisor.IsZero() && r.ResourceFieldRef.Divisor.Value() != 1) {
		return fmt.Errorf("%+v: want resourceFieldRef limits.memory of this container, in bytes", c.Env[i])
	}
	return nil
}

// softMemoryLimit is the Go soft limit pingmcp sets in container c as the
// kubelet runs it: 90 % of PINGMCP_MEMORY_LIMIT, rounded down (cmd/pingmcp,
// memorySoftLimit).
func softMemoryLimit(t *testing.T, c *corev1.Container) int64 {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == config.EnvName("memory-limit") })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.ResourceFieldRef == nil {
		t.Fatalf("container %s: no %s from the downward API", c.Name, config.EnvName("memory-limit"))
	}
	v, err := resourceFieldValue(c, c.Env[i].ValueFrom.ResourceFieldRef)
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return limit/10*9 + limit%10*9/10
}

// TestGoMemLimitFollowsAChangedLimit: a memory limit changed after rendering
// (kubectl set resources, an overlay, an autoscaler) gives a soft limit of 90
// % of the limit the pod runs under, lowered or raised, in the chart and in
// deploy/pingmcp.yaml alike; the fractional limit rounded up as the kubelet
// does.
func TestGoMemLimitFollowsAChangedLimit(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, nil))
	var helm appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &helm)
	m := load(t)
	for name, d := range map[string]*appsv1.Deployment{"chart": &helm, "deploy/pingmcp.yaml": kubeNodes(t, m)[0].deployment} {
		for limit, want := range map[string]int64{"256Mi": 241591910, "512Mi": 483183820, "2Gi": 1932735283, "1.5Gi": 1449551462, "1000009.5": 900009} {
			c := d.Spec.Template.Spec.Containers[0].DeepCopy()
			c.Resources.Limits[corev1.ResourceMemory] = resource.MustParse(limit)
			if err := memoryLimitEnv(c); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := softMemoryLimit(t, c); got != want {
				t.Errorf("%s, limit changed to %s: soft limit %d, want %d", name, limit, got, want)
			}
		}
	}
}

// TestClusterPortPolicy: a NetworkPolicy keeps the cluster port (forwarded
// requests, users' tokens in them) to the pods of the same Deployment: every
// ingress rule of a policy selecting a node's pods that admits that port
// admits only pods its own selector selects.
func TestClusterPortPolicy(t *testing.T) {
	m := load(t)
	for _, b := range binaries(t, m) {
		if b.command != "serve" || b.cfg.ClusterProvider != "k8s" {
			continue
		}
		d := b.deployment
		guarded := false
		for _, np := range m.networkPolicies {
			if np.Namespace != d.Namespace || !selects(&np.Spec.PodSelector, d.Spec.Template.Labels) || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
				continue
			}
			guarded = true
			for i, rule := range np.Spec.Ingress {
				admitsCluster := len(rule.Ports) == 0 || slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
					return p.Port == nil || p.Port.String() == "cluster" || p.Port.String() == strconv.Itoa(int(clusterPortNumber(d)))
				})
				if !admitsCluster {
					continue
				}
				if len(rule.From) == 0 {
					t.Errorf("networkpolicy %s, rule %d: admits the cluster port from anywhere", np.Name, i)
				}
				for _, peer := range rule.From {
					if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil {
						t.Errorf("networkpolicy %s, rule %d: admits the cluster port from %+v, not only pods of %s", np.Name, i, peer, d.Name)
						continue
					}
					for k, v := range d.Spec.Selector.MatchLabels {
						if peer.PodSelector.MatchLabels[k] != v {
							t.Errorf("networkpolicy %s, rule %d: admits the cluster port from pods %v, which need not be %s's (%v)", np.Name, i, peer.PodSelector.MatchLabels, d.Name, d.Spec.Selector.MatchLabels)
						}
					}
				}
			}
		}
		if !guarded {
			t.Errorf("deployment %s: no NetworkPolicy guards its cluster port", d.Name)
		}
	}
}

// clusterPortNumber is the number of the container port named "cluster".
func clusterPortNumber(d *appsv1.Deployment) int32 {
	if _, p := containerPort(&d.Spec.Template.Spec, "cluster"); p != nil {
		return p.ContainerPort
	}
	return -1
}
