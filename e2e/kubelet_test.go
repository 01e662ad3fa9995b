package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pingmcp/pingmcp/internal/kubetest"
)

// kubelet plays the kubelet (and the scheduler and the Deployment
// controller, none of which runs here) for pods of a Deployment in a
// kubetest API server: it creates each pod from the Deployment's own pod
// template, so that admission (PodSecurity "restricted", ServiceAccount)
// judges the real spec; runs its container as a process with what the
// kubelet would give it; and writes the pod's status. It knows two images
// (see imageOf): pingmcp's, whose entrypoint is the pingmcp binary, and
// Redis's, whose entrypoint runs args starting with redis-server as they
// are (Debian's redis-server is the program the image runs).
//
// What a pod gets, as in a real one:
//   - its securityContext: its user, its groups (fsGroup among them, which
//     owns its Secret volumes' files and its emptyDir volumes), no new
//     privileges, no capabilities, a read-only root file system (setpriv(1)
//     and a read-only remount);
//   - its name as hostname, and its service account's token, the API
//     server's CA and its namespace in /var/run/secrets/kubernetes.io/
//     serviceaccount/: the process runs in a mount and UTS namespace of its
//     own (unshare(1), as root), where a folder of the test is bind-mounted
//     on /run (/var/run's target). protoactor's k8s provider reads exactly
//     these (rest.InClusterConfig, its retrieveNamespace, os.Hostname), and
//     offers no other way to be told them;
//   - its /etc/hosts, which the kubelet manages (localhost, the pod's IP and
//     name), bind-mounted there in the same namespace; see hosts for the
//     Services' names it holds as well;
//   - KUBERNETES_SERVICE_HOST and _PORT: the API server's loopback address;
//   - its env, from the template: values, $(VAR) references, the fieldRefs
//     the kubelet resolves (status.podIP, metadata.name, metadata.namespace)
//     and secretKeyRefs read from the API server's Secrets;
//   - its args, from the template, with $(VAR) expanded;
//   - its readiness probe, run as the kubelet does (an HTTP GET, or a
//     command run in the container's namespaces, as its user).
//
// What differs, because all pods share the host's network namespace and
// file system (each difference is a rewrite of the template's args, env or
// probe, or an entry of /etc/hosts, made here and nowhere else):
//   - each pod's IP is its own loopback address (127.0.0.11, .12, ...), and a
//     listen address of the args on all interfaces (pingmcp's ":8080",
//     "0.0.0.0:7000"; Redis's default, all of them) is bound to the pod's
//     IP instead (redis-server: --bind <pod IP> added);
//   - for the same reason a probe command's loopback is not the pod's:
//     redis-cli is given the pod's IP (-h);
//   - a volume mount's path in the args (/etc/pingmcp/cluster-tls, /data)
//     names the folder the test wrote that volume's files to (an emptyDir:
//     an empty folder of the pod's);
//   - no cluster DNS nor kube-proxy runs: /etc/hosts names each Service's
//     ready endpoints (see hosts);
//   - env the test sets or overrides in pingmcp's pods (the log level).
type kubelet struct {
	t         *testing.T
	kc        *kubetest.Cluster
	namespace string
	dir       string
	override  map[string]string // env set in every pingmcp pod, replacing the template's
	nextIP    int
}

// image is an image this kubelet runs, on the host's programs.
type image int

const (
	// pingmcpImage's entrypoint is the pingmcp binary: args are its.
	pingmcpImage image = iota
	// redisImage's entrypoint (docker-entrypoint.sh, started as non-root)
	// runs args that start with redis-server as they are: here Debian's
	// redis-server, the same program.
	redisImage
)

