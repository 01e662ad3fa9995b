package state

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMemoryEventsKept runs b.N request streams (an open journalling
// its request, the priming event, the answer, the journal entry's removal)
// through a memory store with the default bounds, round robin over 32
// sessions, as a single node serves tools/call. Besides the time per
// stream, it reports what the store keeps once full, for the garbage
// collector: heap objects and bytes per kept event, and how long a full
// collection takes with the store live (minus one without it), which every
// cycle of the node's collector pays again.
//
//	go test ./state -run '^$' -bench MemoryEventsKept -benchtime 200000x
func BenchmarkMemoryEventsKept(b *testing.B) {
	const sessions = 32
	ctx := context.Background()
	empty := gcTime()
	before := heapNow()
	m := NewMemoryEvents(nil)
	ids := make([]json.RawMessage, b.N)
	names := make([]string, b.N)
	for i := range b.N {
		ids[i] = json.RawMessage(strconv.Itoa(i))
		names[i] = fmt.Sprintf("%016x", i*7919)
	}
	priming := []byte{}
	b.ResetTimer()
	for i := range b.N {
		session := "session" + strconv.Itoa(i%sessions)
		answer := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}]}}`, i)
		if err := m.OpenFor(ctx, session, names[i], "user", 0, ids[i:i+1]); err != nil {
			b.Fatal(err)
		}
		if err := m.AppendAt(ctx, session, names[i], 0, "", priming); err != nil {
			b.Fatal(err)
		}
		if err := m.AppendAt(ctx, session, names[i], 0, "", answer); err != nil {
			b.Fatal(err)
		}
		if err := m.FinishRequests(ctx, session, names[i], 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	clear(ids)
	clear(names)
	full := gcTime()
	after := heapNow()
	var streams, events int
	for _, s := range m.sessions {
		streams += len(s.streams)
		for _, st := range s.streams {
			events += st.kept
		}
	}
	b.ReportMetric(float64(streams), "kept-streams")
	b.ReportMetric(float64(after.objects-before.objects)/float64(events), "heap-objects/kept-event")
	b.ReportMetric(float64(after.bytes-before.bytes)/float64(events), "heap-B/kept-event")
	b.ReportMetric(float64(full-empty)/float64(time.Microsecond), "gc-µs")
	runtime.KeepAlive(m)
}

type heapFigures struct{ objects, bytes uint64 }

func heapNow() heapFigures {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return heapFigures{ms.HeapObjects, ms.HeapAlloc}
}

// gcTime is the median of five full collections.
func gcTime() time.Duration {
	var d []time.Duration
	for range 5 {
		start := time.Now()
		runtime.GC()
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	return d[len(d)/2]
}
