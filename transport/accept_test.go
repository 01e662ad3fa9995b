package transport

import (
	"errors"
	"strings"
	"testing"
)

func TestAccepts(t *testing.T) {
	for _, c := range []struct {
		values       []string
		json, stream bool
	}{
		{nil, true, true},
		{[]string{"application/json"}, true, false},
		{[]string{"Application/JSON; charset=utf-8"}, true, false},
		{[]string{"text/event-stream"}, false, true},
		{[]string{"application/json", "text/event-stream"}, true, true},
		{[]string{"application/json, text/event-stream"}, true, true},
		{[]string{"*/*"}, true, true},
		{[]string{"text/*"}, false, true},
		{[]string{"text/html"}, false, false},
		{[]string{""}, false, false},
	} {
		if j, s := accepts(c.values); j != c.json || s != c.stream {
			t.Errorf("accepts(%q) = %v, %v; want %v, %v", c.values, j, s, c.json, c.stream)
		}
	}
}

// jsonAnswer keeps the responses of an event stream however its bytes
// are cut into parts, and nothing else of it.
func TestJSONAnswer(t *testing.T) {
	stream := "event: prime\nid: s_0\ndata: \n\n" +
		"event: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		": keep-alive\n\n" +
		"event: message\nid: s_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"elicitation/create\",\"params\":{}}\n\n" +
		"event: message\r\nid: s_3\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{}}\r\n\n" +
		"event: message\nid: s_4\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"b\",\"error\":{\"code\":-32601,\"message\":\"x\"}}\n\n"
	for cut := 1; cut < len(stream); cut += 7 {
		var j jsonAnswer
		for i := 0; i < len(stream); i += cut {
			if err := j.write([]byte(stream[i:min(i+cut, len(stream))])); err != nil {
				t.Fatal(err)
			}
		}
		var body strings.Builder
		j.writeTo(&body, true)
		want := "[{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{}},{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"error\":{\"code\":-32601,\"message\":\"x\"}}]"
		if body.String() != want {
			t.Fatalf("parts of %d bytes: %q, want %q", cut, body.String(), want)
		}
		var one strings.Builder
		if j.writeTo(&one, false); !strings.HasPrefix(one.String(), "{\"jsonrpc\":\"2.0\",\"id\":1,") {
			t.Fatalf("not a batch: %q", one.String())
		}
		if asks := j.takeAsks(); len(asks) != 1 || string(asks[0]) != "9" || j.takeAsks() != nil {
			t.Fatalf("the server's requests: %q, want the elicitation's id, once", asks)
		}
	}
	var empty jsonAnswer
	empty.write([]byte("event: prime\nid: s_0\ndata: \n\n"))
	if len(empty.answers) != 0 {
		t.Error("a stream without a response has an answer")
	}
	var huge jsonAnswer
	if err := huge.write(make([]byte, maxJSONAnswer+1)); !errors.Is(err, errJSONAnswerTooLarge) {
		t.Errorf("an answer over the bound: %v", err)
	}
}

// A JSON answer that is "session not found" (its session ended under the
// call) is told apart, whatever else it holds; other answers are not.
func TestSessionGoneAnswer(t *testing.T) {
	for answer, want := range map[string]bool{
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"the session ended while the request ran"}}`: true,
		`{"jsonrpc":"2.0","id":7,"error":{"code":0,"message":"context canceled"}}`:                             false,
		`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"\"error\":{\"code\":-32001}"}]}}`: false,
		`{"jsonrpc":"2.0","id":7,"result":{}}`:                                                                 false,
	} {
		if got := sessionGone([]byte(answer)); got != want {
			t.Errorf("sessionGone(%s) = %v, want %v", answer, got, want)
		}
	}
}