// imageOf is the image of the pod's container c, by its repository's last
// path element; any other image fails the test.
func imageOf(t *testing.T, pod *corev1.Pod, c corev1.Container) image {
	t.Helper()
	ref, _, _ := strings.Cut(c.Image, "@")
	name := ref[strings.LastIndex(ref, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	switch name {
	case "pingmcp":
		return pingmcpImage
	case "redis":
		if len(c.Args) == 0 || c.Args[0] != "redis-server" {
			t.Fatalf("pod %s: container %s's args %q do not start with redis-server; this kubelet runs only that of the Redis image", pod.Name, c.Name, c.Args)
		}
		if _, err := exec.LookPath("redis-server"); err != nil {
			t.Fatalf("pod %s: redis-server is not installed (Debian: apt-get install -y redis-server): %v", pod.Name, err)
		}
		return redisImage
	}
	t.Fatalf("pod %s: container %s's image %s is neither pingmcp's nor Redis's; this kubelet runs no other", pod.Name, c.Name, c.Image)
	return 0
}

func newKubelet(t *testing.T, kc *kubetest.Cluster, namespace string, override map[string]string) *kubelet {
	t.Helper()
	dir := t.TempDir()
	// Pods run as their own non-root users: they must reach their files
	// (the folders on the way are made 0700 by the testing package and
	// os.MkdirTemp) and the binary.
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(binary)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &kubelet{t: t, kc: kc, namespace: namespace, dir: dir, override: override, nextIP: 11}
}

// runAs is how the container runs, from its pod's and its own
// securityContext.
type runAs struct {
	uid, gid, fsGroup    int64 // fsGroup -1: none
	readOnlyRoot         bool
	noNewPrivs, dropCaps bool
}

func securityOf(t *testing.T, pod *corev1.Pod, c corev1.Container) runAs {
	t.Helper()
	r := runAs{uid: -1, gid: -1, fsGroup: -1}
	if ps := pod.Spec.SecurityContext; ps != nil {
		if ps.RunAsUser != nil {
			r.uid = *ps.RunAsUser
		}
		if ps.RunAsGroup != nil {
			r.gid = *ps.RunAsGroup
		}
		if ps.FSGroup != nil {
			r.fsGroup = *ps.FSGroup
		}
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			r.uid = *cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			r.gid = *cs.RunAsGroup
		}
		r.readOnlyRoot = cs.ReadOnlyRootFilesystem != nil && *cs.ReadOnlyRootFilesystem
		r.noNewPrivs = cs.AllowPrivilegeEscalation != nil && !*cs.AllowPrivilegeEscalation
		r.dropCaps = cs.Capabilities != nil && slices.Contains(cs.Capabilities.Drop, "ALL")
	}
	if r.uid < 0 || r.gid < 0 {
		t.Fatalf("pod %s: no runAsUser and runAsGroup (the image's USER is not known to this kubelet)", pod.Name)
	}
	return r
}

// setpriv is the command (and its options) that makes a process run as r.
func (r runAs) setpriv() []string {
	groups := fmt.Sprint(r.gid)
	if r.fsGroup >= 0 && r.fsGroup != r.gid {
		groups += fmt.Sprintf(",%d", r.fsGroup)
	}
	args := []string{"setpriv", fmt.Sprintf("--reuid=%d", r.uid), fmt.Sprintf("--regid=%d", r.gid), "--groups=" + groups}
	if r.noNewPrivs {
		args = append(args, "--no-new-privs")
	}
	if r.dropCaps {
		args = append(args, "--inh-caps=-all", "--bounding-set=-all")
	}
	return args
}

// kubePod is a pod the kubelet runs.
type kubePod struct {
	Pod  corev1.Pod
	IP   string
	Node *node // the container's process
}

// template is the pod template of the Deployment name.
func (k *kubelet) template(ctx context.Context, name string) corev1.PodTemplateSpec {
	k.t.Helper()
	var d appsv1.Deployment
	k.get(ctx, "/apis/apps/v1/namespaces/"+k.namespace+"/deployments/"+name, &d)
	return d.Spec.Template
}

// get decodes the API server's answer to GET path into v.
func (k *kubelet) get(ctx context.Context, path string, v any) {
	k.t.Helper()
	status, body, err := k.kc.Do(ctx, http.MethodGet, path, nil)
	if err != nil || status != http.StatusOK {
		k.t.Fatalf("GET %s: %d %v %s", path, status, err, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		k.t.Fatalf("GET %s: %v", path, err)
	}
}

// run creates the pod name from tmpl (scheduled to node "kubetest"),
// starts its one container and returns once the node has started and the
// pod is Running and Ready, with its IP, in the API server.
func (k *kubelet) run(ctx context.Context, name string, tmpl corev1.PodTemplateSpec) *kubePod {
	k.t.Helper()
	t := k.t
	tmpl = *tmpl.DeepCopy() // the API server's answer is decoded into the pod below
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.namespace, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
	pod.Spec.NodeName = "kubetest"
	status, body, err := k.kc.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+k.namespace+"/pods", pod)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create pod %s from the template: %d %v %s", name, status, err, body)
	}
	if err := json.Unmarshal(body, &pod); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("pod %s has %d containers; this kubelet runs one", name, len(pod.Spec.Containers))
	}
	ip := fmt.Sprintf("127.0.0.%d", k.nextIP)
	k.nextIP++
	kp := &kubePod{Pod: pod, IP: ip}

	// The sandbox is up: the pod has its IP, its container is starting.
	k.writeStatus(ctx, kp, false)
	k.start(ctx, kp)
	return kp
}

