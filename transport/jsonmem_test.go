package transport

import (
	"bytes"
	"runtime"
	"testing"
)

// What the edge holds of one JSON answer is about the answer, within
// maxJSONAnswer (32 MiB) as documented, not a multiple of it: the event is
// held once, in pending, and the answer is a slice of it, written to the
// client piece by piece (found by a review: the event was copied twice
// more, and a batch's answers joined into a fourth copy).
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
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*size/2 {
		t.Errorf("reading an answer of %d MiB allocated %d MiB, over one and a half times it", size>>20, alloc>>20)
	}
	runtime.GC()
	runtime.ReadMemStats(&after) // what j holds, live
	var n countingWriter
	j.writeTo(&n, true)
	if len(j.answers) != 1 || int(n) < size {
		t.Fatalf("the answer: %d answers, %d bytes", len(j.answers), n)
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("an answer of %d MiB: %d MiB held", n>>20, held>>20)
	if held > 3*size/2 {
		t.Errorf("an answer of %d MiB holds %d MiB, over one and a half times it", n>>20, held>>20)
	}
	runtime.KeepAlive(event)
	runtime.KeepAlive(&j)
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
