package deploy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/certtest"
)

// pingmcpImage is the image name the manifests use for the pingmcp binary;
// kustomization.yaml's images entry points it at a registry.
const pingmcpImage = "pingmcp"

// samplePodIP stands in for status.podIP.
const samplePodIP = "10.1.2.3"

// placeholderPrefix starts every value of secrets.yaml: none is a real
// credential.
const placeholderPrefix = "REPLACE-WITH-"

// placeholderStandIns are values of the right form for the variables whose
// flags check the form of their value, given to config.Parse in place of a
// placeholder. (pingmcp itself refuses the placeholders; see
// TestPlaceholdersAreRefused.)
var placeholderStandIns = map[string]string{
	"PINGMCP_STATE_KEYS": "sample:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
}

// standIn replaces a placeholder by its stand-in, if it has one.
func standIn(name, value string) string {
	if v, ok := placeholderStandIns[name]; ok && strings.HasPrefix(value, placeholderPrefix) {
		return v
	}
	return value
}

// placeholderFileStandIns are the Secret keys (secret/key) mounted as files
// whose content pingmcp checks, and what stands in for their placeholder:
// the cluster's TLS files, made afresh by certtest.
var placeholderFileStandIns = map[string]string{
	"pingmcp-cluster-tls/tls.crt": "cert",
	"pingmcp-cluster-tls/tls.key": "key",
	"pingmcp-cluster-tls/ca.crt":  "ca",
}

// fileStandIn returns the stand-in of placeholders in mounted Secret files:
// a node certificate, its key and its CA, made the first time one is needed.
func fileStandIn(t testing.TB) func(secret, key, value string) string {
	var once sync.Once
	pems := map[string]string{}
	return func(secret, key, value string) string {
		role, ok := placeholderFileStandIns[secret+"/"+key]
		if !ok || !strings.HasPrefix(value, placeholderPrefix) {
			return value
		}
		once.Do(func() {
			f := certtest.NewCA(t, "stand-in CA").Node(t, "stand-in node")
			for r, path := range map[string]string{"cert": f.Cert, "key": f.Key, "ca": f.CA} {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				pems[r] = string(b)
			}
		})
		return pems[role]
	}
}

// noStandIn leaves every value as it is.
func noStandIn(_, v string) string { return v }

func noFileStandIn(_, _, v string) string { return v }

// secretFlags are the flags whose values are secrets: never on the command
// line (it shows in the pod spec and in ps), always from a Secret.
var secretFlags = []string{"client-secret", "state-keys", "grants-password"}

// binaryContainer is a container that runs the pingmcp binary, its command
// line resolved the way the kubelet would and parsed by config.Parse.
type binaryContainer struct {
	deployment *appsv1.Deployment
	container  *corev1.Container
	command    string            // serve, todo-api, ...
	env        map[string]string // resolved values
	cfg        *config.Config
	// mounts are the container's Secret volumes, written out for the test
	// (their mount paths in args and env point there).
	mounts []secretMount
}

// secretMount is a Secret volume of a container, written to dir.
type secretMount struct {
	mount  corev1.VolumeMount
	volume corev1.Volume
	dir    string
	files  map[string]string // file name in dir → Secret key
}

// secretFile says which Secret key and mount a path the binary was given
// (as parsed) comes from.
func (b binaryContainer) secretFile(path string) (key string, sm secretMount, ok bool) {
	for _, sm := range b.mounts {
		if rel, found := strings.CutPrefix(path, sm.dir+"/"); found {
			key, ok := sm.files[rel]
			return key, sm, ok
		}
	}
	return "", secretMount{}, false
}

func (b binaryContainer) String() string {
	return fmt.Sprintf("deployment %s, container %s (pingmcp %s)", b.deployment.Name, b.container.Name, b.command)
}

// binaries parses every pingmcp container of the manifests; errs says which
// did not parse.
func (m *manifests) binaries(t testing.TB) (out []binaryContainer, errs []error) {
	for _, d := range m.deployments {
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			if c.Image != pingmcpImage {
				continue
			}
			b, err := m.parseBinary(t, d, c)
			if err != nil {
				errs = append(errs, fmt.Errorf("deployment %s, container %s: %w", d.Name, c.Name, err))
				continue
			}
			out = append(out, b)
		}
	}
	return out, errs
}

