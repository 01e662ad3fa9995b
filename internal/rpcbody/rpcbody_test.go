package rpcbody

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func call(id, tool string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"a":1}}}`
}

func TestRead(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		batch bool
		ids   []string // of requests
		tools []string // of tools/calls
		kinds []Kind
		code  int // of the refusal; 0: read
	}{
		{"request", call("1", "delete_todo"), false, []string{"1"}, []string{"delete_todo"}, []Kind{Request}, 0},
		{"string id", call(`"a\u0062"`, "x"), false, []string{`"ab"`}, []string{"x"}, []Kind{Request}, 0},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, false, nil, nil, []Kind{Notification}, 0},
		{"response", `{"jsonrpc":"2.0","id":7,"result":{}}`, false, nil, nil, []Kind{Response}, 0},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"},` + call("2", "a") + `,` + call(`"x"`, "a") + `]`, true,
			[]string{"1", "2", `"x"`}, []string{"a", "a"}, []Kind{Request, Request, Request}, 0},
		{"a batch's ids 1 and \"1\", and a response's", `[` + call("1", "a") + `,` + call(`"1"`, "a") + `,{"jsonrpc":"2.0","id":1,"result":{}}]`, true,
			[]string{"1", `"1"`}, []string{"a", "a"}, []Kind{Request, Request, Response}, 0},
		{"batch of one", `[` + initBody + `]`, true, []string{"1"}, nil, []Kind{Request}, 0},
		{"id of 256 bytes", call(`"`+strings.Repeat("x", 254)+`"`, "a"), false, []string{`"` + strings.Repeat("x", 254) + `"`}, []string{"a"}, []Kind{Request}, 0},
		{"largest exact id", call("9007199254740992", "a"), false, []string{"9007199254740992"}, []string{"a"}, []Kind{Request}, 0},
		{"negative id", call("-9007199254740992", "a"), false, []string{"-9007199254740992"}, []string{"a"}, []Kind{Request}, 0},
		{"tool of another method is none", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}`, false, []string{"1"}, nil, []Kind{Request}, 0},

		{"id 1.5", call("1.5", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id 1.0", call("1.0", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id 1e2", call("1e2", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id 2^53+1", call("9007199254740993", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id -2^53-1", call("-9007199254740993", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id beyond int64", call("99999999999999999999999", "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id of 257 bytes", call(`"`+strings.Repeat("x", 255)+`"`, "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id of 257 bytes once escaped", call(`"`+strings.Repeat("x", 250)+`\u003c"`, "a"), false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id object", `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id true", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id not UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"ping\"}", false, nil, nil, nil, rpcerr.InvalidRequest},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"a batch element's null id", `[` + call("1", "a") + `,{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"a batch's requests with one id", `[` + call("1", "a") + `,` + call("1", "b") + `]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"a batch's requests with one id, written twice", `[` + call(`"a"`, "a") + `,` + call(`"\u0061"`, "b") + `]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"a batch element's id 1.5", `[` + call("1", "a") + `,` + call("1.5", "a") + `]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"method twice", `{"jsonrpc":"2.0","id":1,"method":"x","method":"tools/call","params":{"name":"delete_todo"}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"method in another case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"x","params":{"name":"delete_todo"}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"id in another case", `{"jsonrpc":"2.0","id":1,"ID":2,"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"params twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"name in another case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo","Name":"who_am_I"}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"name twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"arguments in another case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Arguments":{}}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"_meta key twice", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"k":1,"k":2}}}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"no jsonrpc", `{"id":1,"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"method a number", `{"jsonrpc":"2.0","id":1,"method":5}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"neither method nor id", `{"jsonrpc":"2.0"}`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"empty batch", `[]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"batch of numbers", `[1,2]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"nested batch", `[[` + initBody + `]]`, true, nil, nil, nil, rpcerr.InvalidRequest},
		{"a string", `"x"`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"null", `null`, false, nil, nil, nil, rpcerr.InvalidRequest},
		{"not JSON", `not json`, false, nil, nil, nil, rpcerr.ParseError},
		{"empty", ``, false, nil, nil, nil, rpcerr.ParseError},
		{"cut short", `{"jsonrpc":"2.0","id":1,`, false, nil, nil, nil, rpcerr.ParseError},
		{"two messages", initBody + initBody, false, nil, nil, nil, rpcerr.ParseError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read([]byte(tt.body))
			if tt.code != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.code {
					t.Fatalf("Read = %+v, %v; want error %d", b, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			var ids, tools []string
			var kinds []Kind
			for _, id := range b.IDs() {
				ids = append(ids, string(id))
			}
			for _, m := range b.Messages {
				kinds = append(kinds, m.Kind)
				if m.Tool != "" {
					tools = append(tools, m.Tool)
				}
			}
			if b.Batch != tt.batch || !slices.Equal(ids, tt.ids) || !slices.Equal(tools, tt.tools) || !slices.Equal(kinds, tt.kinds) {
				t.Errorf("Read = batch %v, ids %v, tools %v, kinds %v; want %v, %v, %v, %v", b.Batch, ids, tools, kinds, tt.batch, tt.ids, tt.tools, tt.kinds)
			}
			if !b.Batch {
				agree(t, []byte(tt.body), b.Messages[0])
			}
			// The reading survives the envelope.
			if p := FromProto(b.Proto()); !slices.EqualFunc(p.Messages, b.Messages, func(x, y Message) bool {
				return x.Kind == y.Kind && x.Method == y.Method && string(x.ID) == string(y.ID) && x.Tool == y.Tool && x.ArgsStart == y.ArgsStart && x.ArgsEnd == y.ArgsEnd
			}) || p.Batch != b.Batch {
				t.Errorf("FromProto(Proto()) = %+v, want %+v", p, b)
			}
		})
	}
}

func TestReadDetails(t *testing.T) {
	body := `[` + initBody + `, {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","arguments" : {"x": [1, "]"]},` +
		`"_meta":{"traceparent":"00-a-b-01","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}]`
	b, err := Read([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	init := b.Initialize()
	if init == nil || init.ParamsBytes < len(`{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`) ||
		init.ParamsBytes > len(`{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)+2 {
		t.Errorf("Initialize = %+v", init)
	}
	c := b.Messages[1]
	if got := body[c.ArgsStart:c.ArgsEnd]; got != `{"x": [1, "]"]}` {
		t.Errorf("arguments = %q", got)
	}
	if c.Traceparent != "00-a-b-01" || c.ProtocolVersion != "2026-07-28" {
		t.Errorf("_meta read as %+v", c)
	}
	if string(b.FirstID()) != "1" || b.First().Method != "initialize" || b.Requests() != 2 {
		t.Errorf("FirstID %s, First %+v, Requests %d", b.FirstID(), b.First(), b.Requests())
	}
	if r, _ := Read([]byte(`{"jsonrpc":"2.0","id":3,"result":{}}`)); string(r.FirstID()) != "null" || r.First() != nil {
		t.Errorf("a response: FirstID %s, First %+v", r.FirstID(), r.First())
	}
}

// agree checks that the go-sdk reads a message the reader read as it did:
// the same kind, method and id (as the SDK writes it back).
func agree(t *testing.T, body []byte, m Message) {
	t.Helper()
	msg, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		// The SDK refuses more (nesting beyond 1000, say): it answers 400.
		return
	}
	var id jsonrpc.ID
	switch msg := msg.(type) {
	case *jsonrpc.Request:
		if msg.Method != m.Method || msg.IsCall() != (m.Kind == Request) {
			t.Fatalf("SDK reads method %q (call %v), reader %q (kind %d)", msg.Method, msg.IsCall(), m.Method, m.Kind)
		}
		id = msg.ID
	case *jsonrpc.Response:
		if m.Kind != Response {
			t.Fatalf("SDK reads a response, reader kind %d", m.Kind)
		}
		id = msg.ID
	}
	if m.ID != nil {
		sdk, _ := json.Marshal(id.Raw())
		if string(sdk) != string(m.ID) {
			t.Fatalf("SDK answers under id %s, reader says %s", sdk, m.ID)
		}
	}
}

// FuzzRead feeds the reader arbitrary bodies: no panic; a reading names
// only ids the SDK writes back the same (strings, or integers within
// ±2^53), tool names only for tools/call, and argument ranges inside the
// body; a batch's initialize is one of its elements, which the body names.
func FuzzRead(f *testing.F) {
	for _, b := range []string{
		initBody,
		`[` + initBody + `]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},` + initBody + `]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":9}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":1,"Method":"initialize"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"initialize"}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":[1],"method":"ping"}`,
		`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":-1.5e300,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1e999999,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`,
		`{"jsonrpc":"2.0","result":{}, "id":7}`,
		"{\"jsonrpc\":\"2.0\",\"id\":\"\x00\xff\",\"method\":\"tools/call\"}",
		call("1", "a"), `[` + call("1", "a") + `,` + call("2", "a") + `]`,
		`[]`, `[[]]`, `[[{"method":"initialize"}]]`, `null`, ``, `   `, `{`, strings.Repeat("[", 5000),
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Read(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != rpcerr.ParseError && e.Code != rpcerr.InvalidRequest) {
				t.Fatalf("Read error %v", err)
			}
			return
		}
		if len(b.Messages) == 0 {
			t.Fatal("a reading without messages")
		}
		for _, m := range b.Messages {
			if (m.Kind == Request) != (m.ID != nil && m.Kind != Response) {
				t.Fatalf("kind %d with id %q", m.Kind, m.ID)
			}
			if m.ID != nil {
				if _, err := canonicalID(m.ID); err != nil {
					t.Fatalf("id %q is not canonical: %v", m.ID, err)
				}
				if again, _ := canonicalID(m.ID); string(again) != string(m.ID) {
					t.Fatalf("id %q reads back as %q", m.ID, again)
				}
			}
			if m.Tool != "" && m.Method != "tools/call" {
				t.Fatalf("tool %q of method %q", m.Tool, m.Method)
			}
			if m.ArgsStart < 0 || m.ArgsEnd > len(body) || m.ArgsStart > m.ArgsEnd {
				t.Fatalf("arguments at [%d:%d] of a %d-byte body", m.ArgsStart, m.ArgsEnd, len(body))
			}
		}
		if !b.Batch {
			agree(t, body, b.Messages[0])
		}
		if b.Initialize() != nil && !strings.Contains(string(body), "initialize") && !strings.Contains(string(body), `\u`) {
			t.Fatalf("initialize found in a body that does not name it: %q", body)
		}
	})
}

