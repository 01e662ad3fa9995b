package deploy

import (
	"net"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/pingmcp/pingmcp/internal/helmtest"
)

const egressPolicy = "networking.k8s.io/v1/NetworkPolicy pingmcp/pingmcp-egress"

// metadataIP is the cloud metadata address, which no pod of pingmcp's
// may reach.
var metadataIP = net.ParseIP("169.254.169.254")

func egressValues(egress map[string]any) map[string]any {
	egress["enabled"] = true
	return map[string]any{"networkPolicy": map[string]any{"egress": egress}}
}

// egressAdmits says whether np lets its pods reach ip on port (TCP), by
// the rules that name addresses (ipBlock): NetworkPolicy's semantics,
// except that a rule with no peers, which admits every destination, is an
// error.
func egressAdmits(t *testing.T, np *networkingv1.NetworkPolicy, ip net.IP, port int32) bool {
	t.Helper()
	for i, rule := range np.Spec.Egress {
		if len(rule.To) == 0 {
			t.Errorf("egress rule %d admits every destination", i)
			return true
		}
		portOK := len(rule.Ports) == 0 || slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
			if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
				return false
			}
			if p.Port == nil {
				return true
			}
			last := p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			return port >= p.Port.IntVal && port <= last
		})
		if !portOK {
			continue
		}
		for _, peer := range rule.To {
			if peer.IPBlock == nil {
				continue
			}
			if _, cidr, err := net.ParseCIDR(peer.IPBlock.CIDR); err != nil || !cidr.Contains(ip) {
				continue
			}
			excepted := slices.ContainsFunc(peer.IPBlock.Except, func(e string) bool {
				_, ex, err := net.ParseCIDR(e)
				if err != nil {
					t.Errorf("egress rule %d: except %q: %v", i, e, err)
				}
				return err == nil && ex.Contains(ip)
			})
			if !excepted {
				return true
			}
		}
	}
	return false
}

