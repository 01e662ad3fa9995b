package envelope

import (
	"net/http"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

func TestHeadersRoundTrip(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "Mcp-Param-Region": {"eu", "us"}}
	got := http.Header{}
	ToHTTP(FromHTTP(h), got)
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("got %v, want %v", got, h)
	}
}

func TestEnvelopeWire(t *testing.T) {
	in := &Envelope{Body: &Envelope_Request{Request: &Request{
		Id: "r1", Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0"}`), Window: 16,
		Headers:   []*Header{{Name: "Mcp-Session-Id", Values: []string{"abc"}}},
		Principal: &Principal{Issuer: "https://idp", Subject: "u", ClientId: "c", Scopes: []string{"a", "b"}},
	}}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &Envelope{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip changed the envelope: %v", out)
	}
	// protoactor finds types by their full name: the envelope must be registered.
	if _, err := protoregistry.GlobalTypes.FindMessageByName("pingmcp.envelope.v1.Envelope"); err != nil {
		t.Fatal(err)
	}
	// Garbage fails to decode rather than yielding a half-read request.
	if err := proto.Unmarshal([]byte{0x0a, 0xff, 0xff}, &Envelope{}); err == nil {
		t.Error("truncated envelope decoded")
	}
}
