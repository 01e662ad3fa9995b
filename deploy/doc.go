// Package deploy holds pingmcp's Kubernetes manifests (plain YAML, applied
// with `kubectl apply -k deploy/`) and the test that keeps them honest: it
// decodes every manifest strictly into the Kubernetes API types and checks
// that the objects agree with each other, with the Dockerfile and with the
// flags the pingmcp binary really has. It holds no Go code of its own.
package deploy
