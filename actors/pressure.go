package actors

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	pmetrics "github.com/pingmcp/pingmcp/metrics"
)

// Pressure passivates idle actors when what the node's runtime retains
// (its live heap, and beside it what the memory limit also counts and no
// collection frees: goroutine stacks, the runtime's own metadata) nears its
// soft memory limit (GOMEMLIMIT, or 90 % of the container's memory limit,
// which pingmcp sets at start: cmd/pingmcp, setMemoryLimit), so that a node at its limit keeps serving rather than
// spending itself on garbage collection until it is killed for memory. An
// actor with a request in flight or a stream open is never chosen, nor one
// whose snapshot is not written yet (it is all there is of its session);
// the least recently active go first. A passivated session goes on from
// its snapshot at its next request, on whichever node.
type Pressure struct {
	Local  *Local
	System *actor.ActorSystem
	// Above is the fraction of the memory limit above which what the
	// runtime retains makes actors passivate (0 < Above ≤ 1).
	Above  float64
	Logger *slog.Logger
	// Limit and Used read the memory limit and what the runtime retains
	// (bytes); nil: the runtime's (debug.SetMemoryLimit, Retained).
	Limit, Used func() uint64
}

// pressureShare is the fraction of the idle actors one check passivates.
const pressureShare = 0.1

// Run checks every interval until ctx ends.
func (p *Pressure) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Check()
		}
	}
}

// Check passivates a tenth of the idle actors (rounded up), least
// recently active first, when what the runtime retains is above Above of
// the limit, and returns how many it asked to passivate. With no limit set
// it does nothing.
func (p *Pressure) Check() int {
	limitOf, usedOf := p.Limit, p.Used
	if limitOf == nil {
		limitOf = memoryLimit
	}
	if usedOf == nil {
		usedOf = Retained
	}
	limit := limitOf()
	if limit == 0 || limit >= math.MaxInt64 {
		return 0 // no limit: nothing to weigh
	}
	used := usedOf()
	if float64(used) < p.Above*float64(limit) {
		return 0
	}
	idle := p.Local.idle()
	n := int(math.Ceil(float64(len(idle)) * pressureShare))
	for _, pid := range idle[:n] {
		p.System.Root.Send(pid, passivateNow{})
	}
	if n > 0 {
		pmetrics.Passivated.Add(float64(n))
		p.Logger.Warn("memory pressure: passivating idle actors", "retained", used, "limit", limit, "passivating", n, "idle", len(idle))
	}
	return n
}

// passivateNow asks an actor to passivate if it is idle (core.idle).
type passivateNow struct{}

func memoryLimit() uint64 { return uint64(debug.SetMemoryLimit(-1)) }

// Retained is what the runtime would still hold after a full collection:
// the live heap, plus what the memory limit counts beside the heap's
// objects and free space (goroutine stacks, the runtime's metadata and
// other allocations), which no collection gives back. A node's goroutine
// stacks grow with its actors (a few KB each): counting the live heap
// alone, a node could hold its heap under the threshold and still be past
// its limit.
func Retained() uint64 {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(s)
	var v [6]uint64
	for i, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0
		}
		v[i] = x.Value.Uint64()
	}
	live, total := v[0], v[1]
	heap := v[2] + v[3] + v[4] + v[5]
	if heap > total {
		return live
	}
	return live + total - heap
}

// idle is the live actors with no request in flight and no stream open,
// least recently active first.
func (l *Local) idle() []*actor.PID {
	l.mu.Lock()
	var out []*liveActor
	for _, la := range l.pids {
		if la.streams.Load() == 0 && la.inFlight.Load() == 0 {
			out = append(out, la)
		}
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b *liveActor) int { return cmp.Compare(a.active.Load(), b.active.Load()) })
	pids := make([]*actor.PID, len(out))
	for i, la := range out {
		pids[i] = la.pid
	}
	return pids
}
