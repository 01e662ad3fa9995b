// Package kubetest runs a real Kubernetes API server for a test: etcd and
// kube-apiserver as processes on loopback, with what a real cluster's API
// server has on (RBAC and Node authorization, the default admission plugins
// PodSecurity, ServiceAccount and ValidatingAdmissionPolicy among them, service account tokens signed
// with a key of its own), an admin identity authenticated by a bearer token,
// and a kubeconfig for it. No controller manager, scheduler or kubelet runs:
// a Deployment creates no pods, and a test that needs pods creates them and
// writes their status itself.
//
// etcd comes from Debian (etcd-server) and kube-apiserver and kubectl from
// scripts/kube.sh, which builds them once into
// ${PINGMCP_CACHE:-$HOME/.cache/pingmcp}/kube/<Version>/; the test command
// (scripts/test.sh) runs it first. Without them Start fails the test, naming
// that script: it never skips.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster/pki"
)

// Version is the Kubernetes release scripts/kube.sh builds (its
// kube_version; kubetest_test.go checks that they agree).
const Version = "v1.34.4"

// ServiceCIDR is the API server's --service-cluster-ip-range; the
// kubernetes Service takes its first address.
const ServiceCIDR = "10.96.0.0/16"

// BinDir is where scripts/kube.sh puts kube-apiserver and kubectl.
func BinDir() string {
	cache := os.Getenv("PINGMCP_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "pingmcp")
	}
	return filepath.Join(cache, "kube", Version)
}

// binaries finds etcd, kube-apiserver and kubectl, or says how to get them.
func binaries() (etcd, apiserver, kubectl string, err error) {
	missing := []string{}
	etcd, lookErr := exec.LookPath("etcd")
	if lookErr != nil {
		missing = append(missing, "etcd (Debian's etcd-server)")
	}
	apiserver = filepath.Join(BinDir(), "kube-apiserver")
	kubectl = filepath.Join(BinDir(), "kubectl")
	for _, b := range []string{apiserver, kubectl} {
		if _, statErr := os.Stat(b); statErr != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", "", "", fmt.Errorf("the Kubernetes test needs %s: run scripts/kube.sh (the test command, scripts/test.sh, runs it first; "+
			"its first run builds kube-apiserver %s, about 11 minutes on 2 cores)", strings.Join(missing, ", "), Version)
	}
	return etcd, apiserver, kubectl, nil
}

// Cluster is a running API server.
type Cluster struct {
	// URL is the API server's, https://127.0.0.1:<port>.
	URL string
	// Host and Port are the URL's, as KUBERNETES_SERVICE_HOST and _PORT
	// would give them to a pod.
	Host, Port string
	// CAFile is the CA that signed the API server's serving certificate
	// (PEM): a pod's ca.crt.
	CAFile string
	// AdminToken authenticates as user "admin" in group system:masters.
	AdminToken string
	// Kubeconfig is a kubeconfig file for the admin.
	Kubeconfig string
	// Kubectl is the kubectl binary of Version (see BinDir).
	Kubectl string
	// Dir is the cluster's temporary directory (etcd's data, the
	// certificates and keys, the kubeconfig).
	Dir string

	client    *http.Client
	apiserver *process
}