// TestHelmEgressPolicy: networkPolicy.egress, off by default, renders a
// NetworkPolicy of the release's pods that admits DNS, their own cluster
// port, the trial Redis, and each destination's peers on its ports (by
// default every address but the metadata one, on the usual ports); every
// ipBlock that holds a blocked CIDR (169.254.169.254/32) excepts it, its
// own excepts kept, so that no configuration reaches the metadata address;
// one that lies within a blocked CIDR, an extra rule without peers (every
// destination), a destination without ports (every port) and an IPv6
// blocked CIDR (which the chart cannot except) are refused.
func TestHelmEgressPolicy(t *testing.T) {
	chart, _ := renderChart(t, defaultRelease(t, nil))
	if chart[egressPolicy] != nil {
		t.Error("an egress policy with the default values")
	}

	chart, _ = renderChart(t, defaultRelease(t, egressValues(map[string]any{})))
	var np networkingv1.NetworkPolicy
	decodeObject(t, chart[egressPolicy], &np)
	var d appsv1.Deployment
	decodeObject(t, chart["apps/v1/Deployment pingmcp/pingmcp"], &d)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) || !selects(&np.Spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("policy types %v, pod selector %v: want Egress of the Deployment's pods %v", np.Spec.PolicyTypes, np.Spec.PodSelector, d.Spec.Template.Labels)
	}
	// Each other's cluster port, by the pods' labels; DNS on 53, UDP and
	// TCP, to kube-dns.
	cluster, dns := false, false
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil && selects(peer.PodSelector, d.Spec.Template.Labels) &&
				slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port.IntVal == clusterPortNumber(&d) }) {
				cluster = true
			}
			if peer.PodSelector != nil && peer.PodSelector.MatchLabels["k8s-app"] == "kube-dns" && len(rule.Ports) == 2 &&
				rule.Ports[0].Port.IntVal == 53 && *rule.Ports[0].Protocol == corev1.ProtocolUDP && rule.Ports[1].Port.IntVal == 53 && *rule.Ports[1].Protocol == corev1.ProtocolTCP {
				dns = true
			}
		}
	}
	if !cluster || !dns {
		t.Errorf("the pods' cluster port (%d) admitted %v, DNS %v; want both: %+v", clusterPortNumber(&d), cluster, dns, np.Spec.Egress)
	}
	for _, c := range []struct {
		ip   string
		port int32
		want bool
	}{
		{"203.0.113.7", 443, true},  // PingFederate, an API, the API server
		{"203.0.113.7", 9031, true}, // PingFederate's runtime port
		{"203.0.113.7", 6380, true}, // Redis with TLS
		{"203.0.113.7", 6443, true}, // the API server
		{"203.0.113.7", 22, false},  // no destination's port
		{"169.254.169.254", 80, false},
		{"169.254.169.254", 443, false},
	} {
		if got := egressAdmits(t, &np, net.ParseIP(c.ip), c.port); got != c.want {
			t.Errorf("defaults: %s:%d admitted %v, want %v", c.ip, c.port, got, c.want)
		}
	}

	// Narrowed, with the trial Redis: PingFederate's network only, an API
	// in a link-local range (the metadata address excepted, its own except
	// kept), no other Redis (no peers: no rule), an OTLP collector.
	chart, _ = renderChart(t, defaultRelease(t, map[string]any{
		"redis": map[string]any{"trial": map[string]any{"enabled": true}, "url": ""},
		"networkPolicy": egressValues(map[string]any{
			"pingFederate": map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.20.0.0/16"}}}},
			"apis": map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "169.254.0.0/16", "except": []any{"169.254.1.0/24"}}}},
				"ports": []any{map[string]any{"port": 8443, "protocol": "TCP"}}},
			"redis":      map[string]any{"to": []any{}},
			"extraRules": []any{map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0", "except": []any{"169.254.169.254/32"}}}}, "ports": []any{map[string]any{"port": 4317}}}},
		})["networkPolicy"],
	}))
	np = networkingv1.NetworkPolicy{}
	decodeObject(t, chart[egressPolicy], &np)
	for _, c := range []struct {
		ip   string
		port int32
		want bool
	}{
		{"10.20.3.4", 9031, true},
		{"10.21.3.4", 9031, false},
		{"169.254.7.7", 8443, true},
		{"169.254.1.7", 8443, false}, // its own except
		{"169.254.169.254", 8443, false},
		{"203.0.113.7", 6379, false}, // Redis: no peers
		{"203.0.113.7", 4317, true},
		{"169.254.169.254", 4317, false},
	} {
		if got := egressAdmits(t, &np, net.ParseIP(c.ip), c.port); got != c.want {
			t.Errorf("narrowed: %s:%d admitted %v, want %v", c.ip, c.port, got, c.want)
		}
	}
	trialRedis := false
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.PodSelector != nil && peer.PodSelector.MatchLabels["app.kubernetes.io/name"] == "redis" && rule.Ports[0].Port.IntVal == 6379 {
				trialRedis = true
			}
			if peer.IPBlock != nil && strings.Count(strings.Join(peer.IPBlock.Except, " "), "169.254.169.254/32") > 1 {
				t.Errorf("169.254.169.254/32 excepted twice: %v", peer.IPBlock.Except)
			}
		}
	}
	if !trialRedis {
		t.Errorf("the trial Redis's pods are not admitted on 6379: %+v", np.Spec.Egress)
	}

	for name, c := range map[string]struct {
		egress map[string]any
		want   string
	}{
		"the metadata address itself": {map[string]any{"apis": map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "169.254.169.254/32"}}}}}, "blockedCIDRs"},
		"within a blocked CIDR": {map[string]any{"blockedCIDRs": []any{"169.254.0.0/16"},
			"pingFederate": map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "169.254.169.0/24"}}}}}, "networkPolicy.egress.pingFederate"},
		"an extra rule without peers": {map[string]any{"extraRules": []any{map[string]any{"ports": []any{map[string]any{"port": 4317}}}}}, "extraRules[0]"},
		"a destination without ports": {map[string]any{"apis": map[string]any{"ports": []any{}}}, "networkPolicy/egress/apis/ports"},
		"an IPv6 blocked CIDR":        {map[string]any{"blockedCIDRs": []any{"fd00:ec2::254/128"}}, "blockedCIDRs"},
	} {
		_, err := helmtest.Render(chartDir, defaultRelease(t, egressValues(c.egress)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal naming %s", name, err, c.want)
		}
	}
}