// ReadAtMost stops at the message beyond its bound: what follows is not
// read (here, bytes that are not JSON), so refusing a huge batch costs what
// the bound allows, not what was sent.
func TestReadAtMostStops(t *testing.T) {
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	body := "[" + strings.Repeat(ping+",", 3) + ping + ", not json at all"
	_, err := ReadAtMost([]byte(body), 3)
	var e *Error
	if !errors.As(err, &e) || e.Limit != "batch" || e.Max != 3 || e.Code != rpcerr.InvalidRequest {
		t.Fatalf("ReadAtMost(4+ messages, 3) = %v, want the batch bound", err)
	}
	if b, err := ReadAtMost([]byte("["+ping+","+strings.Replace(ping, "1", "2", 1)+","+strings.Replace(ping, "1", `"1"`, 1)+"]"), 3); err != nil || len(b.Messages) != 3 {
		t.Fatalf("a batch at the bound: %v", err)
	}
}

// An object of a message holds at most MaxMembers members: walking keys
// one by one is the reader's slow path.
func TestReadMaxMembers(t *testing.T) {
	body := func(n int) []byte {
		var sb strings.Builder
		sb.WriteString(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"`)
		for i := range n {
			fmt.Fprintf(&sb, `,"k%d":0`, i)
		}
		sb.WriteString("}}")
		return []byte(sb.String())
	}
	if _, err := Read(body(MaxMembers - 1)); err != nil {
		t.Fatalf("params of %d members: %v", MaxMembers, err)
	}
	var e *Error
	if _, err := Read(body(MaxMembers)); !errors.As(err, &e) || e.Code != rpcerr.InvalidRequest || e.Limit != "members" || !strings.Contains(e.Msg, "at most 256 members") {
		t.Fatalf("params of %d members: %v", MaxMembers+1, err)
	}
}

// What a maximal body costs the reader: the largest body /mcp takes by
// default (4 MiB) as tool arguments of many keys (skipped as one value),
// and as a batch of MaxMembers-key params (walked key by key).
func BenchmarkReadLargeBody(b *testing.B) {
	var args strings.Builder
	args.WriteString(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"k":0`)
	for i := 0; args.Len() < 4<<20-32; i++ {
		fmt.Fprintf(&args, `,"k%d":0`, i)
	}
	args.WriteString("}}}")
	var batch strings.Builder
	batch.WriteString("[")
	for m := range 16 {
		if m > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t"`, m)
		for i := range MaxMembers - 1 {
			fmt.Fprintf(&batch, `,"k%d":0`, i)
		}
		batch.WriteString("}}")
	}
	batch.WriteString("]")
	for name, body := range map[string][]byte{"arguments-4MiB": []byte(args.String()), "batch-16x256-keys": []byte(batch.String())} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Read(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzReadAgreesWithDecoder holds the one-pass reader to the reference
// built on encoding/json's Decoder (reference_test.go): on every body, both
// read the same messages (kinds, methods, ids, tools, argument ranges,
// params sizes, _meta), or both refuse it, in the same class (parse error,
// invalid request, and the bound that refused it). One difference is
// allowed: params that are not an object, nested beyond encoding/json's
// depth, which the reference walked token by token (the SDK refuses those
// anyway).
func FuzzReadAgreesWithDecoder(f *testing.F) {
	for _, b := range []string{
		initBody, `[` + initBody + `]`, call("1", "a"), call(`"x\u0041"`, "b\u00e9"),
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},` + initBody + `]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments" : {"x": [1, "]"]},"_meta":{"traceparent":"00-a-b-01","io.modelcontextprotocol/protocolVersion":"2026-07-28","tracestate":5}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,{"a":[]}]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":"p"}`,
		`{"jsonrpc":"2.0","method":null,"id":-0.5e+3}`, `{"jsonrpc":"2\u002e0","method":"m\/x"}`,
		`[1x]`, `[1,]`, `[}`, `[{"jsonrpc":"2.0","id":1,"method":"ping"} {"jsonrpc":"2.0","id":2,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1,"method":"ping",}`, `{"a" 1}`, `{"a":tru}`, `{"a":01}`, `{"a":"\x01"}`, `{"a":"\q"}`, `{"a":"\u12G4"}`,
		"{\"\xff\":1,\"\xfe\":2,\"jsonrpc\":\"2.0\",\"method\":\"x\"}",
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"k":1,"k":2}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}}`,
		"[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, 3) + "x",
		``, ` `, `{`, `[`, `"x`, `nul`, `-`, `1.`, `1e`, "\ufeff{}", `{"jsonrpc":"2.0","id":1,"method":"ping"}  x`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, max := range []int{0, 2} {
			got, gerr := ReadAtMost(body, max)
			want, werr := decoderReadAtMost(body, max)
			if gerr != nil || werr != nil {
				var g, w *Error
				if !errors.As(gerr, &g) || !errors.As(werr, &w) {
					if werr == nil && g != nil && strings.Contains(g.Msg, "exceeded max depth") {
						continue
					}
					t.Fatalf("ReadAtMost(%q, %d): %v; reference: %v", body, max, gerr, werr)
				}
				if g.Code != w.Code || g.Limit != w.Limit || g.Max != w.Max {
					t.Fatalf("ReadAtMost(%q, %d) refuses it as %d %s (%s); reference as %d %s (%s)", body, max, g.Code, g.Limit, g.Msg, w.Code, w.Limit, w.Msg)
				}
				continue
			}
			if got.Batch != want.Batch || !slices.EqualFunc(got.Messages, want.Messages, func(x, y Message) bool {
				return x.Kind == y.Kind && x.Method == y.Method && string(x.ID) == string(y.ID) && x.Tool == y.Tool &&
					x.ArgsStart == y.ArgsStart && x.ArgsEnd == y.ArgsEnd && x.ParamsBytes == y.ParamsBytes &&
					x.ProtocolVersion == y.ProtocolVersion && x.Traceparent == y.Traceparent && x.Tracestate == y.Tracestate
			}) {
				t.Fatalf("ReadAtMost(%q, %d) = %+v; reference %+v", body, max, got, want)
			}
		}
	})
}

