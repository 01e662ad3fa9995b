package transport

import (
	"bytes"
	"runtime"
	"testing"
)

// What the edge holds of one JSON answer is bounded by maxJSONAnswer
// (32 MiB) as documented, not a multiple of it: an event is held whole in
// pending, copied into data, copied again (Clone), and a batch's answers
// are joined and copied once more, so that one request near the bound
// holds about three times it at once (and twice it, the answers and the
// body, for as long as a client takes to read the body).
func TestJSONAnswerHoldsAboutItsBound(t *testing.T) {
	const size = maxJSONAnswer - 1<<20
	event := append([]byte("event: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"x\":\""), bytes.Repeat([]byte("a"), size)...)
	event = append(event, "\"}}\n\n"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var j jsonAnswer
	if err := j.write(event); err != nil { // one part: the actor flushes an event whole
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.Grow(size + 1024)
	runtime.ReadMemStats(&after)
	j.writeTo(&body, true)
	if len(j.answers) != 1 {
		t.Fatal("no answer")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("answer of %d MiB: %d MiB allocated", body.Len()>>20, alloc>>20)
	if alloc > 2*maxJSONAnswer {
		t.Errorf("an answer of %d MiB allocated %d MiB, over twice the %d MiB bound", body.Len()>>20, alloc>>20, maxJSONAnswer>>20)
	}
}
