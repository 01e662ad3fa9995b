package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/capture"
	"github.com/pingmcp/pingmcp/state"
)

// restore brings the session of a snapshot back: its owner and tokens, then
// its MCP session, by replaying the handshake into this actor's server.
func (a *SessionActor) restore(snap []byte) (state.Snapshot, error) {
	d := a.cfg.Stores
	rec, err := state.DecodeSnapshot(snap)
	if err != nil {
		return rec, err
	}
	if len(rec.Initialize) == 0 {
		return rec, errors.New("snapshot has no handshake")
	}
	cred, err := d.OpenPrincipal(a.id, rec.Principal)
	if err != nil {
		return rec, fmt.Errorf("principal: %w", err)
	}
	delegations, err := d.OpenDelegations(a.id, rec.Delegations)
	if err != nil {
		return rec, fmt.Errorf("delegations: %w", err)
	}
	if rec.Issuer != "" || rec.Subject != "" || rec.ClientID != "" {
		a.owner = &auth.Principal{Issuer: rec.Issuer, Subject: rec.Subject, ClientID: rec.ClientID}
	}
	// The owner is stored in clear; the sealed principal is what vouches
	// for it. A snapshot whose owner is not its principal's is refused.
	if (a.owner == nil) != (cred == nil) || (cred != nil && *idOf(cred) != *a.owner) {
		a.owner = nil
		return rec, errors.New("snapshot owner does not match its sealed principal")
	}
	// Sealed again under the newest key, for the write that follows the
	// restore at once: sealed once and kept as they were while the token
	// was, they would stay under a key being rotated out for as long as
	// the session is used (README, --state-keys).
	if rec.Principal, err = d.SealPrincipal(a.id, cred); err != nil {
		return rec, fmt.Errorf("principal: %w", err)
	}
	if rec.Delegations, err = d.SealDelegations(a.id, delegations); err != nil {
		return rec, fmt.Errorf("delegations: %w", err)
	}
	a.credential = cred
	a.live.setOwner(a.owner)
	a.events.setOwner(a.owner)
	if a.creds != nil {
		a.creds.set(cred)
		a.creds.restore(delegations)
	}
	if err := a.replay(rec); err != nil {
		a.owner, a.credential = nil, nil
		return rec, err
	}
	return rec, nil
}

// replay runs the recorded handshake through the SDK handler:
// initialize (the session takes this actor's id), initialized, the log
// level and the subscriptions, then a ping. Each request has an id of its
// own and must be answered with a result: one answered with an error, or
// not at all (its handler still running when the activation's time ran
// out), fails the restore, rather than leaving a session that differs
// from the one its client made.
func (a *SessionActor) replay(rec state.Snapshot) error {
	a.events.replaying.Store(true)
	defer a.events.replaying.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), activateTimeout)
	defer cancel()
	post := func(what string, msg any, want int, inSession bool) error {
		body, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		// The replayed initialize's context becomes the session's
		// connection's (releasable).
		rctx := releasing(ctx)
		defer rctx.release()
		hr, err := http.NewRequestWithContext(rctx, http.MethodPost, "http://pingmcp/mcp", bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json, text/event-stream")
		if inSession {
			hr.Header.Set("Mcp-Session-Id", a.id)
			if rec.ProtocolVersion != "" {
				hr.Header.Set("Mcp-Protocol-Version", rec.ProtocolVersion)
			}
		}
		w := capture.New()
		a.handler.ServeHTTP(w, hr)
		if w.Status() != want {
			return fmt.Errorf("replaying %s: status %d, want %d", what, w.Status(), want)
		}
		if want == http.StatusAccepted {
			return nil // a notification: no answer
		}
		switch _, rpcErr, ok := w.Outcome(); {
		case !ok:
			return fmt.Errorf("replaying %s: no answer", what)
		case rpcErr != nil:
			return fmt.Errorf("replaying %s: answered with an error: %s", what, rpcErr)
		}
		return nil
	}
	type call struct {
		JSONRPC string `json:"jsonrpc"`
		ID      string `json:"id,omitempty"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}
	if err := post("initialize", call{"2.0", "pingmcp-rehydrate-initialize", "initialize", rec.Initialize}, http.StatusOK, false); err != nil {
		return err
	}
	if rec.Initialized {
		if err := post("initialized", call{JSONRPC: "2.0", Method: "notifications/initialized"}, http.StatusAccepted, true); err != nil {
			return err
		}
	}
	if level := mcp.LoggingLevel(rec.LogLevel); level != "" {
		if !slices.Contains(logLevels, level) {
			// Kept before levels were checked (checkRequest): the SDK took it
			// as debug.
			level = "debug"
		}
		if err := post("logging/setLevel", call{"2.0", "pingmcp-rehydrate-setlevel", "logging/setLevel", map[string]string{"level": string(level)}}, http.StatusOK, true); err != nil {
			return err
		}
	}
	for i, uri := range rec.Subscriptions {
		id := fmt.Sprintf("pingmcp-rehydrate-subscribe-%d", i)
		if err := post("resources/subscribe", call{"2.0", id, "resources/subscribe", map[string]string{"uri": uri}}, http.StatusOK, true); err != nil {
			return err
		}
	}
	// A request answered last: the notifications before it were handled by
	// then (the SDK answers 202 to a notification before handling it).
	return post("ping", call{JSONRPC: "2.0", ID: "pingmcp-rehydrate-ping", Method: "ping"}, http.StatusOK, true)
}
