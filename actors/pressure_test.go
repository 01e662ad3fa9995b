package actors_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/state"
)

// Near its memory limit a node passivates a tenth of its idle actors, the
// least recently active first, and nothing below it or without a limit;
// a passivated session goes on from its snapshot.
func TestPressurePassivatesTheIdlest(t *testing.T) {
	local := actors.NewLocal()
	system, props := actors.SessionsForTest(t, actors.Config{Local: local, Stores: state.MemoryStores(time.Hour),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	n := &sessionNode{system: system, props: props}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An actor counts its request done (and the session active) a moment
	// after its answer left: each session's requests are awaited before
	// the next session's, so that their order of activity is the test's.
	settle := func(ids []string) {
		t.Helper()
		for settled := false; !settled; {
			settled = true
			for _, st := range local.Live(ids) {
				settled = settled && st.InFlight == 0 && st.Streams == 0
			}
			select {
			case <-ctx.Done():
				t.Fatal("the sessions' requests never all ended")
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	var ids []string
	var pids []*actor.PID
	for range 20 {
		id, pid := n.open(t)
		ids, pids = append(ids, id), append(pids, pid)
		settle(ids[len(ids)-1:])
	}
	// The first ten are active again: the other ten are the idlest,
	// the earliest opened first.
	for i, id := range ids[:10] {
		n.post(t, pids[i], id, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 200)
		settle(ids[i : i+1])
	}
	var heap atomic.Uint64
	limit := uint64(1000)
	p := &actors.Pressure{Local: local, System: system, Above: 0.9, Logger: slog.New(slog.DiscardHandler),
		Limit: func() uint64 { return limit }, Used: heap.Load}
	heap.Store(899)
	if got := p.Check(); got != 0 {
		t.Fatalf("below the threshold, %d actors were asked to passivate", got)
	}
	heap.Store(950)
	if got := p.Check(); got != 2 {
		t.Fatalf("above the threshold, %d of 20 idle actors were asked to passivate, want a tenth", got)
	}
	for local.Len() != 18 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d actors live, want 18", local.Len())
		case <-time.After(10 * time.Millisecond):
		}
	}
	live := local.Live(ids)
	for i, id := range ids {
		if _, ok := live[id]; ok == (i == 10 || i == 11) {
			t.Errorf("session %d live: %v; want the two idlest (10 and 11) passivated, every other live", i, ok)
		}
	}
	// A passivated session goes on: its next request activates it again.
	n.post(t, n.spawn(ids[10]), ids[10], `{"jsonrpc":"2.0","id":2,"method":"ping"}`, 200)

	limit = math.MaxInt64 // no GOMEMLIMIT
	if got := p.Check(); got != 0 {
		t.Errorf("without a memory limit, %d actors were asked to passivate", got)
	}
}

// TestRetainedCountsStacks: what Pressure weighs against the memory limit
// counts goroutine stacks, which the limit counts and no collection frees,
// and which the live heap leaves out (a node's actors' goroutines hold
// megabytes of them).
func TestRetainedCountsStacks(t *testing.T) {
	live := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	live0, retained0 := live(), actors.Retained()
	if retained0 < live0 {
		t.Fatalf("retained %d bytes, below the live heap's %d", retained0, live0)
	}
	const goroutines, depth = 200, 250 // each about 250 KiB of stack, so 256 KiB or more
	release := make(chan struct{})
	var grown sync.WaitGroup
	var deep func(n int) byte
	deep = func(n int) byte {
		var pad [1024]byte
		pad[n%len(pad)] = byte(n)
		if n == 0 {
			grown.Done()
			<-release
			return pad[0]
		}
		return deep(n-1) + pad[n%len(pad)]
	}
	grown.Add(goroutines)
	var done sync.WaitGroup
	for range goroutines {
		done.Go(func() { deep(depth) })
	}
	grown.Wait()
	runtime.GC()
	live1, retained1 := live(), actors.Retained()
	close(release)
	done.Wait()
	const stacks = goroutines * depth << 10
	// Other memory comes and goes meanwhile (the collector's, the
	// scavenger's): three quarters of the stacks is the bar.
	if d := int64(retained1) - int64(retained0); d < stacks*3/4 {
		t.Errorf("retained grew by %d bytes with %d bytes of stacks held", d, stacks)
	}
	if d := int64(live1) - int64(live0); d > stacks/4 {
		t.Errorf("the live heap grew by %d bytes: the stacks should not be in it (the test measures nothing)", d)
	}
}
