package rpcerr

import (
	"encoding/json"
	"testing"
)

// The bodies as clients read them: members in a fixed order, data only
// where the code carries it, retryable always present in data.
func TestBodies(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		id   json.RawMessage
		want string
	}{
		{"not found", NotFound(), nil,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"session not found"}}`},
		{"interrupted", Interruption(), json.RawMessage(`"a"`),
			`{"jsonrpc":"2.0","id":"a","error":{"code":-32003,"message":"request interrupted: the node serving this session stopped before answering; it may or may not have taken effect, retry if that is safe","data":{"retryable":true}}}`},
		{"moved", Replaced(), json.RawMessage(`7`),
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32004,"message":"session moved to another node; retry","data":{"retryable":true}}}`},
		{"retry later", RetryLater("rate", 2, "slow down"), nil,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"slow down","data":{"limit":"rate","retryAfter":2,"retryable":true}}}`},
		{"too large", TooLarge("snapshot_bytes", 300, 200, "too big"), json.RawMessage(`1`),
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"too big","data":{"limit":"snapshot_bytes","max":200,"retryable":false,"size":300}}}`},
		{"over limit", OverLimit("batch", 10, "a batch holds at most 10 messages"), nil,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a batch holds at most 10 messages","data":{"limit":"batch","max":10,"retryable":false}}}`},
		{"plain", New(InternalError, "retry"), json.RawMessage(`"x"`),
			`{"jsonrpc":"2.0","id":"x","error":{"code":-32603,"message":"retry"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.err.Response(tt.id)); got != tt.want {
				t.Errorf("Response:\n got %s\nwant %s", got, tt.want)
			}
			if got := string(tt.err.Body(tt.id)); got != tt.want+"\n" {
				t.Errorf("Body %q does not end the response with a newline", got)
			}
		})
	}
}

// SDK carries the same code, message and data for the go-sdk to write.
func TestSDK(t *testing.T) {
	je := Replaced().SDK()
	if je.Code != Moved || je.Message != "session moved to another node; retry" || string(je.Data) != `{"retryable":true}` {
		t.Errorf("SDK() = %+v (data %s)", je, je.Data)
	}
	if je := NotFound().SDK(); je.Data != nil {
		t.Errorf("an error without data has data %s", je.Data)
	}
}
