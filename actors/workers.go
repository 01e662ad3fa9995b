package actors

import "time"

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
