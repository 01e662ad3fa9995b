package kubetest

import (
	"os"
	"regexp"
	"testing"
)

// scripts/kube.sh builds the Version that BinDir names.
func TestVersionMatchesKubeScript(t *testing.T) {
	b, err := os.ReadFile("../../scripts/kube.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^readonly kube_version=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/kube.sh sets no kube_version")
	}
	if string(m[1]) != Version {
		t.Errorf("scripts/kube.sh builds %s, kubetest.Version is %s", m[1], Version)
	}
}
