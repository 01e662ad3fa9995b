package actors

import "testing"

// A session moves after followAfter requests in a row from one other node;
// one served where it arrived, or from another node, starts the count anew.
func TestTrail(t *testing.T) {
	var tr trail
	step := func(from string, want bool) {
		t.Helper()
		if got := tr.note(from); got != want {
			t.Fatalf("note(%q) after a run of %d: %v, want %v", from, tr.run, got, want)
		}
	}
	for range followAfter - 1 {
		step("b", false)
	}
	step("", false) // served here
	for range followAfter - 1 {
		step("b", false)
	}
	step("c", false) // from another node
	for range followAfter - 2 {
		step("c", false)
	}
	step("c", true)
	step("c", true) // still: until it has moved
}
