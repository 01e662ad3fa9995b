// Package envelope is the wire format between pingmcp nodes: one protobuf
// message type, [Envelope], that every cross-node message travels in.
//
// Regenerate envelope.pb.go after editing envelope.proto with
// `go generate ./cluster/envelope` (needs protoc and protoc-gen-go).
package envelope

//go:generate protoc --go_out=. --go_opt=paths=source_relative envelope.proto
