package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Bounds on what the server keeps in memory. Expired entries are swept;
// past a bound, new ones are refused (a client only when no other may be
// forgotten: see register).
const (
	maxAuthRequests  = 10_000
	maxLiveTokens    = 100_000
	maxRefreshTokens = 100_000
	maxSpentCodes    = 100_000
	authRequestTTL   = 10 * time.Minute
	codeTTL          = time.Minute
	sweepEvery       = time.Minute
	maxLoginFailures = 5
	// revokedUserTTL is how long the record of a user's revocation is kept:
	// longer than any request of theirs that was under way then (a refresh
	// that spent its token before the revocation and adds the new one
	// after it) can take.
	revokedUserTTL = 10 * time.Minute
)

var (
	errFull         = errors.New("too many live entries, try again later")
	errGrantRevoked = errors.New("the grant was revoked")
)

// state is everything the server remembers, behind one lock.
type state struct {
	mu         sync.Mutex
	maxClients int
	clients    map[string]*client
	authReqs   map[string]*authRequest
	codes      map[string]string // code → auth request id
	// spentCodes are the codes redeemed, by SHA-256, with the grant each
	// began, until the tokens it gave would have expired: one presented
	// again may have been stolen, and the tokens issued from it are
	// revoked (RFC 6749 §4.1.2, §10.5).
	spentCodes map[[32]byte]spentCode
	refresh    map[[32]byte]*refreshGrant // by SHA-256 of the token
	// spent are the refresh tokens rotation spent, by the same hash,
	// until they would have expired: one presented again was stolen
	// (RFC 9700 §4.14.2), and its grant is revoked.
	spent map[[32]byte]spentRefresh
	// revokedGrants are the grants revoked in the last revokedUserTTL: a
	// refresh or exchange under way then adds no token of theirs after.
	revokedGrants map[string]time.Time
	live          map[string]liveToken // access tokens by jti
	// revokeSeq counts the revocations of users' grants; a login records
	// it (loginSeq), and revokedUsers the count each user was last revoked
	// at: a token of a grant whose login came before is refused
	// (revokedLocked). A count, not a time: a clock that stands still or
	// steps back does not confuse it.
	revokeSeq    uint64
	revokedUsers map[string]userRevocation
	lastSweep    time.Time
	// saver, when the server has a Store, records each change that must
	// survive a restart; the methods making one call saved after unlocking.
	saver *saver
}

// saved returns once the change just made is on record (see saver.save).
func (st *state) saved() { st.saver.save() }

// savedUnless is saved for a method that changed nothing when it failed.
func (st *state) savedUnless(err *error) {
	if *err == nil {
		st.saved()
	}
}

func newState(maxClients int) *state {
	return &state{
		maxClients: maxClients,
		clients:    map[string]*client{},
		authReqs:   map[string]*authRequest{},
		codes:      map[string]string{},
		spentCodes: map[[32]byte]spentCode{},
		refresh:    map[[32]byte]*refreshGrant{},
		spent:      map[[32]byte]spentRefresh{},
		live:       map[string]liveToken{},

		revokedGrants: map[string]time.Time{},

		revokedUsers: map[string]userRevocation{},
	}
}

// client is a registered client, confidential (configured) or public
// (dynamically registered). Its fields never change after registration
// but lastUsed and busyUntil, which the state's lock guards.
type client struct {
	id           string
	public       bool
	secret       [32]byte // SHA-256 of the secret, compared in constant time
	name         string
	fromDocument bool // described by its metadata document (CIMD): the id is its URL; redirect URIs match exactly
	redirectURIs []string
	grantTypes   []oidc.GrantType
	scopes       []string // registered scope (RFC 7591 §2), echoed; never a limit, see IsScopeAllowed
	issuedAt     time.Time
	lastUsed     time.Time
	// busyUntil is when the client's use may end: the end of its latest
	// login (authorization request, then code), or the expiry of its
	// latest token. Until then a flood of registrations cannot make the
	// server forget it (state.register).
	busyUntil  time.Time
	registered bool // through RFC 7591: the clients a Store keeps (configured ones come from Options, others are a cache)
}

func (c *client) secretMatches(secret string) bool {
	sum := sha256Sum(secret)
	return !c.public && subtle.ConstantTimeCompare(sum[:], c.secret[:]) == 1
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func (c *client) allows(gt oidc.GrantType) bool { return slices.Contains(c.grantTypes, gt) }

// op.Client: what op's request validation asks of a client.

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }

// ApplicationType is native for public clients, so that op accepts a
// loopback redirect URI on any port (RFC 8252 §7.3).
func (c *client) ApplicationType() op.ApplicationType {
	if c.public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	if c.allows(oidc.GrantTypeCode) {
		return []oidc.ResponseType{oidc.ResponseTypeCode}
	}
	return nil
}

