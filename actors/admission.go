package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/state"
)

// idOf is who a forwarded credential speaks for: the session's owner is
// the user (SameUser); the client is the one it is used through now.
func idOf(p *envelope.Principal) *auth.Principal {
	if p == nil {
		return nil
	}
	return &auth.Principal{Issuer: p.Issuer, Subject: p.Subject, ClientID: p.ClientId}
}

// admit binds a new session to the user (issuer, subject) of its first
// request, and admits later requests only from that user, through whichever
// client: a client that re-registers to step up (the Go SDK does) keeps its
// session. Through another client than the one the session is used through,
// the token must hold one of the MCP resource's scopes (403
// insufficient_scope otherwise): a token the user gave some other
// application for sign-in only (openid) does not take the session over.
// Such a request, admitted, returns the switch it makes (sw), which is made
// only once the request is accepted, by the actor's checks and by the
// go-sdk (commitSwitch): then the request's token replaces the one held,
// the session is used through that client, what was exchanged for the
// other client's token is dropped, and the other client's GET streams end
// (it reconnects, with its own token, and resumes). A request refused
// after admission (a tool's scope, a limit, the go-sdk's 400 for a stream
// it cannot replay or an id in flight, its 409 for a stream held) thus
// changes nothing; nor does a DELETE, which ends the session (serveFrom).
// Through the same client, a newer token replaces the one
// held at once. Each tool call still acts with its own request's token
// (credentials.Delegate). A token that would make the session's snapshot
// exceed its bound is refused (the refusal to send), and the one held
// stays. The edge's own GET that resumes an admitted request's stream
// (Request.Continues) is admitted for the user alone, and changes none of
// this. README ("Step-up and sessions") says why the user, not the client,
// is the owner.
func (a *core) admit(req *envelope.Request) (ok bool, refusal *envelope.ResponsePart, sw *clientSwitch) {
	p := req.Principal
	id := idOf(p)
	if a.owner == nil && a.credential == nil && a.kind.bindable() {
		a.bind(p, id)
		return true, nil, nil
	}
	if (a.owner == nil) != (id == nil) || (id != nil && !id.SameUser(*a.owner)) {
		return false, nil, nil
	}
	if req.Continues {
		// The edge resuming a request's stream that was admitted: with
		// that request's token, which may be another client's by now, or
		// expired.
		return true, nil, nil
	}
	switched := id != nil && id.ClientID != a.owner.ClientID
	if switched && !a.resourceScoped(p) {
		a.logger.Warn("request refused: another client of the session's user, without any of the resource's scopes",
			"request", req.Id, "client_id", id.ClientID, "session_client_id", a.owner.ClientID)
		return true, a.switchRefused(req), nil
	}
	if switched {
		if refusal := a.tokenFits(req, id, true); refusal != nil {
			return true, refusal, nil
		}
		return true, nil, &clientSwitch{req: req, id: id}
	}
	if p != nil && (a.credential == nil || p.ExpiresUnix >= a.credential.ExpiresUnix) {
		if refusal := a.takeToken(req, id, false); refusal != nil {
			return true, refusal, nil
		}
	}
	if a.creds != nil {
		a.creds.set(a.credential)
	}
	return true, nil, nil
}

// clientSwitch is an admitted request's taking its session to another
// client of the session's user (admit): made once the request is accepted
// (flight.accepted, commitSwitch). It is also the message that tells the
// actor so.
type clientSwitch struct {
	req *envelope.Request
	id  *auth.Principal
}