// kill kills the container of kp (kill -9, as the kernel's OOM killer
// does, or the kubelet after a failed liveness probe), and the pod turns
// not ready; start starts it again in the same pod (its name, IP, labels
// and volumes kept), as the kubelet restarts a container.
func (k *kubelet) kill(ctx context.Context, kp *kubePod) {
	k.t.Helper()
	if err := kp.Node.cmd.Process.Kill(); err != nil {
		k.t.Fatal(err)
	}
	<-kp.Node.done
	k.writeStatus(ctx, kp, false)
}

// start starts the one container of kp's pod and returns once its process
// has started and the pod is Ready in the API server.
func (k *kubelet) start(ctx context.Context, kp *kubePod) {
	k.t.Helper()
	t := k.t
	pod, ip, name := kp.Pod, kp.IP, kp.Pod.Name
	c := pod.Spec.Containers[0]
	img := imageOf(t, &pod, c)
	sec := securityOf(t, &pod, c)
	podDir := filepath.Join(k.dir, name)
	runDir := filepath.Join(podDir, "run")
	mounts := k.volumes(ctx, &pod, podDir, sec.fsGroup)
	// The service account's projected volume, where admission mounted it
	// (not with automountServiceAccountToken: false, as Redis's).
	if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == serviceAccountDir }) {
		writeAll(t, filepath.Join(runDir, "secrets", "kubernetes.io", "serviceaccount"), map[string][]byte{
			"token":     []byte(k.token(ctx, &pod)),
			"ca.crt":    mustRead(t, k.kc.CAFile),
			"namespace": []byte(k.namespace),
		}, 0o644, sec.fsGroup)
	} else if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}

	hostsFile := filepath.Join(podDir, "etc-hosts")
	if err := os.WriteFile(hostsFile, k.hosts(ctx, &pod, ip), 0o644); err != nil {
		t.Fatal(err)
	}

	override := k.override
	if img != pingmcpImage {
		override = nil
	}
	env, vars := k.env(ctx, &pod, c, ip, override)
	args := make([]string, 0, len(c.Args))
	for _, a := range c.Args {
		a = expand(a, vars)
		for mountPath, dir := range mounts {
			a = strings.ReplaceAll(a, mountPath, dir)
		}
		if img == pingmcpImage {
			a = bindToPodIP(a, ip)
		}
		args = append(args, a)
	}
	if len(c.Command) > 0 {
		t.Fatalf("pod %s: container %s has a command; this kubelet runs the image's entrypoint with its args", name, c.Name)
	}
	argv := append([]string{binary}, args...)
	if img == redisImage {
		// redis-server listens on all interfaces unless told where.
		if slices.Contains(args, "--bind") {
			t.Fatalf("pod %s: redis-server's args have a --bind; this kubelet binds it to the pod's IP", name)
		}
		argv = append(slices.Clone(args), "--bind", ip)
	}

	// A mount and UTS namespace of its own: /run holds the service
	// account's files (read-only, as the kubelet mounts them), /etc/hosts
	// is the pod's, the root file system is read-only when the container's
	// is, the hostname is the pod's name; then the process takes the
	// container's user, groups (fsGroup among them) and restrictions
	// (setpriv(1)).
	script := `set -e
mount --bind "$1" /run
mount -o remount,bind,ro /run
mount --bind "$2" /etc/hosts
if [ "$4" = true ]; then mount -o remount,bind,ro /; fi
hostname "$3"
shift 4
exec "$@"`
	cmdArgs := []string{"--mount", "--uts", "sh", "-c", script, "sh", runDir, hostsFile, name, fmt.Sprint(sec.readOnlyRoot)}
	cmdArgs = append(cmdArgs, sec.setpriv()...)
	cmdArgs = append(cmdArgs, argv...)
	n := &node{t: t, name: name, cmd: exec.Command("unshare", cmdArgs...), logStdout: true}
	n.cmd.Env = env
	n.cmd.Dir = "/"
	kp.Node = n
	within := time.Minute
	if d, ok := ctx.Deadline(); ok {
		within = time.Until(d)
	}
	if img == pingmcpImage {
		n.launch(`"msg":"node started"`, args, within)
	} else {
		n.startLogged("", within) // its readiness probe tells
	}

	k.awaitReadiness(ctx, kp, c, sec)

	// The process is the container's user, as the kubelet would start it.
	procStatus := string(mustRead(t, fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid)))
	if !strings.Contains(procStatus, fmt.Sprintf("\nUid:\t%d\t%d\t", sec.uid, sec.uid)) ||
		!strings.Contains(procStatus, fmt.Sprintf("\nGid:\t%d\t%d\t", sec.gid, sec.gid)) ||
		(sec.noNewPrivs && !strings.Contains(procStatus, "\nNoNewPrivs:\t1")) ||
		(sec.dropCaps && !strings.Contains(procStatus, "\nCapBnd:\t0000000000000000")) {
		t.Fatalf("pod %s: its process does not run as its securityContext says (%+v):\n%s", name, sec, procStatus)
	}

	k.writeStatus(ctx, kp, true)
}

