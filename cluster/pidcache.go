package cluster

import "github.com/asynkron/protoactor-go/actor"

// pidCache maps kind/identity to its activation, in two generations of at
// most max entries each: when the current one is full it becomes the old
// one (the old one dropped), and an entry found in the old one moves to
// the current one. So it holds at most 2×max entries, an activation used
// since the last max new ones stays, and the cache is never emptied at
// once (an edge sending every request to the placement again at the same
// moment, as a clear of a full map did). Not safe for concurrent use.
type pidCache struct {
	max      int
	cur, old map[string]*actor.PID
}

func newPIDCache(max int) *pidCache {
	return &pidCache{max: max, cur: map[string]*actor.PID{}}
}

func (c *pidCache) get(key string) *actor.PID {
	if pid := c.cur[key]; pid != nil {
		return pid
	}
	pid := c.old[key]
	if pid != nil {
		delete(c.old, key)
		c.put(key, pid)
	}
	return pid
}

func (c *pidCache) put(key string, pid *actor.PID) {
	if _, ok := c.cur[key]; !ok && len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]*actor.PID, c.max)
	}
	c.cur[key] = pid
}

// forget drops key if it still names pid.
func (c *pidCache) forget(key string, pid *actor.PID) {
	for _, m := range []map[string]*actor.PID{c.cur, c.old} {
		if cur := m[key]; cur != nil && cur.Equal(pid) {
			delete(m, key)
		}
	}
}

// forgetAddresses drops the activations hosted at the addresses gone.
func (c *pidCache) forgetAddresses(gone map[string]bool) {
	for _, m := range []map[string]*actor.PID{c.cur, c.old} {
		for k, pid := range m {
			if gone[pid.Address] {
				delete(m, k)
			}
		}
	}
}