// commitSwitch makes the switch of a request now accepted (admit): its
// token becomes the one held, and the session is used through its client,
// unless the session is no longer served, or was taken to that client
// meanwhile with a newer token. A token that would now make the snapshot
// exceed its bound (the snapshot grew since admit) leaves the session as
// it is.
func (a *core) commitSwitch(sw *clientSwitch) {
	if (a.life != lifeServing && a.life != lifeDraining) || a.owner == nil || !sw.id.SameUser(*a.owner) {
		return
	}
	switched := sw.id.ClientID != a.owner.ClientID
	if !switched && a.credential != nil && sw.req.Principal.ExpiresUnix < a.credential.ExpiresUnix {
		return
	}
	if refusal := a.takeToken(sw.req, sw.id, switched); refusal != nil {
		a.logger.Warn("session not taken to another client of its user: its token would make the snapshot exceed its bound",
			"request", sw.req.Id, "client_id", sw.id.ClientID, "session_client_id", a.owner.ClientID)
		return
	}
	if a.creds != nil {
		a.creds.set(a.credential)
	}
}

// bind binds the actor to the principal p (id) of its first request.
func (a *core) bind(p *envelope.Principal, id *auth.Principal) {
	a.owner, a.credential = id, p
	a.live.setOwner(id)
	a.events.setOwner(id)
	if a.creds != nil {
		a.creds.set(p)
	}
	if ps := a.persist.Load(); ps != nil {
		// Written with the handshake, once initialize succeeds.
		sealed, err := a.cfg.Stores.SealPrincipal(a.id, p)
		ps.stage(func(r *state.Snapshot) {
			if id != nil {
				r.Issuer, r.Subject, r.ClientID = id.Issuer, id.Subject, id.ClientID
			}
			if err == nil {
				r.Principal = sealed
			}
		})
	}
}

// takeToken makes req's token (of id, its user's; through another client
// when switched) the one the actor holds, writing it into the snapshot
// first; it returns the refusal to send when the snapshot would exceed its
// bound, and then changes nothing.
func (a *core) takeToken(req *envelope.Request, id *auth.Principal, switched bool) *envelope.ResponsePart {
	if change := a.tokenChange(req.Principal, id, switched); change != nil {
		var big *SnapshotTooLarge
		if err := a.persist.Load().update(false, change); errors.As(err, &big) {
			return tooLarge(req, big)
		}
	}
	a.credential = req.Principal
	if switched {
		from := a.owner.ClientID
		a.logger.Info("session now used through another client of its user", "from_client_id", from, "client_id", id.ClientID)
		a.owner = id
		a.live.setOwner(id)
		if a.creds != nil {
			a.creds.replace(req.Principal)
		}
		a.endStreamsOf(from)
	}
	return nil
}

// tokenFits returns the refusal to send when taking req's token (takeToken)
// would make the snapshot exceed its bound, nil otherwise; it changes
// nothing.
func (a *core) tokenFits(req *envelope.Request, id *auth.Principal, switched bool) *envelope.ResponsePart {
	if change := a.tokenChange(req.Principal, id, switched); change != nil {
		var big *SnapshotTooLarge
		if err := a.persist.Load().fits(change); errors.As(err, &big) {
			return tooLarge(req, big)
		}
	}
	return nil
}

// tokenChange is the change of the snapshot that holds p (of id) as the
// session's token, nil when there is none to make (no snapshot, p already
// held, or p cannot be sealed).
func (a *core) tokenChange(p *envelope.Principal, id *auth.Principal, switched bool) func(*state.Snapshot) {
	if a.persist.Load() == nil || (a.credential != nil && a.credential.Token == p.Token) {
		return nil
	}
	sealed, err := a.cfg.Stores.SealPrincipal(a.id, p)
	if err != nil {
		return nil
	}
	return func(r *state.Snapshot) {
		r.Principal, r.ClientID = sealed, id.ClientID
		if switched {
			r.Delegations = ""
		}
	}
}

// resourceScoped says whether p holds one of the MCP resource's scopes: those
// clients are told to request (--scopes) or one a tool needs. A resource
// that defines none asks nothing of a token but its audience, which the
// edge checked.
func (a *core) resourceScoped(p *envelope.Principal) bool {
	ofResource := func(scopes []string) bool {
		return slices.ContainsFunc(scopes, func(s string) bool { return !identityScopes[s] })
	}
	defined := ofResource(a.cfg.Scopes)
	for _, needed := range a.scopes {
		defined = defined || ofResource(needed)
	}
	if !defined {
		return true
	}
	return slices.ContainsFunc(p.Scopes, func(s string) bool {
		if identityScopes[s] {
			return false
		}
		if slices.Contains(a.cfg.Scopes, s) {
			return true
		}
		for _, needed := range a.scopes {
			if slices.Contains(needed, s) {
				return true
			}
		}
		return false
	})
}

