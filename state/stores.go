package state

import (
	"context"
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
	if s.Users == nil || s.MaxSessionsPerUser <= 0 || (issuer == "" && subject == "") {
		return ""
	}
	return auth.Principal{Issuer: issuer, Subject: subject}.UserKey()
}

// End ends a session for an operator: its snapshot and events go, it stops
// counting against its user, and its live activation, if any, is fenced at
// its next write. Ending a session that is not stored is not an error.
func (s *Stores) End(ctx context.Context, id string) error {
	var owner Snapshot
	if s.Users != nil {
		if snap, err := s.Snapshots.Get(ctx, id); err == nil && snap != nil {
			owner, _ = DecodeSnapshot(snap)
		}
	}
	if err := s.Snapshots.End(ctx, id); err != nil {
		return err
	}
	if user := s.UserKey(owner.Issuer, owner.Subject); user != "" {
		if err := s.Users.Release(ctx, user, id); err != nil {
			return err
		}
	}
	return s.Events.SessionClosed(ctx, id)
}
