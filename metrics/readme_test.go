package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestREADMEListsEveryMetric holds README's Metrics table to this package:
// every pingmcp_ metric it defines has a row, every row names one it
// defines, and a row names the labels of its metric.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n### Metrics\n")
	section, _, _ = strings.Cut(section, "\n### ")
	rows := map[string][]string{} // metric: the labels its row names
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `pingmcp_") {
			continue
		}
		cell := strings.Split(line, " | ")[0]
		for _, m := range regexp.MustCompile("`(pingmcp_[a-z_]+)(?:\\{([^}]*)\\})?`").FindAllStringSubmatch(cell, -1) {
			rows[m[1]] = labelNames(m[2])
		}
	}
	if len(rows) == 0 {
		t.Fatal("README has no Metrics table")
	}

	// Every name this package's code gives a metric, those registered by
	// LiveActors, StoredSessions and StoredTasks included.
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(pingmcp_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		defined[m[1]] = true
		if _, ok := rows[m[1]]; !ok {
			t.Errorf("README's Metrics table has no row for %s", m[1])
		}
	}
	for name := range rows {
		if !defined[name] {
			t.Errorf("README's Metrics table lists %s, which metrics.go does not define", name)
		}
	}

	// The labels of those registered now.
	descs := make(chan *prometheus.Desc)
	go func() { Registry.Describe(descs); close(descs) }()
	fields := regexp.MustCompile(`fqName: "([^"]+)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)
	for d := range descs {
		m := fields.FindStringSubmatch(d.String())
		if m == nil || !strings.HasPrefix(m[1], "pingmcp_") {
			continue
		}
		for _, l := range append(labelNames(m[2]), labelNames(m[3])...) {
			if !slices.Contains(rows[m[1]], l) {
				t.Errorf("README's row of %s does not name its label %s (it names %v)", m[1], l, rows[m[1]])
			}
		}
	}
}

// labelNames are the names of a comma-separated list of labels, each a
// name or name=value (`kind="session"|"principal"` in README).
func labelNames(list string) []string {
	var out []string
	for l := range strings.SplitSeq(list, ",") {
		if name, _, _ := strings.Cut(l, "="); name != "" {
			out = append(out, name)
		}
	}
	return out
}