func (c *client) GrantTypes() []oidc.GrantType { return c.grantTypes }
func (c *client) LoginURL(string) string       { return "" } // the server redirects itself
func (c *client) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeJWT
}
func (c *client) IDTokenLifetime() time.Duration { return 0 } // unused: the server mints
func (c *client) DevMode() bool                  { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows any scope: what a client gets is bounded by its
// resource's scopes and its user's (ScopeUsers), not by the scope it
// registered with. A client registers once, with the scope of its first
// login, and must then be able to step up (MCP authorization: a 403
// insufficient_scope asks it to re-authorize with more), as PingFederate's
// dynamically registered clients can when "Restrict Common Scopes" is off.
func (c *client) IsScopeAllowed(scope string) bool {
	return scope != ""
}

func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

// authRequest is an authorization request waiting for its login, then for
// its code to be redeemed.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	responseMode oidc.ResponseMode
	state        string
	nonce        string
	scopes       []string
	resource     string
	challenge    string // S256 code challenge; "" without PKCE
	created      time.Time
	failures     int

	subject     string // set by the login
	authTime    time.Time
	loginSeq    uint64
	code        string
	codeExpires time.Time
}

// spentCode is what a redeemed code still says: the grant its redemption
// began, and when the tokens issued then would have expired.
type spentCode struct {
	grant   string
	expires time.Time
}

// refreshGrant is what a refresh token stands for. grant names the login it
// descends from, through every rotation and exchange.
type refreshGrant struct {
	grant    string
	clientID string
	subject  string
	resource string
	scopes   []string
	authTime time.Time
	loginSeq uint64 // state.revokeSeq at the login
	expires  time.Time
}

// spentRefresh is what a spent refresh token still says: its grant and
// client, when it was spent, and when it would have expired.
type spentRefresh struct {
	grant, clientID string
	spent, expires  time.Time
}

// refreshReuseGrace is how long after a refresh token was spent its client
// may present it again without revoking the grant (refused all the same):
// two processes of one client sharing its tokens (mcp-remote's), or a
// retry after a lost answer, refresh at once. Identity providers grant
// the same (Okta's grace period, Auth0's reuse interval).
const refreshReuseGrace = 10 * time.Second

// liveToken records an issued access token that is neither expired nor
// revoked. Tokens of a revoked grant are dropped with it.
type liveToken struct {
	expires  time.Time
	grant    string
	loginSeq uint64 // state.revokeSeq at the login grant descends from
	subject  string // the user of a grant; for a client's own token, its id
	clientID string
	actor    string // act.sub, "" for a token that is not delegated
}

func (st *state) addConfidential(c *client) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, dup := st.clients[c.id]; dup {
		return false
	}
	st.clients[c.id] = c
	return true
}

// register adds a public client, registered at c.issuedAt. Past
// maxClients it forgets, of the public clients not in use (busyUntil
// past: none of its logins under way, none of its tokens unexpired), the
// least recently used, and returns its id, so that a long-running
// development server keeps accepting registrations. When every one is in
// use it adds nothing and returns errFull, with the time the first of
// them may stop being in use: registrations, which anyone may make, never
// log a client out.
func (st *state) register(c *client) (evicted string, retry time.Time, err error) {
	defer st.savedUnless(&err)
	st.mu.Lock()
	defer st.mu.Unlock()
	now := c.issuedAt
	public := 0
	var lru *client
	for _, o := range st.clients {
		if !o.public {
			continue
		}
		public++
		if now.Before(o.busyUntil) {
			if retry.IsZero() || o.busyUntil.Before(retry) {
				retry = o.busyUntil
			}
			continue
		}
		if lru == nil || o.lastUsed.Before(lru.lastUsed) {
			lru = o
		}
	}
	if public >= st.maxClients {
		if lru == nil {
			return "", retry, errFull
		}
		delete(st.clients, lru.id)
		evicted = lru.id
	}
	c.lastUsed = now
	st.clients[c.id] = c
	return evicted, time.Time{}, nil
}

// busyLocked records that the client id is in use until t.
func (st *state) busyLocked(id string, until time.Time) {
	if c := st.clients[id]; c != nil && until.After(c.busyUntil) {
		c.busyUntil = until
	}
}

func (st *state) client(id string, now time.Time) *client {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.clients[id]
	if c != nil {
		c.lastUsed = now
	}
	return c
}

func (st *state) addAuthRequest(ar *authRequest) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(ar.created, len(st.authReqs) >= maxAuthRequests)
	if len(st.authReqs) >= maxAuthRequests {
		return errFull
	}
	st.authReqs[ar.id] = ar
	// Its login may take authRequestTTL, the code's redemption codeTTL.
	st.busyLocked(ar.clientID, ar.created.Add(authRequestTTL+codeTTL))
	return nil
}

