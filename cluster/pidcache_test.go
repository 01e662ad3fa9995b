package cluster

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// The cache keeps at most two generations: what was used since the last
// max new entries stays (a hit in the old generation moves it up), the
// rest goes a generation at a time, never all at once.
func TestPIDCacheGenerations(t *testing.T) {
	c := newPIDCache(4)
	pid := func(i int) *actor.PID { return actor.NewPID("node", fmt.Sprint(i)) }
	put := func(from, to int) {
		for i := from; i < to; i++ {
			c.put(fmt.Sprint(i), pid(i))
		}
	}
	cached := func(i int) bool {
		got := c.get(fmt.Sprint(i))
		return got != nil && got.Equal(pid(i))
	}
	put(0, 5) // 0…3 are the old generation, 4 the current one
	if !cached(0) || !cached(4) {
		t.Fatal("entries of the last two generations: not cached")
	}
	// 0 moved up. Two generations more of new entries: 1…3, unused, go;
	// 0 goes too, once unused for as long.
	put(5, 8) // current: 4, 0, 5, 6; then 7 turns it: current {7}
	if !cached(0) {
		t.Error("entry 0, used one generation ago: dropped")
	}
	if cached(1) {
		t.Error("entry 1, unused for two generations: still cached")
	}
	put(8, 20)
	if n := len(c.cur) + len(c.old); n > 8 {
		t.Errorf("%d entries cached, want at most 2×4", n)
	}
	// Entries 14…17 are the old generation, 18 and 19 the current one.
	if cached(0) || cached(12) || !cached(16) || !cached(19) {
		t.Error("after 12 new entries: want the last ones (at least 4) cached, entries 0 and 12 not")
	}
	c.forget("19", pid(99))
	if !cached(19) {
		t.Error("forget of another activation dropped entry 19")
	}
	c.forget("19", pid(19))
	if cached(19) {
		t.Error("entry 19 still cached after forget")
	}
	c.forgetAddresses(map[string]bool{"node": true})
	if n := len(c.cur) + len(c.old); n != 0 {
		t.Errorf("%d entries left after their node went", n)
	}
}