// What a tools/call body costs the reader.
func BenchmarkReadToolCall(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},"_meta":{"progressToken":3}}}`)
	for b.Loop() {
		if _, err := Read(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSDKDecodeToolCall is the go-sdk's decoding of the same body, for
// comparison: jsonrpc.DecodeMessage is two of the six unmarshals its
// streamable handler and server run on a tools/call (readBatch's try as a
// batch, the message and its method, extractRequestMeta twice, the params),
// and each allocates (and zeroes) a 32 KiB read buffer (go-sdk v1.8.0's
// internal/json.Unmarshal reads through a segmentio/encoding Decoder).
// BENCHMARKS.md ("What upstream change would fix the SDK's share", "The
// decoder, measured") says what that costs a node; the B/op here shows at
// once whether an SDK upgrade has fixed it.
func BenchmarkSDKDecodeToolCall(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},"_meta":{"progressToken":3}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jsonrpc.DecodeMessage(body); err != nil {
			b.Fatal(err)
		}
	}
}

// Listen names only a body that is one subscriptions/listen request.
func TestListen(t *testing.T) {
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{}}`:   `9`,
		`{"jsonrpc":"2.0","id":"l-1","method":"subscriptions/listen"}`:           `"l-1"`,
		`{"jsonrpc":"2.0","method":"subscriptions/listen"}`:                      ``, // a notification
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x"}}`:   ``,
		`[{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{}}]`: ``, // a batch
		`{"jsonrpc":"2.0","id":9,"result":{}}`:                                   ``,
	} {
		b, err := Read([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := string(b.Listen()); got != want {
			t.Errorf("%s: Listen() = %q, want %q", body, got, want)
		}
	}
	if (*Body)(nil).Listen() != nil {
		t.Error("a nil body names a listen")
	}
}