func (m *manifests) parseBinary(t testing.TB, d *appsv1.Deployment, c *corev1.Container) (binaryContainer, error) {
	return m.parseBinaryWith(t, d, c, standIn, fileStandIn(t))
}

// parseBinaryWith parses a container's command line and environment, each
// variable's value passed through value first. The Secret volumes it mounts
// are written to temporary directories, each file passed through file
// first, and the mount paths in args and env values are replaced by those
// directories, so that pingmcp reads the files the kubelet would give it.
func (m *manifests) parseBinaryWith(t testing.TB, d *appsv1.Deployment, c *corev1.Container, value func(name, v string) string,
	file func(secret, key, v string) string) (binaryContainer, error) {
	b := binaryContainer{deployment: d, container: c}
	if len(c.Command) > 0 {
		return b, fmt.Errorf("command %q replaces the image's ENTRYPOINT; give the pingmcp command and flags as args", c.Command)
	}
	if len(c.Args) == 0 {
		return b, errors.New("no args: the first arg is the pingmcp command")
	}
	env, err := m.resolveEnv(d.Namespace, c)
	if err != nil {
		return b, err
	}
	b.env = env
	var paths []string // mount path, test directory, ...
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 || d.Spec.Template.Spec.Volumes[i].Secret == nil {
			continue
		}
		v := d.Spec.Template.Spec.Volumes[i]
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			return b, fmt.Errorf("volume %s: subPath mounts of Secrets are never updated; mount the directory", vm.Name)
		}
		sm := secretMount{mount: vm, volume: v, dir: t.TempDir(), files: map[string]string{}}
		keys := map[string]string{} // key → file name
		if len(v.Secret.Items) > 0 {
			for _, it := range v.Secret.Items {
				keys[it.Key] = it.Path
			}
		} else if s := find(m.secrets, d.Namespace, v.Secret.SecretName); s != nil {
			for k := range s.StringData {
				keys[k] = k
			}
			for k := range s.Data {
				keys[k] = k
			}
		}
		for k, name := range keys {
			content, ok := m.secretValue(d.Namespace, v.Secret.SecretName, k)
			if !ok {
				return b, fmt.Errorf("volume %s: no key %q in Secret %s", vm.Name, k, v.Secret.SecretName)
			}
			if err := os.WriteFile(filepath.Join(sm.dir, name), []byte(file(v.Secret.SecretName, k, content)), 0o600); err != nil {
				return b, err
			}
			sm.files[name] = k
		}
		b.mounts = append(b.mounts, sm)
		paths = append(paths, strings.TrimSuffix(vm.MountPath, "/")+"/", sm.dir+"/")
	}
	mounted := strings.NewReplacer(paths...)
	var args []string
	for _, a := range c.Args {
		x := mounted.Replace(expand(a, env))
		if strings.Contains(x, "$(") {
			return b, fmt.Errorf("arg %q refers to a variable the container does not define", a)
		}
		args = append(args, x)
	}
	b.command = args[0]
	if !slices.ContainsFunc(config.Commands, func(cmd struct{ Name, Summary string }) bool { return cmd.Name == b.command }) {
		return b, fmt.Errorf("first arg %q is not a pingmcp command", b.command)
	}
	flags, err := flagEnvNames(b.command)
	if err != nil {
		return b, err
	}
	for name := range env { // env and envFrom
		if strings.HasPrefix(name, "PINGMCP_") && !flags[name] {
			return b, fmt.Errorf("env %s is no flag of pingmcp %s: it would be ignored", name, b.command)
		}
	}
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && env[config.EnvName(name)] != "" {
			return b, fmt.Errorf("--%s is given both as an arg and as %s", name, config.EnvName(name))
		}
	}
	getenv := func(name string) string { return mounted.Replace(value(name, env[name])) } // never the test's own environment
	b.cfg, err = config.Parse(b.command, args[1:], getenv, io.Discard)
	if err != nil {
		return b, fmt.Errorf("pingmcp %s: %w", strings.Join(args, " "), err)
	}
	return b, nil
}

