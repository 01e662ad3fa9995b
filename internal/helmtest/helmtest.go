// Package helmtest renders pingmcp's Helm chart with Helm itself, as a
// library: `helm install --dry-run=client` (helm template), for the tests that
// check the chart against deploy/'s manifests and apply it to a real API
// server.
package helmtest

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// Rendered is what `helm install --dry-run=client` prints: the manifests (a
// YAML stream, "---" between documents) and the NOTES.
type Rendered struct {
	Manifest string
	Notes    string
}

// Options say what to render the chart for.
type Options struct {
	Name, Namespace string         // the release's
	Values          map[string]any // over the chart's values.yaml
	// KubeVersion is the cluster's version (default DefaultKubeVersion).
	KubeVersion string
	// APIVersions are the API versions the cluster serves besides the
	// built-in ones, e.g. "monitoring.coreos.com/v1".
	APIVersions []string
}

// DefaultKubeVersion is the version of internal/kubetest's API server.
const DefaultKubeVersion = "v1.34.4"

// Render renders the chart in dir as `helm install --dry-run=client` does.
func Render(dir string, o Options) (Rendered, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return Rendered{}, fmt.Errorf("load chart %s: %w", dir, err)
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(io.Discard, nil)))
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = o.Name
	install.Namespace = o.Namespace
	install.APIVersions = common.VersionSet(o.APIVersions)
	kv, err := common.ParseKubeVersion(cmp.Or(o.KubeVersion, DefaultKubeVersion))
	if err != nil {
		return Rendered{}, err
	}
	install.KubeVersion = kv
	values := o.Values
	if values == nil {
		values = map[string]any{}
	}
	r, err := install.Run(chrt, values)
	if err != nil {
		return Rendered{}, fmt.Errorf("render chart %s: %w", dir, err)
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return Rendered{}, fmt.Errorf("render chart %s: a %T, not a release", dir, r)
	}
	out := Rendered{Manifest: rel.Manifest}
	if rel.Info != nil {
		out.Notes = rel.Info.Notes
	}
	return out, nil
}

// Lint runs `helm lint` on the chart in dir with values and returns its
// messages of at least severity warning (lint's "info" is left out: a
// missing icon, say).
func Lint(dir, namespace string, values map[string]any) ([]string, error) {
	kv, err := common.ParseKubeVersion(DefaultKubeVersion)
	if err != nil {
		return nil, err
	}
	l := lint.RunAll(dir, values, namespace, lint.WithKubeVersion(kv))
	var out []string
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			out = append(out, m.Error())
		}
	}
	return out, nil
}
