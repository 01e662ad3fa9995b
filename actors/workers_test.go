package actors

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// goroutineID is the id runtime.Stack prints for the calling goroutine: a
// new goroutine gets a new one, a worker keeps its own.
func goroutineID() string {
	var b [64]byte
	f := bytes.Fields(b[:runtime.Stack(b[:], false)])
	return string(f[1])
}

// TestMailboxTurnsOnWorkers: an actor of this package's props runs its
// mailbox turns on workers (its own here, not the process's, which other
// tests' actors use meanwhile), so that one turn after another
// reuses a goroutine (and its grown stack) instead of starting one each
// time, as protoactor's default dispatcher does (the control).
func TestMailboxTurnsOnWorkers(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	ids := make(chan string)
	producer := func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			if c.Message() == "turn" {
				ids <- goroutineID()
			}
		})
	}
	// goroutines counts those that ran 500 turns, one after another.
	goroutines := func(p *actor.Props) int {
		pid := system.Root.Spawn(p)
		defer system.Root.Stop(pid)
		seen := map[string]bool{}
		for range 500 {
			system.Root.Send(pid, "turn")
			seen[<-ids] = true
		}
		return len(seen)
	}
	ws := &workers{tasks: make(chan func()), maxIdle: maxIdleWorkers, idleFor: workerIdle}
	if n := goroutines(propsOn(ws, producer)); n > 10 {
		t.Errorf("500 turns ran on %d goroutines, want a few workers", n)
	}
	if n := goroutines(actor.PropsFromProducer(producer)); n < 250 {
		t.Errorf("control: protoactor's default dispatcher ran 500 turns on %d goroutines; the test cannot tell", n)
	}
}

// TestWorkersBoundIdle: a burst of tasks starts a worker for each, and once
// they are done only maxIdle stay waiting; the rest end at once rather than
// keeping their stacks for workerIdle.
func TestWorkersBoundIdle(t *testing.T) {
	const burst, maxIdle = 100, 8
	ended := make(chan struct{}, burst)
	ws := &workers{tasks: make(chan func()), maxIdle: maxIdle, idleFor: time.Hour, ended: func() { ended <- struct{}{} }}
	started, release := make(chan struct{}), make(chan struct{})
	for range burst {
		ws.run(func() {
			started <- struct{}{}
			<-release
		})
	}
	for range burst {
		<-started
	}
	if n := ws.live.Load(); n != burst {
		t.Fatalf("%d workers for %d tasks running at once", n, burst)
	}
	close(release)
	timeout := time.After(10 * time.Second)
	for i := range burst - maxIdle {
		select {
		case <-ended:
		case <-timeout:
			t.Fatalf("after the burst only %d workers of %d ended; want all but %d", i, burst, maxIdle)
		}
	}
	if live, idle := ws.live.Load(), ws.idle.Load(); live != maxIdle || idle != maxIdle {
		t.Fatalf("after the burst: %d workers, %d idle; want %d waiting", live, idle, maxIdle)
	}
	select {
	case <-ended:
		t.Fatal("a waiting worker ended before its idle time")
	default:
	}
}
