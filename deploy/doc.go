// Package deploy holds pingmcp's Kubernetes manifests (plain YAML, applied
// with `kubectl apply -k deploy/`), its Helm chart (helm/pingmcp) and the
// tests that keep them honest: they decode every manifest strictly into the
// Kubernetes API types and check that the objects agree with each other,
// with the Dockerfile and with the flags the pingmcp binary really has, and
// that the chart, rendered by Helm, gives the same pingmcp objects as
// `kustomize build deploy/`. It holds no Go code of its own.
package deploy