// pending returns a copy of the auth request id if it still waits for its
// login.
func (st *state) pending(id string, now time.Time) (authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ar, ok := st.authReqs[id]
	if !ok || ar.subject != "" || now.After(ar.created.Add(authRequestTTL)) {
		return authRequest{}, false
	}
	return *ar, true
}

// loginFailed counts a failed login. It drops the request, and returns
// false, once there were too many.
func (st *state) loginFailed(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	ar, ok := st.authReqs[id]
	if !ok {
		return false
	}
	ar.failures++
	if ar.failures >= maxLoginFailures {
		delete(st.authReqs, id)
		return false
	}
	return true
}

func (st *state) dropAuthRequest(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ar, ok := st.authReqs[id]; ok {
		delete(st.codes, ar.code)
		delete(st.authReqs, id)
	}
}

// completeLogin records who logged in for the pending request id and gives
// it its one code.
func (st *state) completeLogin(id, subject string, now time.Time, allowed func(scope string) bool) (authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ar, ok := st.authReqs[id]
	if !ok || ar.subject != "" || now.After(ar.created.Add(authRequestTTL)) {
		return authRequest{}, false
	}
	ar.scopes = slices.DeleteFunc(slices.Clone(ar.scopes), func(sc string) bool { return !allowed(sc) })
	ar.subject = subject
	ar.authTime = now
	ar.loginSeq = st.revokeSeq
	ar.code = randomID(32)
	ar.codeExpires = now.Add(codeTTL)
	st.codes[ar.code] = id
	return *ar, true
}

// redeemCode returns the auth request of code and forgets both: a code is
// good once, whoever presents it. The code is remembered as spent on
// grant, the grant its redemption begins, until keep (while there is
// room): presented again, it names the grant to revoke (reusedCode).
func (st *state) redeemCode(code, grant string, keep, now time.Time) (authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	id, ok := st.codes[code]
	if !ok {
		return authRequest{}, false
	}
	delete(st.codes, code)
	ar := st.authReqs[id]
	delete(st.authReqs, id)
	if ar == nil || now.After(ar.codeExpires) {
		return authRequest{}, false
	}
	st.sweepLocked(now, len(st.spentCodes) >= maxSpentCodes)
	if len(st.spentCodes) < maxSpentCodes {
		st.spentCodes[sha256Sum(code)] = spentCode{grant: grant, expires: keep}
	}
	return *ar, true
}

// reusedCode is the grant a spent code began, which its presentation again
// revokes; "" for a code never redeemed, or whose tokens have all expired.
func (st *state) reusedCode(code string, now time.Time) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	sc, ok := st.spentCodes[sha256Sum(code)]
	if !ok || !now.Before(sc.expires) {
		return ""
	}
	return sc.grant
}

func refreshKey(token string) [32]byte { return sha256Sum(token) }

func (st *state) addRefresh(token string, g refreshGrant, now time.Time) (err error) {
	defer st.savedUnless(&err)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now, len(st.refresh) >= maxRefreshTokens)
	if len(st.refresh) >= maxRefreshTokens {
		return errFull
	}
	if st.revokedLocked(g.grant, g.subject, g.loginSeq) {
		return errGrantRevoked
	}
	st.refresh[refreshKey(token)] = &g
	st.busyLocked(g.clientID, g.expires)
	return nil
}

func (st *state) peekRefresh(token string, now time.Time) (refreshGrant, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	g, ok := st.refresh[refreshKey(token)]
	if !ok || !now.Before(g.expires) {
		return refreshGrant{}, false
	}
	return *g, true
}

// consumeRefresh spends token; false means another request used it first.
// A spent token is remembered (stolenGrant) until it would have expired,
// while there is room.
func (st *state) consumeRefresh(token string, now time.Time) (ok bool) {
	defer func() {
		if ok {
			st.saved()
		}
	}()
	st.mu.Lock()
	defer st.mu.Unlock()
	k := refreshKey(token)
	g, ok := st.refresh[k]
	if !ok {
		return false
	}
	delete(st.refresh, k)
	st.sweepLocked(now, len(st.spent) >= maxRefreshTokens)
	if len(st.spent) < maxRefreshTokens {
		st.spent[k] = spentRefresh{grant: g.grant, clientID: g.clientID, spent: now, expires: g.expires}
	}
	return true
}

// unspend gives token back its grant g: the refresh that spent it issued
// nothing (a full table, a failed save), and its client retries with it.
// A grant revoked meanwhile stays revoked.
func (st *state) unspend(token string, g refreshGrant) {
	defer st.saved()
	st.mu.Lock()
	defer st.mu.Unlock()
	k := refreshKey(token)
	delete(st.spent, k)
	if !st.revokedLocked(g.grant, g.subject, g.loginSeq) {
		st.refresh[k] = &g
	}
}

