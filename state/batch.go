package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the scripts of writes made at once together, in one
// pipeline (group commit; on a Redis Cluster, one per master the batch
// touches): a write finding fewer than maxBatches pipelines in flight goes
// at once, alone or with those that waited, on its caller's goroutine;
// others wait for a pipeline to return and go together in the next. A write
// behind an answer takes only the first pipeline (Behind), and one that may
// linger waits a little for company when none is in flight (Linger). A
// lone write a request waits for thus waits for nothing more than its
// round trip, and many at once cost Redis and the node one read and one
// write each per batch instead of per script. Each script still runs alone in Redis, with its own answer; a
// batch is not a transaction.
type batcher struct {
	client redis.UniversalClient
	// linger is how long a write behind an answer (Linger) waits for
	// company when no pipeline is in flight (behindLinger; zero: not at
	// all).
	linger time.Duration
	mu     sync.Mutex
	queue  []*batched
	busy   int         // pipelines in flight
	timer  *time.Timer // armed while writes behind linger (lingered)
	armed  uint64      // counts the timers armed: a stale one does nothing
	// led is set when a write a request waits for takes a pipeline on
	// its caller's goroutine (not when it waited and went with a batch of
	// next's, under load, when pipelines are rarely idle anyway), and
	// cleared when writes start to linger: they linger once per such
	// write, for the next, so that a burst of them (a session's answers to
	// requests sent at once, written one after another) waits once, not
	// once each.
	led bool
}

// behindLinger is how long a write behind an answer (Linger), finding no
// pipeline in flight, waits for another write to go with (Nagle's delay, or a
// commit delay): a client that calls again at once (a script, an agent
// running tools in a row) has its previous answer's write taken along by
// its next request's open, one round trip a call instead of two; a lone
// write goes after it. The answer was delivered already, so no one waits;
// what the delay costs is how long a delivered answer goes unstored (a
// client resuming after a crash in that time gets the journal's error for
// it instead).
const behindLinger = 2 * time.Millisecond

// maxBatches is how many pipelines of one batcher may be in flight at once:
// two, so that a write behind a request's answer does not hold up the next
// request's open, and those that come meanwhile wait and go together. A
// write marked Behind takes only the first.
const maxBatches = 2

// behindKey marks a context whose writes are behind an answer (Behind).
type behindKey struct{}

// Behind marks the writes made under ctx as behind an answer already given
// (an answer's event, the removal of its request's journal entry): no one
// waits for them, so they take a pipeline only when none is in flight, and
// otherwise go with the next batch. The second pipeline stays for the
// writes a request waits for (its stream's open), and under load the
// writes behind answers go many to a round trip.
func Behind(ctx context.Context) context.Context {
	return context.WithValue(ctx, behindKey{}, true)
}

// lingerKey marks a context whose writes may linger (Linger).
type lingerKey struct{}

// Linger marks the writes made under ctx as behind an answer (Behind) and
// free to wait for company: finding no pipeline in flight, such a write
// waits up to behindLinger for a write a request waits for, and goes with
// it; it lingers only once per such write (batcher.led), else it goes at
// once. For an answer's write that nothing else waits behind; not for a
// queue of writes being caught up, which would then go one per linger.
func Linger(ctx context.Context) context.Context {
	return context.WithValue(Behind(ctx), lingerKey{}, true)
}

// batched is one write in a batcher.
type batched struct {
	rep  Replication
	s    *redis.Script
	keys []string
	args []any
	cmd  *redis.Cmd
	done chan struct{} // closed once cmd has its answer; nil for the leader
}

// run runs s as writer.run does, batched with the writes made meanwhile;
// rep is its store's (the same for every write of a batcher).
func (b *batcher) run(ctx context.Context, rep Replication, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	w := &batched{rep: rep, s: s, keys: keys, args: args}
	behind := ctx.Value(behindKey{}) != nil
	linger := ctx.Value(lingerKey{}) != nil
	limit := maxBatches
	if behind {
		limit = 1
	}
	b.mu.Lock()
	if b.busy < limit && !(linger && b.lingers()) {
		b.busy++
		b.led = b.led || !behind
		batch := b.takeLocked(w)
		b.mu.Unlock()
		b.exec(ctx, batch)
		b.next()
		return w.cmd
	}
	w.done = make(chan struct{})
	b.queue = append(b.queue, w)
	if linger && b.busy == 0 && b.timer == nil {
		b.led = false
		b.armed++
		armed := b.armed
		b.timer = time.AfterFunc(b.linger, func() { b.lingered(armed) })
	}
	b.mu.Unlock()
	if behind {
		// It goes with the next write a request waits for, with the batch
		// after the pipeline in flight (which may wait up to the
		// replication's timeout), or alone once it lingered: that batch
		// runs under the client's own timeouts, not ctx's, and no one
		// waits for this write; giving up on it here would only count a
		// slow pipeline as a store failure.
		<-w.done
		return w.cmd
	}
	select {
	case <-w.done:
		return w.cmd
	case <-ctx.Done():
		// It may still be run: a write's caller tries it again with its
		// WriteID, which a script takes once.
		return failed(ctx, ctx.Err())
	}
}

