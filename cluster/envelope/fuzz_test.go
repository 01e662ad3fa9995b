package envelope

// FuzzEnvelope: what a node makes of any bytes that arrive as an envelope.
// The seed corpus is under testdata/fuzz/FuzzEnvelope/; scripts/test.sh
// fuzzes the target for a bounded time.

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// FuzzEnvelope decodes arbitrary bytes as an Envelope, and turns a decoded
// request into the http.Request an actor serves (ToHTTP, and the request
// built from its method, path and body as actors do). It asserts: no panic;
// decoding is all or nothing (a decoded envelope encodes and decodes to
// itself); every string is UTF-8; and what comes out is bounded by what
// came in: the headers ToHTTP produces hold no more bytes or values than
// the input, and a re-encoding grows it by a bounded factor at most.
func FuzzEnvelope(f *testing.F) {
	for _, e := range []*Envelope{
		{Body: &Envelope_Request{Request: &Request{
			Id: "r1", Method: "POST", Path: "/mcp", Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), Window: 16,
			Headers: []*Header{{Name: "Mcp-Session-Id", Values: []string{"AAAAAAAAAAAAAAAAAAAAAA"}}, {Name: "content-type", Values: []string{"application/json"}},
				{Name: "Mcp-Param-Region", Values: []string{"eu", "us"}}, {Name: "X-Empty"}},
			Principal: &Principal{Issuer: "https://idp", Subject: "u", ClientId: "c", Scopes: []string{"a", "b"}, ExpiresUnix: 1 << 40,
				Token: "t", TokenId: "j", Audience: []string{"https://mcp"}, ClaimsJson: []byte(`{"sub":"u"}`)},
		}}},
		{Body: &Envelope_Request{Request: &Request{Method: "GET", Path: "http://evil.example/x?y=%zz#f", Headers: []*Header{{Name: "Last-Event-Id", Values: []string{"0"}}}}}},
		{Body: &Envelope_Request{Request: &Request{Method: "PO ST", Path: "@evil.example/mcp"}}},
		{Body: &Envelope_Part{Part: &ResponsePart{RequestId: "r1", Seq: 3, Status: 200, Body: []byte("data: x\n\n"), Final: true, Error: "e",
			Headers: []*Header{{Name: "Content-Type", Values: []string{"text/event-stream"}}}}}},
		{Body: &Envelope_Cancel{Cancel: &Cancel{RequestId: "r1"}}},
		{Body: &Envelope_Ack{Ack: &Ack{RequestId: "r1", Seq: 1 << 63}}},
		{},
	} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range [][]byte{
		{0x0a, 0xff, 0xff}, // truncated length
		{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // overlong varint
		{0x0a, 0x02, 0x22, 0x01},               // a field running past its message
		{0x0a, 0x04, 0x12, 0x02, 0xc3, 0x28},   // a string that is not UTF-8
		bytes.Repeat([]byte{0x0a, 0x00}, 1000), // one field a thousand times
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Envelope
		if err := proto.Unmarshal(b, &e); err != nil {
			return
		}
		again, err := proto.Marshal(&e)
		if err != nil {
			t.Fatalf("a decoded envelope does not encode: %v", err)
		}
		if len(again) > 8*len(b)+16 {
			t.Fatalf("%d bytes encode again as %d", len(b), len(again))
		}
		var e2 Envelope
		if err := proto.Unmarshal(again, &e2); err != nil || !proto.Equal(&e, &e2) {
			t.Fatalf("re-encoded envelope decodes as %v (%v), not %v", &e2, err, &e)
		}
		req := e.GetRequest()
		if req == nil {
			if p := e.GetPart(); p != nil {
				h := http.Header{}
				ToHTTP(p.Headers, h)
				checkHeaders(t, h, b)
			}
			return
		}
		for _, s := range []string{req.Id, req.Method, req.Path, req.GetPrincipal().GetToken()} {
			if !utf8.ValidString(s) {
				t.Fatalf("decoded string %q is not UTF-8", s)
			}
		}
		// As the actor serves it (actors.SessionActor.serveHTTP).
		hr, err := http.NewRequestWithContext(context.Background(), req.Method, "http://pingmcp"+req.Path, bytes.NewReader(req.Body))
		if err != nil {
			return
		}
		ToHTTP(req.Headers, hr.Header)
		checkHeaders(t, hr.Header, b)
		hr.Header.Get("Mcp-Session-Id")
		hr.URL.RequestURI()
		// And back, as the edge builds it.
		if out := FromHTTP(hr.Header); len(out) > len(req.Headers) {
			t.Fatalf("%d headers give back %d", len(req.Headers), len(out))
		}
	})
}

// checkHeaders: h holds no more than the input it was decoded from.
func checkHeaders(t *testing.T, h http.Header, input []byte) {
	t.Helper()
	n, size := 0, 0
	for name, values := range h {
		size += len(name)
		for _, v := range values {
			n++
			size += len(v)
		}
	}
	if n > len(input) || size > len(input) {
		t.Fatalf("%d input bytes gave %d header values of %d bytes", len(input), n, size)
	}
}
