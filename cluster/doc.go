// Package cluster places pingmcp's actors on a protoactor-go cluster and
// carries forwarded requests to them.
//
// It owns the actor system, remoting, membership (the single-node, seeds and
// Kubernetes providers), and [Node.Forward]: the edge's side of the seam that
// sends one HTTP request to the actor of a session or principal, wherever it
// is placed, and streams back the actor's response parts in order, with flow
// control and cancellation. What the actors do with a request is left to the
// actors package; what the edge checks before forwarding is left to transport.
package cluster