// awaitReadiness runs the container's readiness probe, every periodSeconds
// as the kubelet does (faster: the test waits on it), until it succeeds.
func (k *kubelet) awaitReadiness(ctx context.Context, kp *kubePod, c corev1.Container, sec runAs) {
	k.t.Helper()
	probe := c.ReadinessProbe
	if probe == nil || (probe.HTTPGet == nil && probe.Exec == nil) {
		k.t.Fatalf("pod %s: container %s has no HTTP or exec readiness probe", kp.Pod.Name, c.Name)
	}
	var what string
	var try func() (bool, string)
	if probe.HTTPGet != nil {
		what, try = k.httpProbe(kp, c, probe)
	} else {
		what, try = k.execProbe(ctx, kp, probe, sec)
	}
	period := time.Duration(max(probe.PeriodSeconds, 1)) * time.Second
	tick := time.NewTicker(period / 10)
	defer tick.Stop()
	last := ""
	for {
		ok, detail := try()
		if ok {
			k.t.Logf("pod %s: ready: %s", kp.Pod.Name, what)
			return
		}
		last = detail
		select {
		case <-ctx.Done():
			k.t.Fatalf("pod %s: readiness probe %s never succeeded: %s", kp.Pod.Name, what, last)
		case <-kp.Node.done:
			k.t.Fatalf("pod %s: exited (%v) before it was ready", kp.Pod.Name, kp.Node.cmd.ProcessState)
		case <-tick.C:
		}
	}
}

// httpProbe is an HTTP GET probe of the container: what it is, and one try
// of it (a status from 200 to 399 passes).
func (k *kubelet) httpProbe(kp *kubePod, c corev1.Container, probe *corev1.Probe) (string, func() (bool, string)) {
	port := probe.HTTPGet.Port.String()
	for _, p := range c.Ports {
		if p.Name == port {
			port = fmt.Sprint(p.ContainerPort)
		}
	}
	url := "http://" + net.JoinHostPort(kp.IP, port) + probe.HTTPGet.Path
	return "GET " + url, func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400, resp.Status
	}
}

