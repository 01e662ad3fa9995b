package rpcbody

import "github.com/pingmcp/pingmcp/cluster/envelope"

// Proto is the reading as the edge forwards it with the body.
func (b *Body) Proto() *envelope.RpcBody {
	if b == nil {
		return nil
	}
	p := &envelope.RpcBody{Batch: b.Batch, Messages: make([]*envelope.RpcMessage, len(b.Messages))}
	for i, m := range b.Messages {
		p.Messages[i] = &envelope.RpcMessage{Kind: uint32(m.Kind), Method: m.Method, Id: m.ID, Tool: m.Tool,
			ArgsStart: uint32(m.ArgsStart), ArgsEnd: uint32(m.ArgsEnd)}
	}
	return p
}

// FromProto is the reading an edge forwarded (nil for none: a GET or a
// DELETE). It holds what the actor needs: kinds, methods, ids, tool names
// and where arguments lie; not sizes, protocol versions or trace context,
// which the edge used.
func FromProto(p *envelope.RpcBody) *Body {
	if p == nil {
		return nil
	}
	b := &Body{Batch: p.Batch, Messages: make([]Message, len(p.Messages))}
	for i, m := range p.Messages {
		b.Messages[i] = Message{Kind: Kind(m.Kind), Method: m.Method, ID: m.Id, Tool: m.Tool,
			ArgsStart: int(m.ArgsStart), ArgsEnd: int(m.ArgsEnd)}
	}
	return b
}
