package actors

import "testing"

// The lifecycle's table says what the actor's code relies on: nothing
// returns to New or leaves Ended; only an activation leads to Serving, or a
// move given up (follow.go: Flushing back to Serving), only a drain to
// Flushing; every state but Ended can be ended by an operator and
// fenced unless ended; an ending state never serves again.
func TestLifecycleTransitions(t *testing.T) {
	all := []life{lifeNew, lifeActivating, lifeServing, lifeDraining, lifeFlushing, lifeEnded, lifeFenced, lifeStopping}
	if len(all) != len(lifeNames) || len(transitions) != len(all) {
		t.Fatalf("%d states, %d names, %d rows in the table", len(all), len(lifeNames), len(transitions))
	}
	for _, from := range all {
		for _, to := range all {
			got := from.can(to)
			var want bool
			switch to {
			case lifeNew:
				want = false
			case lifeActivating:
				want = from == lifeNew
			case lifeServing:
				want = from == lifeActivating || from == lifeFlushing
			case lifeDraining:
				want = from == lifeNew || from == lifeActivating || from == lifeServing
			case lifeFlushing:
				want = from == lifeDraining
			case lifeEnded:
				want = from != lifeEnded
			case lifeFenced:
				want = from != lifeEnded && from != lifeFenced
			case lifeStopping:
				want = !from.ending()
			}
			if got != want {
				t.Errorf("%s → %s allowed: %v, want %v", from, to, got, want)
			}
		}
	}
	a := &core{life: lifeServing}
	if !a.to(lifeDraining) || a.life != lifeDraining || a.to(lifeServing) || a.life != lifeDraining {
		t.Errorf("to: a refused move changed the state, or an allowed one did not (now %s)", a.life)
	}
}