// stolenGrant is the grant to revoke because clientID presented token,
// which rotation spent and which would not have expired yet, past
// refreshReuseGrace; else "".
func (st *state) stolenGrant(token, clientID string, now time.Time) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	sp, ok := st.spent[refreshKey(token)]
	if !ok || !now.Before(sp.expires) || sp.clientID == clientID && now.Sub(sp.spent) < refreshReuseGrace {
		return ""
	}
	return sp.grant
}

func (st *state) addLive(jti string, t liveToken, now time.Time) (err error) {
	defer st.savedUnless(&err)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now, len(st.live) >= maxLiveTokens)
	if len(st.live) >= maxLiveTokens {
		return errFull
	}
	if t.grant != "" && st.revokedLocked(t.grant, t.subject, t.loginSeq) {
		return errGrantRevoked
	}
	st.live[jti] = t
	st.busyLocked(t.clientID, t.expires)
	return nil
}

func (st *state) isLive(jti string, now time.Time) (liveToken, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.live[jti]
	if !ok || !now.Before(t.expires) {
		return liveToken{}, false
	}
	return t, true
}

func (st *state) revokeAccess(jti string) {
	defer st.saved()
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.live, jti)
}

// revokeGrant drops every refresh and access token descending from grant
// (RFC 7009 §2.1: revoking a refresh token revokes its access tokens), and
// for revokedUserTTL refuses those that a request under way adds.
func (st *state) revokeGrant(grant string, now time.Time) {
	if grant == "" {
		return
	}
	defer st.saved()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.revokedGrants[grant] = now
	for k, g := range st.refresh {
		if g.grant == grant {
			delete(st.refresh, k)
		}
	}
	for jti, t := range st.live {
		if t.grant == grant {
			delete(st.live, jti)
		}
	}
}

// revokeUser drops every grant of the user subject: its refresh tokens and
// the access tokens descending from a login (a client's own tokens have no
// grant). It returns how many grants it dropped. A token of the user's
// grants that a request adds later (a refresh that spent its token before,
// an exchange that checked its subject token before) is refused too: its
// login came before.
func (st *state) revokeUser(subject string, now time.Time) int {
	defer st.saved()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.revokeSeq++
	st.revokedUsers[subject] = userRevocation{seq: st.revokeSeq, at: now}
	grants := map[string]bool{}
	for k, g := range st.refresh {
		if g.subject == subject {
			grants[g.grant] = true
			delete(st.refresh, k)
		}
	}
	for jti, t := range st.live {
		if t.grant != "" && t.subject == subject {
			grants[t.grant] = true
			delete(st.live, jti)
		}
	}
	return len(grants)
}

// userRevocation is the last revocation of a user's grants.
type userRevocation struct {
	seq uint64 // state.revokeSeq it made
	at  time.Time
}

// revokedLocked says whether a token of subject's grant whose login saw
// loginSeq comes from a grant revoked since: grant itself (revokeGrant,
// within revokedUserTTL), or every grant of subject (revokeUser).
func (st *state) revokedLocked(grant, subject string, loginSeq uint64) bool {
	_, revoked := st.revokedGrants[grant]
	return revoked || loginSeq < st.revokedUsers[subject].seq
}

// loginSeq is what a login now records (see state.revokeSeq).
func (st *state) loginSeq() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.revokeSeq
}

// sweepLocked drops expired entries at most every sweepEvery, or now when
// force is set (a map is full).
func (st *state) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(st.lastSweep) < sweepEvery {
		return
	}
	st.lastSweep = now
	for id, ar := range st.authReqs {
		if now.After(ar.created.Add(authRequestTTL)) && (ar.code == "" || now.After(ar.codeExpires)) {
			delete(st.codes, ar.code)
			delete(st.authReqs, id)
		}
	}
	for k, g := range st.refresh {
		if !now.Before(g.expires) {
			delete(st.refresh, k)
		}
	}
	for k, sp := range st.spent {
		if !now.Before(sp.expires) {
			delete(st.spent, k)
		}
	}
	for k, sc := range st.spentCodes {
		if !now.Before(sc.expires) {
			delete(st.spentCodes, k)
		}
	}
	for jti, t := range st.live {
		if !now.Before(t.expires) {
			delete(st.live, jti)
		}
	}
	for subject, r := range st.revokedUsers {
		if now.Sub(r.at) > revokedUserTTL {
			delete(st.revokedUsers, subject)
		}
	}
	for grant, at := range st.revokedGrants {
		if now.Sub(at) > revokedUserTTL {
			delete(st.revokedGrants, grant)
		}
	}
}
