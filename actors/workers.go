package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// requestWorkers run the forwarded requests of every actor in the process.
// A request never waits for a worker: it takes one that is idle or starts a
// new one, so a request that hangs (an SSE stream) holds only its own. What
// reuse saves is the stack: a new goroutine grows its stack by copying, at
// every request, through the SDK's deep call chain; a worker keeps it grown
// (until a garbage collection shrinks it while idle).
var requestWorkers = &workers{tasks: make(chan func())}

// workerIdle is how long an idle worker waits for a request before it ends.
const workerIdle = 10 * time.Second

type workers struct{ tasks chan func() }

// run runs f on an idle worker if there is one, else on a new goroutine.
func (ws *workers) run(f func()) {
	select {
	case ws.tasks <- f:
	default:
		go ws.work(f)
	}
}

func (ws *workers) work(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // nothing of the last request stays reachable while idle
		idle.Reset(workerIdle)
		select {
		case f = <-ws.tasks:
		case <-idle.C:
			return
		}
	}
}

// props are the props of an actor kind of this package: its mailbox turns
// run on the request workers (mailboxDispatcher).
func props(produce actor.Producer) *actor.Props {
	return actor.PropsFromProducer(produce, actor.WithDispatcher(mailboxDispatcher{}))
}

// mailboxDispatcher runs the actors' mailbox turns on the request workers.
// protoactor's default dispatcher starts a goroutine for every turn, whose
// stack then grows by copying, at every turn, through a request's reading
// (rpcbody) and the actor's bookkeeping: about a tenth of a busy node's CPU
// with the requests' own growth. A turn never waits on a request (DESIGN:
// requests run on goroutines of their own), so a worker it takes is back
// as soon as the mailbox is empty.
type mailboxDispatcher struct{}

func (mailboxDispatcher) Schedule(fn func()) { requestWorkers.run(fn) }

// Throughput is protoactor's default: messages a turn handles before it
// yields the processor.
func (mailboxDispatcher) Throughput() int { return 300 }