// identityScopes are OpenID Connect's scopes: a token any application the
// user signs in to may hold, which never speak for the resource, whatever
// --scopes or a tool (an --apis document's security requirement) lists.
var identityScopes = map[string]bool{"openid": true, "profile": true, "email": true, "address": true, "phone": true, "offline_access": true}

// endStreamsOf ends the GET streams opened through client, which the
// session is no longer used through: what the server sends outside a
// request's response (server→client requests such as elicitations,
// notifications) then goes only to the client now using the session. A
// client whose stream ends with the retry hint reconnects with its own
// token and resumes from its last event.
func (a *core) endStreamsOf(client string) {
	for id, f := range a.flights {
		if f.get && f.client == client {
			a.logger.Info("stream of the client the session was used through ended", "request", id, "client_id", client)
			f.drain()
		}
	}
}

// switchRefused answers a request through another client of the session's
// user whose token holds none of the resource's scopes: 403
// insufficient_scope naming those clients are told to request, or without
// any, those the tools need (RFC 6750 §3.1), and the resource's metadata.
func (a *core) switchRefused(req *envelope.Request) *envelope.ResponsePart {
	scopes := a.cfg.Scopes
	if len(scopes) == 0 {
		for _, needed := range a.scopes {
			scopes = append(scopes, needed...)
		}
		scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	}
	aerr := auth.InsufficientScope(req.Principal.Scopes, scopes,
		"this session is used through another client: a token for it must hold one of the scopes "+strings.Join(scopes, " "))
	return scopeRefusal(req, aerr, firstID(req))
}

// checkScopes refuses a tools/call whose tool needs a scope the request's
// token lacks: 403 insufficient_scope naming the scopes the token holds and
// those needed, so that the client can step up without losing any (MCP
// authorization, RFC 6750 §3.1), and the metadata of the resource the
// request was made to (the edge found it from the Host).
func (a *core) checkScopes(req *envelope.Request, rb *rpcbody.Body) *envelope.ResponsePart {
	if req.Principal == nil || len(a.scopes) == 0 || rb == nil {
		return nil
	}
	// rb is the edge's reading, which refused a body another reader could
	// take differently (a key in another case, a key twice): the tools read
	// here are those the SDK will call. See reading for why it is trusted.
	var needed, missing []string
	var tool string
	var id json.RawMessage
	for _, c := range rb.Messages {
		if c.Method != "tools/call" {
			continue
		}
		for _, s := range missingScopes(req.Principal.Scopes, a.scopes[c.Tool]) {
			if !slices.Contains(missing, s) {
				missing = append(missing, s)
				tool, id = c.Tool, c.ID
			}
		}
		needed = append(needed, a.scopes[c.Tool]...)
	}
	if len(missing) == 0 {
		return nil
	}
	aerr := auth.InsufficientScope(req.Principal.Scopes, needed, fmt.Sprintf("%s needs scope %s", tool, strings.Join(missing, " ")))
	return scopeRefusal(req, aerr, id)
}

// scopeRefusal is the 403 insufficient_scope answer to req: the challenge
// names the scopes to ask for and the metadata of the resource the request
// was made to, the body is a JSON-RPC error (id: its first request's).
func scopeRefusal(req *envelope.Request, aerr *auth.Error, id json.RawMessage) *envelope.ResponsePart {
	return errorPart(req.Id, http.StatusForbidden, id, rpcerr.New(rpcerr.InvalidRequest, aerr.Error()),
		&envelope.Header{Name: "WWW-Authenticate", Values: []string{auth.Challenge(aerr, auth.MetadataURL(req.Resource), aerr.Scopes)}})
}
