package actors

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// Sessions per user (state.Stores.MaxSessionsPerUser) are counted in the
// shared store (state.UserSessions), per (issuer, subject) whatever client
// opened them, so that the cap holds across edges and nodes and does not
// multiply with the clients a user registers.
//
// A session is counted when its actor is activated to create it, before
// anything of it is stored: beyond the cap, the initialize is answered 429
// and the actor stops, leaving no snapshot, no epoch and no actor behind.
// It stops counting when it ends: a DELETE or a failed initialize (settle;
// also one the SDK took and the snapshot's bound then refused, whose SDK
// session settle closes),
// an operator's kill or a user's revocation (state.Stores.End), or its idle
// timeout (its entry ages out with its snapshot; each snapshot write marks
// it active).
//
// Beyond the cap a new session is refused rather than made room for by
// ending the user's least recently used one: ending a session the user did
// not ask to end breaks a client that is still there (an editor left open
// overnight), silently, on behalf of whoever opens sessions fastest, which
// is what an attacker with a stolen or leaked token does. A refusal tells
// the client what happened and when a slot frees up; the user's idle
// sessions free theirs within the idle timeout, and a DELETE at once.

// claimSession counts a new session of p's user; refused is set when the
// user is at the cap.
func claimSession(ctx context.Context, d *state.Stores, session string, p *envelope.Principal) (refused *sessionCap, err error) {
	if p == nil {
		return nil, nil
	}
	user := d.UserKey(p.Issuer, p.Subject)
	if user == "" {
		return nil, nil
	}
	ok, retry, err := d.Users.Claim(ctx, user, session, d.MaxSessionsPerUser, d.SessionTTL)
	if err != nil || ok {
		return nil, err
	}
	return &sessionCap{max: d.MaxSessionsPerUser, retry: retry}, nil
}

// releaseSession stops counting a session that ended, off the caller's
// goroutine: a failure leaves its entry to age out with the idle timeout.
func releaseSession(d *state.Stores, session, issuer, subject string, logger *slog.Logger) {
	user := d.UserKey(issuer, subject)
	if user == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		defer cancel()
		if err := d.Users.Release(ctx, user, session); err != nil {
			metrics.StoreErrors.WithLabelValues("user_sessions").Inc()
			logger.Warn("ended session still counted against its user until its idle timeout", "session", session, "err", err)
		}
	}()
}

// touchSession marks a counted session active, with its snapshot's write.
func touchSession(ctx context.Context, d *state.Stores, session string, snap *state.Snapshot) {
	if user := d.UserKey(snap.Issuer, snap.Subject); user != "" {
		if err := d.Users.Touch(ctx, user, session, d.SessionTTL); err != nil {
			metrics.StoreErrors.WithLabelValues("user_sessions").Inc()
		}
	}
}

// sessionCap is a refusal by the cap on a user's sessions.
type sessionCap struct {
	max   int
	retry time.Duration // until the user's least recently active session expires; 0: unknown
}

// answer is the 429 of an initialize refused by the cap.
func (c *sessionCap) answer(req *envelope.Request) *envelope.ResponsePart {
	metrics.Limited.WithLabelValues("sessions_per_user").Inc()
	secs := 60
	if c.retry > 0 {
		secs = max(1, int(math.Ceil(c.retry.Seconds())))
	}
	return limited(req, http.StatusTooManyRequests, secs, "sessions_per_user",
		fmt.Sprintf("too many sessions: at most %d per user; end one (DELETE) or retry", c.max))
}