// execProbe is an exec probe of the container: what it is, and one try of
// it. The kubelet runs the command in the container, as its user, and
// passes it when it exits 0; here it runs in the process's mount and UTS
// namespaces (nsenter(1)) with the container's env, user and restrictions
// (setpriv(1)). The one command known is redis-cli's (the Redis image's
// probe), given the pod's IP (-h): its default, 127.0.0.1, is the pod's own
// address in a pod but not here. Without redis-cli (Debian's redis-tools)
// the probe is its equivalent, a PING over TCP answered +PONG.
func (k *kubelet) execProbe(ctx context.Context, kp *kubePod, probe *corev1.Probe, sec runAs) (string, func() (bool, string)) {
	k.t.Helper()
	command := probe.Exec.Command
	if len(command) == 0 || command[0] != "redis-cli" {
		k.t.Fatalf("pod %s: exec probe %q: this kubelet runs redis-cli's only", kp.Pod.Name, command)
	}
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	if _, err := exec.LookPath("redis-cli"); err != nil {
		if len(command) != 2 || !strings.EqualFold(command[1], "ping") {
			k.t.Fatalf("pod %s: exec probe %q with no redis-cli installed (Debian: redis-tools); this kubelet plays `redis-cli ping` only", kp.Pod.Name, command)
		}
		addr := net.JoinHostPort(kp.IP, "6379") // redis-cli's default port
		return fmt.Sprintf("%q (no redis-cli: PING over TCP to %s)", command, addr), func() (bool, string) {
			conn, err := net.DialTimeout("tcp", addr, timeout)
			if err != nil {
				return false, err.Error()
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(timeout))
			if _, err := conn.Write([]byte("PING\r\n")); err != nil {
				return false, err.Error()
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			return err == nil && line == "+PONG\r\n", fmt.Sprintf("%q %v", line, err)
		}
	}
	command = append([]string{command[0], "-h", kp.IP}, command[1:]...)
	return fmt.Sprintf("%q in the container", command), func() (bool, string) {
		args := append([]string{"--target", fmt.Sprint(kp.Node.cmd.Process.Pid), "--mount", "--uts", "--"}, sec.setpriv()...)
		probeCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(probeCtx, "nsenter", append(args, command...)...)
		cmd.Env = kp.Node.cmd.Env
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		return err == nil, fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
	}
}

// writeStatus writes the pod's status as the kubelet does: Running, with
// its IP, and its container ready or not.
func (k *kubelet) writeStatus(ctx context.Context, kp *kubePod, ready bool) {
	k.t.Helper()
	now := metav1.Now()
	cond := func(typ corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: typ, Status: s, LastTransitionTime: now}
	}
	c := kp.Pod.Spec.Containers[0]
	patch := map[string]any{"status": corev1.PodStatus{
		Phase:   corev1.PodRunning,
		HostIP:  "127.0.0.1",
		HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:   kp.IP,
		PodIPs:  []corev1.PodIP{{IP: kp.IP}},
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
			cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready),
		},
		StartTime: &now,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: c.Name, Image: c.Image, ImageID: "", Ready: ready, Started: &[]bool{true}[0],
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}}
	path := "/api/v1/namespaces/" + k.namespace + "/pods/" + kp.Pod.Name + "/status"
	status, body, err := k.kc.DoAs(ctx, k.kc.AdminToken, http.MethodPatch, path, "application/merge-patch+json", patch)
	if err != nil || status != http.StatusOK {
		k.t.Fatalf("PATCH %s: %d %v %s", path, status, err, body)
	}
}

// delete deletes the pod at once (grace period 0), as after its node
// controller gave up on it or as kubectl delete --force does.
func (k *kubelet) delete(ctx context.Context, kp *kubePod) {
	k.t.Helper()
	path := "/api/v1/namespaces/" + k.namespace + "/pods/" + kp.Pod.Name + "?gracePeriodSeconds=0"
	status, body, err := k.kc.Do(ctx, http.MethodDelete, path, nil)
	if err != nil || status != http.StatusOK {
		k.t.Fatalf("DELETE %s: %d %v %s", path, status, err, body)
	}
}

// token is a token of the pod's service account bound to the pod, as the
// kubelet requests for the projected volume it mounts.
func (k *kubelet) token(ctx context.Context, pod *corev1.Pod) string {
	k.t.Helper()
	return serviceAccountToken(k.t, ctx, k.kc, k.namespace, pod.Spec.ServiceAccountName, pod)
}

// volumes writes the files of the pod's Secret volumes, and makes its
// emptyDir volumes, under podDir and returns each mount path (of the one
// container) with the folder holding it. The service account's projected volume is /run's (see run).
func (k *kubelet) volumes(ctx context.Context, pod *corev1.Pod, podDir string, fsGroup int64) map[string]string {
	k.t.Helper()
	mounts := map[string]string{}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.MountPath == serviceAccountDir {
			continue
		}
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol != nil && vol.EmptyDir != nil {
			// As the kubelet makes it: empty, mode 0777, and with an
			// fsGroup owned by that group, set-group-ID.
			dir := filepath.Join(podDir, "volumes", m.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				k.t.Fatal(err)
			}
			mode := os.FileMode(0o777)
			if fsGroup >= 0 {
				mode |= os.ModeSetgid
				if err := os.Chown(dir, 0, int(fsGroup)); err != nil {
					k.t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, mode); err != nil {
				k.t.Fatal(err)
			}
			mounts[m.MountPath] = dir
			continue
		}
		if vol == nil || vol.Secret == nil {
			k.t.Fatalf("pod %s: volume %s is neither a Secret nor an emptyDir; this kubelet mounts no other", pod.Name, m.Name)
		}
		mode := os.FileMode(0o644)
		if vol.Secret.DefaultMode != nil {
			mode = os.FileMode(*vol.Secret.DefaultMode)
		}
		dir := filepath.Join(podDir, "volumes", m.Name)
		writeAll(k.t, dir, k.secret(ctx, vol.Secret.SecretName), mode, fsGroup)
		mounts[m.MountPath] = dir
	}
	return mounts
}

