package rpcbody

import "testing"

// "error": null is taken beside a result (6fc2395: some JSON-RPC libraries
// send it with every result), and only there: a request or notification
// with an "error" member is still no JSON-RPC request (§4), as one with a
// "result" member is not, null or not.
func TestErrorNullOnlyBesideAResult(t *testing.T) {
	if _, err := Read([]byte(`{"jsonrpc":"2.0","id":7,"result":{},"error":null}`)); err != nil {
		t.Fatalf("a result beside \"error\": null: %v", err)
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":7,"method":"ping","error":null}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized","error":null}`,
	} {
		if _, err := Read([]byte(body)); err == nil {
			t.Errorf("%s: taken, want refused as %s is", body, `{"jsonrpc":"2.0","id":7,"method":"ping","result":null}`)
		}
	}
	if _, err := Read([]byte(`{"jsonrpc":"2.0","id":7,"method":"ping","result":null}`)); err == nil {
		t.Error(`"result": null beside a method: taken`)
	}
}
