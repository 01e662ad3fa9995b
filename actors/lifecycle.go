package actors

// life is where an actor is in its lifecycle. It is the one record of it:
// what the actor answers a request, and what it does when a message
// arrives, follow from it (core.refusal, core.settle, the Receive methods).
//
//	          ┌──────────────► Ending states ◄─────────────┐
//	New ──► Activating ──► Serving ──► Draining ──► Flushing
//	 │           │                        ▲
//	 └───────────┴────────────────────────┘
//
// A principal actor starts Serving; a session actor starts New and takes an
// epoch for its session (activation.go) before it serves. The ending states
// (Ended, Fenced, Stopping) lead to the actor's stop; see transitions for
// the moves allowed.
type life int

const (
	// lifeNew: a session actor before its first request.
	lifeNew life = iota
	// lifeActivating: the session's epoch and snapshot are being taken;
	// requests wait in the actor (activation.go).
	lifeActivating
	// lifeServing: requests are served.
	lifeServing
	// lifeDraining: the node is leaving: no new request is taken, streams
	// were ended with a retry hint, requests in flight finish (drain.go).
	lifeDraining
	// lifeFlushing: drained: what the actor keeps is written, then it stops.
	lifeFlushing
	// lifeEnded: the session ended (or never began) here, or an operator
	// ended it: requests are answered "not found" until the actor stops.
	lifeEnded
	// lifeFenced: a newer activation owns the session: requests are
	// answered "retry" (they reach the new one) and the actor stops.
	lifeFenced
	// lifeStopping: the actor stops for another reason (idle, its store is
	// unreachable, the cluster moved it, drained): requests are answered
	// "retry".
	lifeStopping
)

var lifeNames = [...]string{"new", "activating", "serving", "draining", "flushing", "ended", "fenced", "stopping"}

func (l life) String() string { return lifeNames[l] }

// transitions are the moves allowed, from each state. Ended is final; the
// other ending states may still become Ended (an operator ends a session
// whose actor is stopping: what is left of it answers "not found") and
// Stopping may become Fenced (its store says a newer activation owns it).
var transitions = map[life][]life{
	lifeNew:        {lifeActivating, lifeDraining, lifeEnded, lifeFenced, lifeStopping},
	lifeActivating: {lifeServing, lifeDraining, lifeEnded, lifeFenced, lifeStopping},
	lifeServing:    {lifeDraining, lifeEnded, lifeFenced, lifeStopping},
	lifeDraining:   {lifeFlushing, lifeEnded, lifeFenced, lifeStopping},
	lifeFlushing:   {lifeServing, lifeEnded, lifeFenced, lifeStopping}, // serving: a move given up (follow.go)
	lifeFenced:     {lifeEnded},
	lifeStopping:   {lifeEnded, lifeFenced},
	lifeEnded:      nil,
}

// can says whether the move from l to next is allowed.
func (l life) can(next life) bool {
	for _, to := range transitions[l] {
		if to == next {
			return true
		}
	}
	return false
}

// ending says the actor is on its way to stopping.
func (l life) ending() bool { return l >= lifeEnded }

// to moves the actor to next if the move is allowed, and says whether it
// moved. A move the table does not allow is no error: it is how a later
// event loses to an earlier one (a drain asked of an actor already ending,
// a fencing of a session already ended).
func (c *core) to(next life) bool {
	if !c.life.can(next) {
		return false
	}
	c.life = next
	return true
}
