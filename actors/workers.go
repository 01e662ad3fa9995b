package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// requestWorkers run the forwarded requests of every actor in the process,
// and the actors' mailbox turns (mailboxDispatcher). A task never waits for
// a worker: it takes one that is idle or starts a new one, so a request that
// hangs (an SSE stream) holds only its own. What reuse saves is the stack: a
// new goroutine grows its stack by copying, at every task, through the SDK's
// deep call chain; a worker keeps it grown (until a garbage collection
// shrinks it while idle).
var requestWorkers = &workers{tasks: make(chan func()), maxIdle: maxIdleWorkers, idleFor: workerIdle}

// workerIdle is how long an idle worker waits for a task before it ends.
const workerIdle = 10 * time.Second

// maxIdleWorkers bounds the workers left waiting: a burst (memory pressure
// asks a tenth of a node's idle actors, thousands, to passivate at once; a
// reconnect storm) starts as many goroutines as it needs, and all but these
// end with their task instead of keeping their stacks for workerIdle.
const maxIdleWorkers = 256

type workers struct {
	tasks   chan func()
	maxIdle int32
	idleFor time.Duration // how long a worker waits for a task (workerIdle)
	idle    atomic.Int32  // workers waiting for a task
	live    atomic.Int32  // workers running or waiting
	ended   func()        // called as a worker ends (tests)
}

// run runs f on an idle worker if there is one, else on a new goroutine.
func (ws *workers) run(f func()) {
	select {
	case ws.tasks <- f:
	default:
		ws.live.Add(1)
		go ws.work(f)
	}
}

func (ws *workers) work(f func()) {
	defer func() {
		ws.live.Add(-1)
		if ws.ended != nil {
			ws.ended()
		}
	}()
	idle := time.NewTimer(ws.idleFor)
	defer idle.Stop()
	for {
		f()
		f = nil // nothing of the last task stays reachable while idle
		if ws.idle.Add(1) > ws.maxIdle {
			ws.idle.Add(-1)
			return
		}
		idle.Reset(ws.idleFor)
		select {
		case f = <-ws.tasks:
			ws.idle.Add(-1)
		case <-idle.C:
			ws.idle.Add(-1)
			return
		}
	}
}

// props are the props of an actor kind of this package: its mailbox turns
// run on the request workers (mailboxDispatcher).
func props(produce actor.Producer) *actor.Props { return propsOn(requestWorkers, produce) }

func propsOn(ws *workers, produce actor.Producer) *actor.Props {
	return actor.PropsFromProducer(produce, actor.WithDispatcher(mailboxDispatcher{ws}))
}

// mailboxDispatcher runs the actors' mailbox turns on workers.
// protoactor's default dispatcher starts a goroutine for every turn, whose
// stack then grows by copying, at every turn, through a request's reading
// (rpcbody) and the actor's bookkeeping: about a tenth of a busy node's CPU
// with the requests' own growth. A turn never waits on a request (DESIGN:
// requests run on goroutines of their own), so a worker it takes is back
// as soon as the mailbox is empty.
type mailboxDispatcher struct{ ws *workers }

func (d mailboxDispatcher) Schedule(fn func()) { d.ws.run(fn) }

// Throughput is protoactor's default: messages a turn handles before it
// yields the processor.
func (mailboxDispatcher) Throughput() int { return 300 }
