package auth

import (
	"crypto/sha256"
	"time"
)

// verdicts are what a verifier concluded about tokens, each kept until a
// time, at most max of them. A token is known by its SHA-256, never by its
// value. The owner locks: every method is called under the owner's mutex.
type verdicts struct {
	max int
	m   map[[32]byte]verdict
}

type verdict struct {
	token *Token // shared by every caller: read only
	err   error
	until time.Time
	keys  uint64 // the signing keys' generation it was verified by (JWT)
}

func newVerdicts(max int) verdicts {
	return verdicts{max: max, m: map[[32]byte]verdict{}}
}

func tokenKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// lookup returns the verdict on key still valid at now.
func (c *verdicts) lookup(key [32]byte, now time.Time) (verdict, bool) {
	v, ok := c.m[key]
	return v, ok && now.Before(v.until)
}

// store keeps v, first making room when the bound is reached.
func (c *verdicts) store(key [32]byte, v verdict, now time.Time) {
	if len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[key] = v
}

// evict makes room: expired verdicts first, then refusals (cheap to reach
// again, and what a flood of made-up tokens leaves), then verdicts at
// random, down to nine tenths of the bound.
func (c *verdicts) evict(now time.Time) {
	target := c.max * 9 / 10
	for _, drop := range []func(verdict) bool{
		func(v verdict) bool { return !now.Before(v.until) },
		func(v verdict) bool { return v.err != nil },
		func(verdict) bool { return true },
	} {
		for k, v := range c.m {
			if len(c.m) <= target {
				return
			}
			if drop(v) {
				delete(c.m, k)
			}
		}
	}
}