// secret is the data of the Secret name.
func (k *kubelet) secret(ctx context.Context, name string) map[string][]byte {
	k.t.Helper()
	var s corev1.Secret
	k.get(ctx, "/api/v1/namespaces/"+k.namespace+"/secrets/"+name, &s)
	return s.Data
}

// env is the container's environment as the kubelet gives it, with
// override's variables set or replaced, and its variables by name (for
// $(VAR) in args).
func (k *kubelet) env(ctx context.Context, pod *corev1.Pod, c corev1.Container, ip string, override map[string]string) ([]string, map[string]string) {
	k.t.Helper()
	vars := map[string]string{
		"KUBERNETES_SERVICE_HOST": k.kc.Host,
		"KUBERNETES_SERVICE_PORT": k.kc.Port,
	}
	order := []string{"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
	for _, e := range c.Env {
		v := expand(e.Value, vars)
		switch from := e.ValueFrom; {
		case from == nil:
		case from.FieldRef != nil:
			switch from.FieldRef.FieldPath {
			case "status.podIP":
				v = ip
			case "metadata.name":
				v = pod.Name
			case "metadata.namespace":
				v = pod.Namespace
			default:
				k.t.Fatalf("pod %s: env %s: fieldRef %s is not resolved by this kubelet", pod.Name, e.Name, from.FieldRef.FieldPath)
			}
		case from.ResourceFieldRef != nil:
			// What the kubelet gives: the container's limit or request,
			// divided by the divisor (1 when unset), rounded up.
			r := from.ResourceFieldRef
			name, limit := strings.CutPrefix(r.Resource, "limits.")
			if !limit {
				name, _ = strings.CutPrefix(r.Resource, "requests.")
			}
			q, ok := c.Resources.Requests[corev1.ResourceName(name)]
			if limit {
				q, ok = c.Resources.Limits[corev1.ResourceName(name)]
			}
			if !ok || (r.ContainerName != "" && r.ContainerName != c.Name) {
				k.t.Fatalf("pod %s: env %s: resourceFieldRef %s of container %q is not resolved by this kubelet", pod.Name, e.Name, r.Resource, r.ContainerName)
			}
			divisor := int64(1)
			if !r.Divisor.IsZero() {
				divisor = r.Divisor.Value()
			}
			v = strconv.FormatInt((q.Value()+divisor-1)/divisor, 10)
		case from.SecretKeyRef != nil:
			data, ok := k.secret(ctx, from.SecretKeyRef.Name)[from.SecretKeyRef.Key]
			if !ok {
				k.t.Fatalf("pod %s: env %s: Secret %s has no key %s", pod.Name, e.Name, from.SecretKeyRef.Name, from.SecretKeyRef.Key)
			}
			v = string(data)
		default:
			k.t.Fatalf("pod %s: env %s: valueFrom not resolved by this kubelet", pod.Name, e.Name)
		}
		if o, ok := override[e.Name]; ok {
			v = o
		}
		if _, seen := vars[e.Name]; !seen {
			order = append(order, e.Name)
		}
		vars[e.Name] = v
	}
	for _, name := range slices.Sorted(maps.Keys(override)) {
		if _, seen := vars[name]; !seen {
			order = append(order, name)
			vars[name] = override[name]
		}
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + pod.Name}
	for _, name := range order {
		env = append(env, name+"="+vars[name])
	}
	return env, vars
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) by the variable's value, leaving unknown ones as
// they are, as the kubelet does.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// bindToPodIP rewrites a listen address on all interfaces (--flag=:port,
// --flag=0.0.0.0:port) to the pod's IP: in a real pod all interfaces are the
// pod's; here they are the host's, shared by every pod.
func bindToPodIP(arg, ip string) string {
	flag, value, ok := strings.Cut(arg, "=")
	if !ok || !strings.HasPrefix(flag, "--") || !strings.HasSuffix(flag, "addr") {
		return arg
	}
	host, port, err := net.SplitHostPort(value)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
		return arg
	}
	return flag + "=" + net.JoinHostPort(ip, port)
}

