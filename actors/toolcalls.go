package actors

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
)

// reading is the JSON-RPC reading of a forwarded POST's body, nil for a
// GET or a DELETE. It is the edge's (the envelope's Rpc): the actor does not
// parse the body again. The scope check (checkScopes) relies on it, and may:
// an envelope comes only from a member of the cluster, whose edge built the
// reading and the body from the same bytes, and the actor already takes the
// envelope's Principal on trust; a process that could forge one could forge
// the other. A POST forwarded without a reading (an edge of an older
// version) is read here, so that nothing passes unchecked.
func reading(req *envelope.Request) (*rpcbody.Body, error) {
	if req.Method != http.MethodPost {
		return nil, nil
	}
	if req.Rpc != nil {
		return rpcbody.FromProto(req.Rpc), nil
	}
	return rpcbody.Read(req.Body)
}

// firstID is the id of a forwarded request's first JSON-RPC request, or
// null: the id of an error answering the whole request.
func firstID(req *envelope.Request) json.RawMessage {
	rb, _ := reading(req)
	return rb.FirstID()
}

// toolCallIDs hands out the JSON-RPC ids of a request's tools/calls to the
// audit records of the calls the MCP handler runs. The SDK hands a method
// handler no id (it keeps it under an unexported context key), and runs the
// calls of a batch concurrently, in no set order: a call is matched to the
// first message not yet claimed with its tool name and the same arguments,
// byte for byte (the SDK keeps params.arguments as sent). Calls that match
// the same message are identical, so which of their ids each record gets
// changes nothing it says.
type toolCallIDs struct {
	rb   *rpcbody.Body
	body []byte

	mu      sync.Mutex
	claimed []bool
}

func newToolCallIDs(rb *rpcbody.Body, body []byte) *toolCallIDs {
	if rb == nil {
		return nil
	}
	return &toolCallIDs{rb: rb, body: body, claimed: make([]bool, len(rb.Messages))}
}

// claim returns the id of the call of tool with arguments args, or "".
func (t *toolCallIDs) claim(tool string, args []byte) string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fallback := -1
	for i, m := range t.rb.Messages {
		if t.claimed[i] || m.Kind != rpcbody.Request || m.Method != "tools/call" || m.Tool != tool {
			continue
		}
		if 0 <= m.ArgsStart && m.ArgsStart <= m.ArgsEnd && m.ArgsEnd <= len(t.body) && bytes.Equal(t.body[m.ArgsStart:m.ArgsEnd], args) {
			t.claimed[i] = true
			return string(m.ID)
		}
		if fallback < 0 {
			fallback = i
		}
	}
	if fallback < 0 {
		return ""
	}
	t.claimed[fallback] = true
	return string(t.rb.Messages[fallback].ID)
}
