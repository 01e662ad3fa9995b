package state

import (
	"encoding/json"
	"fmt"
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
	Created         time.Time `json:"created"`
	Active          time.Time `json:"last_active"`
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
