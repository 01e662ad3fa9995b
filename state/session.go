package state

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// Snapshot is what a session needs to continue on another activation, as
// Snapshots stores it (JSON). Its JSON field names are the stored format:
// snapshots written by earlier releases must keep decoding, so a field is
// never renamed, and a change that older nodes cannot read bumps
// SnapshotVersion. Tokens in it (Principal, Delegations) are sealed, each
// bound to its session and field (see Stores.SealPrincipal), so that a
// snapshot never holds a token in the clear and a sealed value cannot be
// moved into another session's snapshot.
type Snapshot struct {
	Version int `json:"v"`
	// Owner: the user the session belongs to (none without auth), and the
	// client it was last used through.
	Issuer   string `json:"iss,omitempty"`
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// Principal is the sealed envelope.Principal last presented: the
	// user's token and its verified claims.
	Principal string `json:"principal,omitempty"`
	// Initialize holds the client's initialize params, replayed into a new
	// server session on rehydration.
	Initialize      json.RawMessage `json:"initialize,omitempty"`
	ProtocolVersion string          `json:"protocol_version,omitempty"`
	Initialized     bool            `json:"initialized,omitempty"`
	LogLevel        string          `json:"log_level,omitempty"`
	Subscriptions   []string        `json:"subscriptions,omitempty"`
	// Delegations is the sealed cache of exchanged tokens ([]Delegation).
	Delegations string `json:"delegations,omitempty"`
	// Node is the cluster address of the last activation, Epoch its epoch.
	Node    string    `json:"node,omitempty"`
	Epoch   int64     `json:"epoch,omitempty"`
	Created time.Time `json:"created"`
	Active  time.Time `json:"active"`
}

// SnapshotVersion is the Version of the snapshots this build writes and the
// only one DecodeSnapshot accepts.
const SnapshotVersion = 1

// DecodeSnapshot reads a stored snapshot. It fails, with a
// *SnapshotError, on malformed JSON and on a Version other than
// SnapshotVersion (the fields it read are then returned all the same); it
// opens nothing sealed.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return s, &SnapshotError{err: err}
	}
	if s.Version != SnapshotVersion {
		return s, &SnapshotError{Version: s.Version}
	}
	return s, nil
}

// SnapshotError is DecodeSnapshot's: a stored snapshot that this node
// does not read, as JSON (Version zero) or of another Version. It is
// ErrUnreadable (errors.Is).
type SnapshotError struct {
	// Version is the version the snapshot has, when it decoded as JSON
	// but is not SnapshotVersion; zero when it did not decode.
	Version int
	err     error // json's, when it did not decode
}

func (e *SnapshotError) Error() string {
	if e.err != nil {
		return "decode session snapshot: " + e.err.Error()
	}
	return fmt.Sprintf("session snapshot has version %d, this node reads %d", e.Version, SnapshotVersion)
}

func (e *SnapshotError) Unwrap() error { return e.err }

// Is makes a *SnapshotError ErrUnreadable.
func (e *SnapshotError) Is(target error) bool { return target == ErrUnreadable }

// Delegation is a cached exchanged token as a snapshot keeps it, sealed in
// Snapshot.Delegations. Its JSON field names are part of the stored format.
type Delegation struct {
	// Key is the cache key: the audience first, then "\x00" and what else
	// the exchange was for (the actors' cacheKey); Describe shows the
	// audience.
	Key string `json:"key"`
	// Client is the client of the token it was exchanged for.
	Client string         `json:"client_id,omitempty"`
	Token  string         `json:"token"`
	Scopes []string       `json:"scopes,omitempty"`
	Expiry time.Time      `json:"expiry"`
	Claims map[string]any `json:"claims,omitempty"`
	// Fresh is when the cached token stops being handed out.
	Fresh time.Time `json:"fresh"`
}

// sealContext binds a sealed field to its session, so that it cannot be
// moved into another session's snapshot.
func sealContext(session, field string) []byte { return []byte("pingmcp/" + session + "/" + field) }

// SealPrincipal seals p for the Principal field of session's snapshot;
// a nil p seals to "".
func (s *Stores) SealPrincipal(session string, p *envelope.Principal) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return "", err
	}
	return s.Sealer.Seal(b, sealContext(session, "principal")), nil
}

// OpenPrincipal opens what SealPrincipal sealed for session; "" opens to
// nil. A value sealed for another session or field, or under a key the
// Sealer lacks, fails with ErrUnsealable.
func (s *Stores) OpenPrincipal(session, sealed string) (*envelope.Principal, error) {
	if sealed == "" {
		return nil, nil
	}
	b, err := s.Sealer.Open(sealed, sealContext(session, "principal"))
	if err != nil {
		return nil, err
	}
	p := &envelope.Principal{}
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, err
	}
	return p, nil
}

// SealDelegations seals ds for the Delegations field of session's
// snapshot; none seal to "".
func (s *Stores) SealDelegations(session string, ds []Delegation) (string, error) {
	if len(ds) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return "", err
	}
	return s.Sealer.Seal(b, sealContext(session, "delegations")), nil
}

// OpenDelegations opens what SealDelegations sealed for session; "" opens
// to none. It fails as OpenPrincipal does.
func (s *Stores) OpenDelegations(session, sealed string) ([]Delegation, error) {
	if sealed == "" {
		return nil, nil
	}
	b, err := s.Sealer.Open(sealed, sealContext(session, "delegations"))
	if err != nil {
		return nil, err
	}
	var ds []Delegation
	return ds, json.Unmarshal(b, &ds)
}