// lingers says whether a write that may linger (Linger), finding no
// pipeline in flight, waits for company (behindLinger) rather than going
// alone: once per write a request waited for (led), or while others
// linger. Requires b.mu.
func (b *batcher) lingers() bool { return b.linger > 0 && (b.led || b.timer != nil) }

// takeLocked empties the queue into a batch, w last if not nil, and
// disarms the linger's timer: whatever lingered goes now. Requires b.mu.
func (b *batcher) takeLocked(w *batched) []*batched {
	batch := b.queue
	if w != nil {
		batch = append(batch, w)
	}
	b.queue = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return batch
}

// lingered sends the writes behind answers that waited behindLinger for a
// write to go with and found none; armed names the timer that fired, which
// another write may have disarmed meanwhile (takeLocked). A timer is armed
// only with writes queued and no pipeline in flight, and whatever takes a
// pipeline first disarms it, so one still armed finds both so.
func (b *batcher) lingered(armed uint64) {
	b.mu.Lock()
	if b.timer == nil || armed != b.armed {
		b.mu.Unlock()
		return
	}
	b.busy++
	batch := b.takeLocked(nil)
	b.mu.Unlock()
	b.exec(context.Background(), batch)
	b.next()
}

// next sends what waited while a pipeline was in flight, on a goroutine of
// its own, or frees the pipeline's turn.
func (b *batcher) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.busy--
		b.mu.Unlock()
		return
	}
	batch := b.takeLocked(nil)
	b.mu.Unlock()
	go func() {
		b.exec(context.Background(), batch)
		b.next()
	}()
}

// exec runs batch: a lone write without replication as writer.run's
// caller would (Script.Run); otherwise in one pipeline, or on a cluster
// with replication one per master (WAIT counts the replicas of the
// connection's master), each script by its digest, followed by WAIT when
// the writes are to be replicated (rep, as writer.run). On a cluster, a
// write a node refused because its slot moved (a failover) makes the
// client reload the cluster's layout and is tried once more.
func (b *batcher) exec(ctx context.Context, batch []*batched) {
	defer func() {
		for _, w := range batch {
			if w.done != nil {
				close(w.done)
			}
		}
	}()
	rep := batch[0].rep
	if len(batch) == 1 && rep.Replicas <= 0 {
		w := batch[0]
		w.cmd = w.s.Run(ctx, b.client, w.keys, w.args...)
		return
	}
	if len(batch) > 1 {
		// The batch is not cut short by one caller's context: the others'
		// writes are in it. The client's own timeouts bound it.
		ctx = context.WithoutCancel(ctx)
	}
	cc, cluster := b.client.(*redis.ClusterClient)
	if !cluster || rep.Replicas <= 0 {
		// A cluster's pipeline goes to each write's master itself.
		pipelined(ctx, b.client, batch, rep)
		return
	}
	pending := batch
	for attempt := 0; len(pending) > 0; attempt++ {
		byMaster := map[*redis.Client][]*batched{}
		for _, w := range pending {
			m, err := cc.MasterForKey(ctx, w.keys[0])
			if err != nil {
				w.cmd = failed(ctx, err)
				continue
			}
			byMaster[m] = append(byMaster[m], w)
		}
		var wg sync.WaitGroup
		for m, ws := range byMaster {
			wg.Go(func() { pipelined(ctx, m, ws, rep) })
		}
		wg.Wait()
		var again []*batched
		reload := false
		for _, w := range pending {
			if err := w.cmd.Err(); err != nil && !errors.Is(err, ErrNotReplicated) {
				reload = true
				if attempt == 0 && moved(err) {
					again = append(again, w)
				}
			}
		}
		if reload {
			cc.ReloadState(ctx)
		}
		pending = again
	}
}

// pipelined runs ws in one pipeline of client, each script by its digest,
// then WAIT if rep asks for replicas: a write is confirmed only if its
// script ran and the replicas took the whole pipeline. Scripts Redis does
// not know yet (NOSCRIPT, after a restart or a failover) are sent again
// whole, together.
func pipelined(ctx context.Context, client redis.UniversalClient, ws []*batched, rep Replication) {
	pending, loaded := ws, true
	for len(pending) > 0 {
		pipe := client.Pipeline()
		for _, w := range pending {
			if loaded {
				w.cmd = w.s.EvalSha(ctx, pipe, w.keys, w.args...)
			} else {
				w.cmd = w.s.Eval(ctx, pipe, w.keys, w.args...)
			}
		}
		var wait *redis.Cmd
		if rep.Replicas > 0 {
			wait = pipe.Do(ctx, "wait", rep.Replicas, rep.Timeout.Milliseconds())
		}
		_, _ = pipe.Exec(ctx) // each command has its own error
		var unknown []*batched
		for _, w := range pending {
			if loaded && redis.HasErrorPrefix(w.cmd.Err(), "NOSCRIPT") {
				unknown = append(unknown, w)
				continue
			}
			if wait != nil && w.cmd.Err() == nil {
				switch acked, err := wait.Int64(); {
				case err != nil:
					w.cmd = failed(ctx, err)
				case acked < int64(rep.Replicas):
					w.cmd = failed(ctx, fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, acked, rep.Replicas, rep.Timeout))
				}
			}
		}
		pending, loaded = unknown, false
	}
}