// flagEnvNames lists the environment variables of a command's flags, from its
// --help.
func flagEnvNames(command string) (map[string]bool, error) {
	var help bytes.Buffer
	if _, err := config.Parse(command, []string{"--help"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("pingmcp %s --help: %v", command, err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`env (PINGMCP_[A-Z0-9_]+)`).FindAllStringSubmatch(help.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("pingmcp %s --help names no environment variables", command)
	}
	return names, nil
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(NAME) with the value of NAME and $$ with $, as the
// kubelet does in args and env values; an unknown name stays as it is.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// resourceFieldValue is what the kubelet gives a resourceFieldRef of
// container c: its limit or request, divided by the divisor (1 when unset),
// rounded up. Without the limit the kubelet gives the node's allocatable
// amount, which no manifest may count on: an error here.
func resourceFieldValue(c *corev1.Container, r *corev1.ResourceFieldSelector) (string, error) {
	if r.ContainerName != "" && r.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef of container %q, not this one (%s)", r.ContainerName, c.Name)
	}
	list, name := c.Resources.Requests, r.Resource
	if n, ok := strings.CutPrefix(name, "limits."); ok {
		list, name = c.Resources.Limits, n
	} else {
		name = strings.TrimPrefix(name, "requests.")
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok || q.IsZero() {
		return "", fmt.Errorf("resourceFieldRef %s: the container sets none (the kubelet would give the node's allocatable)", r.Resource)
	}
	divisor := resource.MustParse("1")
	if !r.Divisor.IsZero() {
		divisor = r.Divisor
	}
	return fmt.Sprint((q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()), nil
}

// resolveEnv computes a container's environment: envFrom, then env (which
// wins), each value resolved from the Secret, ConfigMap or downward API field
// it names.
func (m *manifests) resolveEnv(namespace string, c *corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s := find(m.secrets, namespace, from.SecretRef.Name)
			if s == nil {
				return nil, fmt.Errorf("envFrom: no Secret %s", from.SecretRef.Name)
			}
			for k := range s.StringData {
				env[from.Prefix+k], _ = m.secretValue(namespace, s.Name, k)
			}
			for k := range s.Data {
				env[from.Prefix+k], _ = m.secretValue(namespace, s.Name, k)
			}
		case from.ConfigMapRef != nil:
			cm := find(m.configMaps, namespace, from.ConfigMapRef.Name)
			if cm == nil {
				return nil, fmt.Errorf("envFrom: no ConfigMap %s", from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expand(e.Value, env)
			continue
		}
		vf := e.ValueFrom
		switch {
		case vf.SecretKeyRef != nil:
			v, ok := m.secretValue(namespace, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			if !ok {
				return nil, fmt.Errorf("env %s: no key %q in Secret %s", e.Name, vf.SecretKeyRef.Key, vf.SecretKeyRef.Name)
			}
			env[e.Name] = v
		case vf.ConfigMapKeyRef != nil:
			v, ok := m.configMapValue(namespace, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			if !ok {
				return nil, fmt.Errorf("env %s: no key %q in ConfigMap %s", e.Name, vf.ConfigMapKeyRef.Key, vf.ConfigMapKeyRef.Name)
			}
			env[e.Name] = v
		case vf.FieldRef != nil:
			v, ok := map[string]string{
				"status.podIP":       samplePodIP,
				"status.hostIP":      "10.0.0.1",
				"metadata.name":      "pod-0",
				"metadata.namespace": namespace,
				"spec.nodeName":      "node-0",
			}[vf.FieldRef.FieldPath]
			if !ok {
				return nil, fmt.Errorf("env %s: field %q is not one this test knows", e.Name, vf.FieldRef.FieldPath)
			}
			env[e.Name] = v
		case vf.ResourceFieldRef != nil:
			v, err := resourceFieldValue(c, vf.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("env %s: empty valueFrom", e.Name)
		}
	}
	return env, nil
}

func binaries(t *testing.T, m *manifests) []binaryContainer {
	t.Helper()
	bs, errs := m.binaries(t)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return bs
}

// TestBinaryContainersParse runs every pingmcp container's command line and
// PINGMCP_* environment through the real config.Parse, so that a renamed or
// removed flag, or a value it refuses, fails here and not in a rollout.
func TestBinaryContainersParse(t *testing.T) {
	m := load(t)
	bs, errs := m.binaries(t)
	for _, err := range errs {
		t.Error(err)
	}
	byCommand := map[string][]binaryContainer{}
	for _, b := range bs {
		byCommand[b.command] = append(byCommand[b.command], b)
	}
	for _, tc := range []struct {
		command string
		check   func(t *testing.T, b binaryContainer)
	}{
		{"serve", func(t *testing.T, b binaryContainer) {
			c := b.cfg
			if c.ClusterProvider != "k8s" {
				t.Errorf("cluster provider %q, want k8s", c.ClusterProvider)
			}
			if c.Role != "both" {
				t.Errorf("role %q, want both", c.Role)
			}
			if c.Auth != "jwt" && c.Auth != "introspection" {
				t.Errorf("--auth %q: a cluster must authenticate callers", c.Auth)
			}
			if !strings.HasPrefix(c.PublicURL, "https://") || !strings.HasPrefix(c.Issuer, "https://") {
				t.Errorf("public URL %q and issuer %q: want https", c.PublicURL, c.Issuer)
			}
			if c.ClientID == "" || c.ClientSecret == "" {
				t.Errorf("client id %q, secret set %v: token exchange needs both", c.ClientID, c.ClientSecret != "")
			}
			if c.TodoAPIURL == "" {
				t.Error("no --todo-api-url: the todo tools would have no API")
			}
			if c.RedisURL == "" {
				t.Error("no --redis-url: each pod would keep its sessions in memory, and a session would end whenever its pod went away or a new one joined")
			}
			if c.StateKeys == "" {
				t.Error("no --state-keys: the tokens in session snapshots would have no key the pods share")
			}
			if c.DrainTimeout <= 0 {
				t.Errorf("--drain-timeout %s: in-flight requests would get no time to finish", c.DrainTimeout)
			}
			publicHost := strings.TrimPrefix(c.PublicURL, "https://")
			if len(c.AllowedHosts) > 0 && !slices.Contains(c.AllowedHosts, publicHost) {
				t.Errorf("--allowed-hosts %q leaves out the public URL's host %q: every request would be 403", c.AllowedHosts, publicHost)
			}
		}},
		{"todo-api", func(t *testing.T, b binaryContainer) {
			if b.cfg.RedisURL == "" {
				t.Error("no --redis-url: each replica would keep its own todos in memory")
			}
			if b.cfg.AllowUndelegated {
				t.Error("--allow-undelegated: the API must accept exchanged tokens only")
			}
		}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			if len(byCommand[tc.command]) == 0 {
				t.Fatalf("no container runs pingmcp %s", tc.command)
			}
			for _, b := range byCommand[tc.command] {
				tc.check(t, b)
			}
		})
	}
	for _, b := range bs {
		secret := map[string]bool{} // variables whose value is a secret
		for _, f := range secretFlags {
			secret[config.EnvName(f)] = true
		}
		if u, err := url.Parse(b.cfg.RedisURL); err == nil && u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				secret[config.EnvName("redis-url")] = true
			}
		}
		for name := range secret {
			flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "PINGMCP_"), "_", "-"))
			for _, a := range b.container.Args {
				if a == "--"+flagName || strings.HasPrefix(a, "--"+flagName+"=") || a == "-"+flagName || strings.HasPrefix(a, "-"+flagName+"=") {
					t.Errorf("%s: --%s on the command line shows in the pod spec and ps; use %s from a Secret", b, flagName, name)
				}
			}
		}
		for _, e := range b.container.Env {
			if (secret[e.Name] || (strings.HasPrefix(e.Name, "PINGMCP_") && strings.Contains(e.Name, "SECRET"))) &&
				(e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s: %s must come from a Secret", b, e.Name)
			}
		}
	}
}

// TestPlaceholdersAreRefused checks that secrets.yaml holds no credential,
// only placeholders, and that pingmcp refuses to start with the state keys'
// placeholder: a forgotten one must not become a key everyone knows.
func TestPlaceholdersAreRefused(t *testing.T) {
	m := load(t)
	for _, s := range m.secrets {
		for k := range s.StringData {
			if v, _ := m.secretValue(s.Namespace, s.Name, k); !strings.HasPrefix(v, placeholderPrefix) {
				t.Errorf("secret %s, key %s: not a %s... placeholder; keep credentials out of the repository", s.Name, k, placeholderPrefix)
			}
		}
		for k, v := range s.Data {
			if !strings.HasPrefix(string(v), placeholderPrefix) {
				t.Errorf("secret %s, key %s: not a %s... placeholder; keep credentials out of the repository", s.Name, k, placeholderPrefix)
			}
		}
	}
	serve := m.deployment("pingmcp")
	if serve == nil {
		t.Fatal("no deployment pingmcp")
	}
	c := &serve.Spec.Template.Spec.Containers[0]
	env, err := m.resolveEnv(serve.Namespace, c)
	if err != nil {
		t.Fatal(err)
	}
	for name := range placeholderStandIns {
		if !strings.HasPrefix(env[name], placeholderPrefix) {
			t.Errorf("%s does not hold a placeholder: drop its stand-in", name)
		}
	}
	for secretKey := range placeholderFileStandIns {
		secret, key, _ := strings.Cut(secretKey, "/")
		if v, ok := m.secretValue(serve.Namespace, secret, key); !ok || !strings.HasPrefix(v, placeholderPrefix) {
			t.Errorf("secret %s, key %s: %q is not a placeholder: drop its stand-in", secret, key, v)
		}
	}
	_, err = m.parseBinaryWith(t, serve, c, noStandIn, noFileStandIn)
	if err == nil || !strings.Contains(err.Error(), "--state-keys") {
		t.Errorf("pingmcp serve with the placeholder state keys: err = %v, want a refusal of --state-keys", err)
	}
	if err == nil || !strings.Contains(err.Error(), "--cluster-tls-cert") {
		t.Errorf("pingmcp serve with the placeholder cluster TLS files: err = %v, want a refusal of --cluster-tls-*", err)
	}
}

func TestBinaryParseCatchesMistakes(t *testing.T) {
	m := load(t)
	serve := m.deployment("pingmcp")
	if serve == nil {
		t.Fatal("no deployment pingmcp")
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *corev1.Container)
	}{
		{"renamed flag", func(c *corev1.Container) { c.Args = append(c.Args, "--cluster-advertise=1.2.3.4:7000") }},
		{"unknown env", func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "PINGMCP_NO_SUCH_FLAG", Value: "x"})
		}},
		{"bad value", func(c *corev1.Container) { c.Args = append(c.Args, "--cluster-provider=k8", "--role=both") }},
		{"undefined variable", func(c *corev1.Container) { c.Args = append(c.Args, "--log-level=$(LEVEL)") }},
		{"secret key missing", func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "pingmcp-exchange-client"}, Key: "nope"}}})
		}},
		{"flag twice", func(c *corev1.Container) { c.Args = append(c.Args, "--client-secret=x") }},
		{"Redis without state keys", func(c *corev1.Container) {
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "PINGMCP_STATE_KEYS" })
		}},
		{"state keys from a missing Secret key", func(c *corev1.Container) {
			for i := range c.Env {
				if r := c.Env[i].ValueFrom; r != nil && r.SecretKeyRef != nil && c.Env[i].Name == "PINGMCP_STATE_KEYS" {
					r.SecretKeyRef.Key = "keys"
				}
			}
		}},
		{"bad Redis URL", func(c *corev1.Container) {
			for i := range c.Env {
				if c.Env[i].Name == "PINGMCP_REDIS_URL" {
					c.Env[i].Value = "redis.pingmcp.svc.cluster.local:6379"
				}
			}
		}},
		{"actor outlives its session", func(c *corev1.Container) {
			c.Args = append(c.Args, "--session-idle-timeout=10m", "--actor-idle-timeout=20m")
		}},
		{"plaintext cluster", func(c *corev1.Container) {
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cluster-tls-") })
		}},
		{"cluster TLS without its CA", func(c *corev1.Container) {
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cluster-tls-ca") })
		}},
		{"cluster TLS Secret not mounted", func(c *corev1.Container) { c.VolumeMounts = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := serve.DeepCopy()
			tc.mutate(&d.Spec.Template.Spec.Containers[0])
			if _, err := m.parseBinary(t, d, &d.Spec.Template.Spec.Containers[0]); err == nil {
				t.Error("parsed without error")
			}
		})
	}
}
