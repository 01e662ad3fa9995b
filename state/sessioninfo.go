package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/telemetry"
)

// SessionInfo is what an operator may see of a stored session: never a
// token value. Its JSON is the admin API's.
type SessionInfo struct {
	ID              string    `json:"id"`
	Issuer          string    `json:"issuer,omitempty"`
	Subject         string    `json:"subject,omitempty"`
	ClientID        string    `json:"client_id,omitempty"`
	ProtocolVersion string    `json:"protocol_version,omitempty"`
	ClientName      string    `json:"client_name,omitempty"`
	ClientVersion   string    `json:"client_version,omitempty"`
	LogLevel        string    `json:"log_level,omitempty"`
	Subscriptions   []string  `json:"subscriptions,omitempty"`
	Created         time.Time `json:"created,omitzero"`
	Active          time.Time `json:"last_active,omitzero"`
	// Unreadable, when set, says why the session's stored snapshot cannot
	// be read (WhyUnreadable): the session is there, and can be ended, but
	// nothing else of it is known (no owner, no node; Live is false for
	// not known to be live).
	Unreadable string `json:"unreadable,omitempty"`
	// Node is the cluster address of the session's last activation and
	// Epoch its epoch; Live says whether its actor is running there now,
	// with its open streams and requests in flight. Describe leaves Live,
	// Streams and InFlight zero: only the node knows them.
	Node        string           `json:"node,omitempty"`
	Epoch       int64            `json:"epoch,omitempty"`
	Live        bool             `json:"live"`
	Streams     int              `json:"streams"`
	InFlight    int              `json:"in_flight"`
	Delegations []DelegationInfo `json:"delegations,omitempty"`
}

// DelegationInfo describes one cached exchanged token: for whom, what, until
// when, through whom; not the token.
type DelegationInfo struct {
	Audience string         `json:"audience"`
	Scopes   []string       `json:"scopes,omitempty"`
	Expiry   time.Time      `json:"expiry"`
	Act      map[string]any `json:"act,omitempty"`
	JTI      string         `json:"jti,omitempty"`
}

// WhyUnreadable says, for an operator, why a session's stored snapshot,
// which is there, cannot be read, err being what reading it failed with
// (Snapshots.Get or List, DecodeSnapshot, Describe): too large, not a
// string in Redis, not a snapshot this node decodes (ErrUnreadable), or
// its sealed part sealed under a key the node lacks (ErrUnsealable). Never
// with its content. "" for any other error (a store out of reach) and for
// none.
func WhyUnreadable(err error) string {
	var big *TooLarge
	var wrong *WrongType
	var bad *SnapshotError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &big):
		size, limit := byteSize(big.Size), byteSize(big.Limit)
		if size == limit {
			size, limit = strconv.FormatInt(big.Size, 10)+" bytes", strconv.FormatInt(big.Limit, 10)+" bytes"
		}
		return "too large: " + size + ", over its bound of " + limit
	case errors.As(err, &wrong):
		return "not a snapshot: Redis holds a " + telemetry.Clip(wrong.Type) + " there"
	case errors.As(err, &bad) && bad.Version != 0:
		return fmt.Sprintf("written by another version (snapshot version %d; this node reads %d)", bad.Version, SnapshotVersion)
	case errors.As(err, &bad):
		return "not a session snapshot: it does not decode"
	case errors.Is(err, ErrUnsealable):
		return "its sealed part cannot be opened: sealed under a key not in --state-keys, or tampered with"
	}
	return ""
}

// byteSize writes n bytes for a person: 700 bytes, 512 KiB, 3.2 MiB.
func byteSize(n int64) string {
	for _, u := range []struct {
		shift int
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift {
			v := strconv.FormatFloat(float64(n)/float64(int64(1)<<u.shift), 'f', 1, 64)
			return strings.TrimSuffix(v, ".0") + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Describe reads session id's stored snapshot for an operator. With
// details, the cached exchanged tokens are opened and described (an error
// then still returns what was read before); without, nothing sealed is
// opened.
func (s *Stores) Describe(id string, snapshot []byte, details bool) (SessionInfo, error) {
	snap, err := DecodeSnapshot(snapshot)
	if err != nil {
		return SessionInfo{}, err
	}
	info := SessionInfo{ID: id, Issuer: snap.Issuer, Subject: snap.Subject, ClientID: snap.ClientID,
		ProtocolVersion: snap.ProtocolVersion, LogLevel: snap.LogLevel, Subscriptions: snap.Subscriptions,
		Created: snap.Created, Active: snap.Active, Node: snap.Node, Epoch: snap.Epoch}
	var params struct {
		ClientInfo struct{ Name, Version string } `json:"clientInfo"`
	}
	if json.Unmarshal(snap.Initialize, &params) == nil {
		// What a client chose, shown to operators: bounded.
		info.ClientName, info.ClientVersion = telemetry.Clip(params.ClientInfo.Name), telemetry.Clip(params.ClientInfo.Version)
	}
	if details {
		ds, err := s.OpenDelegations(id, snap.Delegations)
		if err != nil {
			return info, fmt.Errorf("open cached tokens: %w", err)
		}
		for _, d := range ds {
			audience, _, _ := strings.Cut(d.Key, "\x00")
			di := DelegationInfo{Audience: audience, Scopes: d.Scopes, Expiry: d.Expiry}
			di.Act, _ = d.Claims["act"].(map[string]any)
			di.JTI, _ = d.Claims["jti"].(string)
			info.Delegations = append(info.Delegations, di)
		}
	}
	return info, nil
}

// Delegated returns the values of the exchanged tokens session id's stored
// snapshot holds, so that an operator ending it can revoke them at the
// authorization server. Never log or show them.
func (s *Stores) Delegated(id string, snapshot []byte) ([]string, error) {
	snap, err := DecodeSnapshot(snapshot)
	if err != nil {
		return nil, err
	}
	ds, err := s.OpenDelegations(id, snap.Delegations)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, 0, len(ds))
	for _, d := range ds {
		tokens = append(tokens, d.Token)
	}
	return tokens, nil
}
