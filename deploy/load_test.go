package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifests is everything the kustomization applies, decoded.
type manifests struct {
	kustomization kustomization
	all           []manifest

	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	roles           []*rbacv1.Role
	roleBindings    []*rbacv1.RoleBinding
	deployments     []*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies []*networkingv1.NetworkPolicy
	// Cluster-scoped: no namespace.
	admissionPolicies []*admissionregistrationv1.ValidatingAdmissionPolicy
	policyBindings    []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

// manifest is one decoded object and where it came from.
type manifest struct {
	file string
	kind string // apiVersion/kind
	meta metav1.Object
}

func (m manifest) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", m.kind, m.meta.GetNamespace(), m.meta.GetName(), m.file)
}

// kustomization is the part of kustomize's Kustomization this directory uses;
// decoding it strictly makes any other field a test failure, so that a new
// one is looked at here too.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []image  `json:"images"`
}

type image struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

// decodeStrict decodes one YAML document into v the way the API server does
// with fieldValidation=Strict: duplicate keys, unknown fields and fields
// spelled in another case are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// add decodes doc strictly into a new T and appends it to list.
func add[T any, PT interface {
	*T
	metav1.Object
}](doc []byte, list *[]PT) (metav1.Object, error) {
	v := PT(new(T))
	if err := decodeStrict(doc, v); err != nil {
		return nil, err
	}
	*list = append(*list, v)
	return v, nil
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

var loadManifests = sync.OnceValues(func() (*manifests, error) {
	m := &manifests{}
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		return nil, err
	}
	if err := decodeStrict(raw, &m.kustomization); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	kinds := map[string]func([]byte) (metav1.Object, error){
		"v1/Namespace":      func(d []byte) (metav1.Object, error) { return add(d, &m.namespaces) },
		"v1/ServiceAccount": func(d []byte) (metav1.Object, error) { return add(d, &m.serviceAccounts) },
		"v1/Secret":         func(d []byte) (metav1.Object, error) { return add(d, &m.secrets) },
		"v1/ConfigMap":      func(d []byte) (metav1.Object, error) { return add(d, &m.configMaps) },
		"v1/Service":        func(d []byte) (metav1.Object, error) { return add(d, &m.services) },
		"rbac.authorization.k8s.io/v1/Role": func(d []byte) (metav1.Object, error) {
			return add(d, &m.roles)
		},
		"rbac.authorization.k8s.io/v1/RoleBinding": func(d []byte) (metav1.Object, error) {
			return add(d, &m.roleBindings)
		},
		"apps/v1/Deployment":            func(d []byte) (metav1.Object, error) { return add(d, &m.deployments) },
		"policy/v1/PodDisruptionBudget": func(d []byte) (metav1.Object, error) { return add(d, &m.pdbs) },
		"autoscaling/v2/HorizontalPodAutoscaler": func(d []byte) (metav1.Object, error) {
			return add(d, &m.hpas)
		},
		"networking.k8s.io/v1/NetworkPolicy": func(d []byte) (metav1.Object, error) {
			return add(d, &m.networkPolicies)
		},
		"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": func(d []byte) (metav1.Object, error) {
			return add(d, &m.admissionPolicies)
		},
		"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": func(d []byte) (metav1.Object, error) {
			return add(d, &m.policyBindings)
		},
	}
	for _, file := range m.kustomization.Resources {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for i, doc := range documentSeparator.Split(string(raw), -1) {
			j, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
			}
			if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
				continue // only comments
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(j, &tm); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
			}
			kind := tm.APIVersion + "/" + tm.Kind
			decode := kinds[kind]
			if decode == nil {
				return nil, fmt.Errorf("%s, document %d: %s is not a kind this test knows; add it to the decoder table and check it", file, i+1, kind)
			}
			obj, err := decode([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("%s, document %d (%s): %w", file, i+1, kind, err)
			}
			m.all = append(m.all, manifest{file: file, kind: kind, meta: obj})
		}
	}
	return m, nil
})

func load(t *testing.T) *manifests {
	t.Helper()
	m, err := loadManifests()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Lookups by name; nil when absent.

func find[T metav1.Object](list []T, namespace, name string) T {
	for _, v := range list {
		if v.GetNamespace() == namespace && v.GetName() == name {
			return v
		}
	}
	var zero T
	return zero
}

func (m *manifests) deployment(name string) *appsv1.Deployment {
	for _, d := range m.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func (m *manifests) secretValue(namespace, name, key string) (string, bool) {
	s := find(m.secrets, namespace, name)
	if s == nil {
		return "", false
	}
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

func (m *manifests) configMapValue(namespace, name, key string) (string, bool) {
	c := find(m.configMaps, namespace, name)
	if c == nil {
		return "", false
	}
	if v, ok := c.Data[key]; ok {
		return v, true
	}
	v, ok := c.BinaryData[key]
	return string(v), ok
}

func TestStrictDecoderRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n"},
		{"field in another case", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: http}]}\n"},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata: {name: x, name: y}\n"},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: eighty}]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := decodeStrict([]byte(tc.doc), &corev1.Service{}); err == nil {
				t.Errorf("decoded without error:\n%s", tc.doc)
			}
		})
	}
	if err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPort: http}]}\n"), &corev1.Service{}); err != nil {
		t.Errorf("a valid Service: %v", err)
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	m := load(t)
	if m.kustomization.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kustomization.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s/%s", m.kustomization.APIVersion, m.kustomization.Kind)
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range m.kustomization.Resources {
		listed[r] = true
	}
	for _, e := range entries {
		name := e.Name()
		if (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) && name != "kustomization.yaml" && !listed[name] {
			t.Errorf("%s is not in kustomization.yaml's resources: kubectl apply -k would skip it", name)
		}
	}
	seen := map[string]manifest{}
	for _, o := range m.all {
		key := o.kind + " " + o.meta.GetNamespace() + "/" + o.meta.GetName()
		if prev, dup := seen[key]; dup {
			t.Errorf("%s is defined twice (also %s)", o, prev.file)
		}
		seen[key] = o
	}
}