// Start runs etcd and kube-apiserver and returns once the API server's
// /readyz answers ok. Everything stops, and its files go, when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	etcdBin, apiserverBin, kubectlBin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &Cluster{Dir: dir, Kubectl: kubectlBin, CAFile: filepath.Join(dir, "ca.crt")}

	// etcd, client and peer ports on loopback.
	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + etcdClient
	etcd := startProcess(t, "etcd", etcdBin,
		"--name", "kubetest",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-cluster", "kubetest=http://127.0.0.1:"+etcdPeer,
		"--logger", "zap", "--log-outputs", "stderr")
	// etcd 3.4 (Debian 12's) logs the second once its client listener
	// serves, after it elected itself leader; later ones log the first too.
	if err := etcd.await(30*time.Second, "ready to serve client requests", "serving client traffic"); err != nil {
		t.Fatalf("etcd: %v", err)
	}

	// The serving certificate, for every name a client may use: loopback,
	// and the kubernetes Service's.
	ca, err := pki.NewCA("kubetest CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueNode("kube-apiserver", []string{"127.0.0.1", "localhost", "10.96.0.1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, 23*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	servingKey, err := serving.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, c.CAFile, ca.CertPEM())
	writeFile(t, filepath.Join(dir, "apiserver.crt"), serving.CertPEM())
	writeFile(t, filepath.Join(dir, "apiserver.key"), servingKey)

	// The service account token signing key (ES256).
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		t.Fatal(err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}))
	writeFile(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}))

	// The admin: a static token in group system:masters.
	c.AdminToken = randomToken(t)
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(c.AdminToken+`,admin,admin-uid,"system:masters"`+"\n"))

	c.Host, c.Port = "127.0.0.1", freePort(t)
	c.URL = "https://" + net.JoinHostPort(c.Host, c.Port)
	c.apiserver = startProcess(t, "kube-apiserver", apiserverBin,
		"--etcd-servers", etcdURL,
		"--bind-address", c.Host, "--advertise-address", c.Host, "--secure-port", c.Port,
		// The kubernetes Service's endpoints would be the loopback address,
		// which kube-apiserver 1.35 and later refuse to reconcile; nothing
		// here goes through that Service (pods are given the address).
		"--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"),
		"--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--anonymous-auth=false",
		"--authorization-mode", "Node,RBAC",
		// As kubeadm's and managed clusters' API servers: privileged pods
		// are for PodSecurity to refuse, namespace by namespace.
		"--allow-privileged=true",
		// The default admission plugins (PodSecurity, ServiceAccount,
		// NamespaceLifecycle, LimitRanger, Priority,
		// ValidatingAdmissionPolicy, ... ) stay on; nothing is added or
		// removed.
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--profiling=false",
		"--v", "1")

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := c.awaitReady(90 * time.Second); err != nil {
		t.Fatalf("kube-apiserver: %v", err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, c.Kubeconfig, []byte(Kubeconfig(c.URL, c.CAFile, c.AdminToken, "")))
	return c
}

// Kubeconfig is a kubeconfig for server (verified with the CA in caFile)
// authenticating with token, its context's namespace namespace (or none).
func Kubeconfig(server, caFile, token, namespace string) string {
	ns := ""
	if namespace != "" {
		ns = "\n    namespace: " + namespace
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kubetest
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: kubetest%s
current-context: kubetest
`, server, caFile, token, ns)
}

// awaitReady polls /readyz (each answer is the event awaited; the API
// server announces readiness nowhere else) until it is ok, the process
// exits, or timeout.
func (c *Cluster) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		status, body, err := c.Do(context.Background(), http.MethodGet, "/readyz", nil)
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			return nil
		default:
			last = fmt.Sprintf("%d %s", status, body)
		}
		select {
		case <-c.apiserver.done:
			return fmt.Errorf("exited (%v) before it was ready", c.apiserver.cmd.ProcessState)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %s", timeout, last)
		}
	}
}

// Do sends a request to the API server as the admin: body, when not nil, is
// marshalled to JSON. It returns the status and the whole answer.
func (c *Cluster) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return c.DoAs(ctx, c.AdminToken, method, path, "application/json", body)
}

// DoAs is Do with another bearer token and content type (for a patch,
// say).
func (c *Cluster) DoAs(ctx context.Context, token, method, path, contentType string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// KubectlCmd is kubectl with the admin's kubeconfig and args.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+c.Dir)
	return cmd
}

// Logs is the last lines kube-apiserver wrote.
func (c *Cluster) Logs(n int) string { return c.apiserver.tail(n) }

// process is one child process; its stderr (and stdout) is kept.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []string
	subs  []chan string
}

func startProcess(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	out, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			p.add(sc.Text())
		}
	}()
	go func() {
		<-read
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s: last lines:\n%s", name, p.tail(40))
		}
	})
	return p
}

func (p *process) add(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if len(p.lines) > 2000 {
		p.lines = p.lines[len(p.lines)-1000:]
	}
	for _, s := range p.subs {
		select {
		case s <- line:
		default:
		}
	}
}

func (p *process) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// await waits for a line containing one of ss (already written or to
// come).
func (p *process) await(timeout time.Duration, ss ...string) error {
	has := func(l string) bool {
		for _, s := range ss {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	ch := make(chan string, 256)
	p.mu.Lock()
	for _, l := range p.lines {
		if has(l) {
			p.mu.Unlock()
			return nil
		}
	}
	p.subs = append(p.subs, ch)
	p.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l := <-ch:
			if has(l) {
				return nil
			}
		case <-p.done:
			return fmt.Errorf("exited (%v) before logging %q:\n%s", p.cmd.ProcessState, ss, p.tail(20))
		case <-timer.C:
			return fmt.Errorf("did not log %q within %s:\n%s", ss, timeout, p.tail(20))
		}
	}
}

var (
	portsMu sync.Mutex
	ports   = map[string]bool{}
)

// freePort is a loopback TCP port nothing listens on now, never the same
// one twice in this process (the kernel may hand a just-closed port out
// again).
func freePort(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		l.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatal("no free port")
	return ""
}

func randomToken(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
