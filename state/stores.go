package state

import (
	"context"
	"errors"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// Stores bundles where sessions outlive their actors: the snapshot of each
// session and the events of its streams, the count of each user's
// sessions, and the users an operator revoked; in Redis for a cluster or in
// this process's memory for a single node. The actors persist and fence
// sessions through it, the edges read Revocations, the admin API reads and
// ends sessions through it (Describe, Delegated, End), and Check backs
// /readyz. A Stores is not copied once in use; its fields are set before.
type Stores struct {
	Snapshots Snapshots
	Events    Events
	// Sealer seals the tokens a snapshot holds (see Snapshot).
	Sealer *Sealer
	// SessionTTL is how long a session lives without a request: its
	// snapshot expires then. Zero: never.
	SessionTTL time.Duration
	// Check, if set, says whether the store is reachable (for /readyz).
	Check func(context.Context) error
	// Revocations are the users an operator revoked.
	Revocations Revocations
	// Tasks are the durable tasks of the MCP tasks extension (see package
	// tasks), under their owners.
	Tasks taskstore.Store
	// Users count each user's sessions, at most MaxSessionsPerUser of them
	// (zero: no cap, nothing counted).
	Users              UserSessions
	MaxSessionsPerUser int
	// UserTasks count each user's live tasks (working or input_required),
	// by task id, at most MaxTasksPerUser of them (zero: no cap).
	UserTasks       UserSessions
	MaxTasksPerUser int
	// MaxSnapshotBytes bounds a session's snapshot (DefaultMaxSnapshotBytes
	// when zero): the actors refuse a change that would make it larger,
	// and the snapshot last written stays.
	MaxSnapshotBytes int
	// Shared says that every node of the cluster reads these stores, and
	// unseals what they hold: a session goes on on any node (Redis, with
	// the cluster's --state-keys), so it may move to the node its requests
	// come from (actors/follow.go).
	Shared bool
}

// MemoryStores keeps sessions in this process, sealed under a key made for
// it (see NewProcessSealer): nothing survives the process, and no other
// process can open what it stored.
func MemoryStores(ttl time.Duration) *Stores {
	snaps := &MemorySnapshots{}
	return &Stores{Snapshots: snaps, Events: NewMemoryEvents(snaps), Sealer: NewProcessSealer(), SessionTTL: ttl,
		Revocations: &MemoryRevocations{}, Users: &MemoryUserSessions{}, Tasks: &taskstore.Memory{},
		UserTasks: &MemoryUserSessions{}}
}

// SnapshotLimit is the bound of a session's snapshot in bytes:
// MaxSnapshotBytes, or DefaultMaxSnapshotBytes when that is not positive.
func (s *Stores) SnapshotLimit() int {
	if s.MaxSnapshotBytes > 0 {
		return s.MaxSnapshotBytes
	}
	return DefaultMaxSnapshotBytes
}

// UserKey is the key a session of the user (issuer, subject) is counted
// under in Users; "" when sessions are not counted: no Users, no cap, or no
// authenticated owner.
func (s *Stores) UserKey(issuer, subject string) string {
	if !s.counted() || (issuer == "" && subject == "") {
		return ""
	}
	return auth.Principal{Issuer: issuer, Subject: subject}.UserKey()
}

// End ends a session for an operator: its snapshot and events go, it stops
// counting against its user, and its live activation, if any, is fenced at
// its next write. Ending a session that is not stored is not an error, and
// neither is ending one whose snapshot cannot be read (ErrUnreadable): it
// ends all the same, and since its snapshot cannot say whose it is, it
// stops counting against whichever user's it is (Users.Forget, which
// looks at every user's count). A store that cannot be read fails it
// before anything changed.
func (s *Stores) End(ctx context.Context, id string) error {
	var owner Snapshot
	unknown := false
	if s.counted() {
		snap, err := s.Snapshots.Get(ctx, id)
		switch {
		case errors.Is(err, ErrUnreadable):
			unknown = true
		case err != nil:
			return err
		case snap != nil:
			var derr error
			owner, derr = DecodeSnapshot(snap)
			// One of another version may still name its owner.
			unknown = derr != nil && owner.Issuer == "" && owner.Subject == ""
		}
	}
	return s.end(ctx, id, s.UserKey(owner.Issuer, owner.Subject), unknown)
}

// EndCounted ends session id as End does, for a caller who knows it is
// counted under user (a UserKey: Users.Sessions gave it), whatever its
// snapshot says: it stops counting there.
func (s *Stores) EndCounted(ctx context.Context, id, user string) error {
	return s.end(ctx, id, user, false)
}

// end ends session id, counted under user ("" if none), or under a user
// that cannot be known (unknown).
func (s *Stores) end(ctx context.Context, id, user string, unknown bool) error {
	if err := s.Snapshots.End(ctx, id); err != nil {
		return err
	}
	switch {
	case user != "":
		if err := s.Users.Release(ctx, user, id); err != nil {
			return err
		}
	case unknown:
		if err := s.Users.Forget(ctx, id); err != nil {
			return err
		}
	}
	return s.Events.SessionClosed(ctx, id)
}

// counted says whether sessions are counted against their users (Users,
// MaxSessionsPerUser).
func (s *Stores) counted() bool { return s.Users != nil && s.MaxSessionsPerUser > 0 }