// writeAll writes files into dir with mode, owned by root and group gid
// (the pod's fsGroup, as the kubelet does; -1: root's).
func writeAll(t *testing.T, dir string, files map[string][]byte, mode os.FileMode, gid int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 0, int(gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setSecret replaces the data of the Secret name (what an operator does to
// deploy/secrets.yaml's placeholders before a real install).
func setSecret(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, name string, data map[string][]byte) {
	t.Helper()
	enc := map[string]string{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	path := "/api/v1/namespaces/" + ns + "/secrets/" + name
	status, body, err := kc.DoAs(ctx, kc.AdminToken, http.MethodPatch, path, "application/merge-patch+json", map[string]any{"data": enc})
	if err != nil || status != http.StatusOK {
		t.Fatalf("PATCH %s: %d %v %s", path, status, err, body)
	}
}

// serviceAccountDir is where a pod's service account token is mounted.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// clusterDomain is the cluster's DNS domain (the kubelet's --cluster-domain).
const clusterDomain = "cluster.local"

// hosts is the pod's /etc/hosts. The kubelet writes localhost's and the
// pod's own lines (its IP, its name). Then, as no cluster DNS nor kube-proxy
// runs here, the names the cluster's DNS gives each Service of the namespace
// that has a selector (name.namespace.svc.cluster.local, and the short
// names its search path completes: name.namespace.svc, name.namespace,
// name) with the IPs of its ready endpoints: the pods the Service selects
// that are Ready with an IP in the API server, which is what the endpoints
// controller would list and kube-proxy forward the Service's address to. A
// name resolved that way reaches a pod directly, on the port the client
// dials, so a Service whose port is not its pods' (pingmcp's: 80 to 8080) is
// left out, with a comment saying why, as is one with no ready endpoint.
func (k *kubelet) hosts(ctx context.Context, pod *corev1.Pod, ip string) []byte {
	k.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&b, "%s\t%s\n", ip, pod.Name)
	fmt.Fprintf(&b, "# The cluster's DNS and kube-proxy, played by the test's kubelet: each Service's ready endpoints.\n")
	var services corev1.ServiceList
	k.get(ctx, "/api/v1/namespaces/"+k.namespace+"/services", &services)
	var pods corev1.PodList
	k.get(ctx, "/api/v1/namespaces/"+k.namespace+"/pods", &pods)
	for _, svc := range services.Items {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		selector := labels.SelectorFromSet(svc.Spec.Selector)
		var endpoints []corev1.Pod
		for _, p := range pods.Items {
			if selector.Matches(labels.Set(p.Labels)) && p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(&p) {
				endpoints = append(endpoints, p)
			}
		}
		if len(endpoints) == 0 {
			fmt.Fprintf(&b, "# %s: no ready endpoint\n", svc.Name)
			continue
		}
		if why := portMismatch(&svc, &endpoints[0]); why != "" {
			fmt.Fprintf(&b, "# %s: %s, which only kube-proxy would translate\n", svc.Name, why)
			continue
		}
		ns := svc.Namespace
		names := fmt.Sprintf("%s.%s.svc.%s %s.%s.svc %s.%s %s", svc.Name, ns, clusterDomain, svc.Name, ns, svc.Name, ns, svc.Name)
		for _, p := range endpoints {
			fmt.Fprintf(&b, "%s\t%s\n", p.Status.PodIP, names)
		}
	}
	return []byte(b.String())
}

// podReady reports whether the pod's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// portMismatch says which port of the Service is another on pod p (its
// targetPort, by number or by the name of a container port), or "".
func portMismatch(svc *corev1.Service, p *corev1.Pod) string {
	for _, sp := range svc.Spec.Ports {
		target := sp.Port
		switch tp := sp.TargetPort; {
		case tp.Type == intstr.String:
			target = -1
			for _, c := range p.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == tp.StrVal {
						target = cp.ContainerPort
					}
				}
			}
			if target < 0 {
				return fmt.Sprintf("port %d targets %q, which pod %s does not name", sp.Port, tp.StrVal, p.Name)
			}
		case tp.IntVal != 0:
			target = tp.IntVal
		}
		if target != sp.Port {
			return fmt.Sprintf("port %d is %d on its pods", sp.Port, target)
		}
	}
	return ""
}
