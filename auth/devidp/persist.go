package devidp

import (
	"cmp"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// A Store keeps the server's state across restarts: the signing key, the
// clients registered through RFC 7591, the refresh tokens (by hash) and
// the live access tokens (by jti) with the grants they descend from, and
// the revocations of users' grants. Configured clients (Options.Clients)
// are not in it: they come from the options at every start. Neither are
// authorization requests and codes, which live a few minutes: a login under
// way when the server stops is begun again. Codes redeemed are, by hash
// (state.spentCodes): one presented again after a restart still revokes
// what was issued from it.
//
// The server calls Save after every change and waits for it before it
// answers the request that made the change, so a token it issued, or a
// revocation it confirmed, is on record. Calls never overlap.
type Store interface {
	// Load returns the document last saved, or nil and no error when none
	// was saved yet. It must not return a document it could only partly
	// read.
	Load() ([]byte, error)
	// Save replaces the document atomically: a Load after a crash returns
	// the old document or the new one, whole.
	Save(doc []byte) error
}

// stateVersion is the version of the saved document's format.
const stateVersion = 1

// savedState is the document a Store keeps. No token or code value is in it:
// refresh tokens are kept by their SHA-256, access tokens by their jti.
// The signing key is in it, in clear (PKCS #8 PEM): whoever can read the
// document can sign tokens this server would accept.
type savedState struct {
	Version    int               `json:"version"`
	SigningKey string            `json:"signing_key"`
	Clients    []savedClient     `json:"clients"`
	Refresh    []savedRefresh    `json:"refresh_tokens"`
	Spent      []savedSpent      `json:"spent_refresh_tokens,omitempty"`
	SpentCodes []savedSpent      `json:"spent_codes,omitempty"`
	Access     []savedAccess     `json:"access_tokens"`
	RevokeSeq  uint64            `json:"revoke_seq"`
	Revoked    []savedRevocation `json:"revoked_users"`
}

type savedClient struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name,omitempty"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types"`
	Scopes       []string  `json:"scopes,omitempty"`
	IssuedAt     time.Time `json:"issued_at"`
	LastUsed     time.Time `json:"last_used"`
}

type savedRefresh struct {
	Hash     string    `json:"token_sha256"` // base64url
	Grant    string    `json:"grant"`
	ClientID string    `json:"client_id"`
	Subject  string    `json:"sub"`
	Resource string    `json:"resource"`
	Scopes   []string  `json:"scopes"`
	AuthTime time.Time `json:"auth_time"`
	LoginSeq uint64    `json:"login_seq"`
	Expires  time.Time `json:"expires"`
}

// savedSpent is a refresh token rotation spent (state.spent), or a code
// redeemed (state.spentCodes).
type savedSpent struct {
	Hash    string    `json:"token_sha256"` // base64url
	Grant   string    `json:"grant"`
	Expires time.Time `json:"expires"`
}

type savedAccess struct {
	JTI      string    `json:"jti"`
	Expires  time.Time `json:"expires"`
	Grant    string    `json:"grant,omitempty"`
	LoginSeq uint64    `json:"login_seq"`
	Subject  string    `json:"sub"`
	ClientID string    `json:"client_id"`
	Actor    string    `json:"actor,omitempty"`
}

type savedRevocation struct {
	Subject string    `json:"sub"`
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
}

// snapshot is the document of st and key.
func (st *state) snapshot(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the signing key: %w", err)
	}
	doc := savedState{
		Version:    stateVersion,
		SigningKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	st.mu.Lock()
	for _, c := range st.clients {
		if !c.registered {
			continue
		}
		sc := savedClient{ID: c.id, Name: c.name, RedirectURIs: c.redirectURIs, Scopes: c.scopes, IssuedAt: c.issuedAt, LastUsed: c.lastUsed}
		for _, g := range c.grantTypes {
			sc.GrantTypes = append(sc.GrantTypes, string(g))
		}
		doc.Clients = append(doc.Clients, sc)
	}
	for k, g := range st.refresh {
		doc.Refresh = append(doc.Refresh, savedRefresh{
			Hash: base64.RawURLEncoding.EncodeToString(k[:]), Grant: g.grant, ClientID: g.clientID, Subject: g.subject,
			Resource: g.resource, Scopes: g.scopes, AuthTime: g.authTime, LoginSeq: g.loginSeq, Expires: g.expires,
		})
	}
	for k, sp := range st.spent {
		doc.Spent = append(doc.Spent, savedSpent{Hash: base64.RawURLEncoding.EncodeToString(k[:]), Grant: sp.grant, Expires: sp.expires})
	}
	for k, sc := range st.spentCodes {
		doc.SpentCodes = append(doc.SpentCodes, savedSpent{Hash: base64.RawURLEncoding.EncodeToString(k[:]), Grant: sc.grant, Expires: sc.expires})
	}
	for jti, t := range st.live {
		doc.Access = append(doc.Access, savedAccess{
			JTI: jti, Expires: t.expires, Grant: t.grant, LoginSeq: t.loginSeq, Subject: t.subject, ClientID: t.clientID, Actor: t.actor,
		})
	}
	doc.RevokeSeq = st.revokeSeq
	for sub, r := range st.revokedUsers {
		doc.Revoked = append(doc.Revoked, savedRevocation{Subject: sub, Seq: r.seq, At: r.at})
	}
	st.mu.Unlock()
	// A stable order: the same state, the same document.
	slices.SortFunc(doc.Clients, func(a, b savedClient) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(doc.Refresh, func(a, b savedRefresh) int { return cmp.Compare(a.Hash, b.Hash) })
	slices.SortFunc(doc.Spent, func(a, b savedSpent) int { return cmp.Compare(a.Hash, b.Hash) })
	slices.SortFunc(doc.SpentCodes, func(a, b savedSpent) int { return cmp.Compare(a.Hash, b.Hash) })
	slices.SortFunc(doc.Access, func(a, b savedAccess) int { return cmp.Compare(a.JTI, b.JTI) })
	slices.SortFunc(doc.Revoked, func(a, b savedRevocation) int { return cmp.Compare(a.Subject, b.Subject) })
	return json.MarshalIndent(doc, "", "  ")
}

// restore reads a saved document into st, which holds only configured
// clients yet, and returns its signing key. Expired entries are left out;
// so are refresh tokens for resources no longer configured (known says
// which are). Anything malformed is an error naming what: a document is
// taken whole or not at all.
func (st *state) restore(b []byte, now time.Time, known func(resource string) bool) (*rsa.PrivateKey, error) {
	var doc savedState
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a state document: %w", err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("version %d, this server reads version %d", doc.Version, stateVersion)
	}
	block, _ := pem.Decode([]byte(doc.SigningKey))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("signing_key is not a PKCS #8 PEM private key")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing_key: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok || key.N.BitLen() < 2048 {
		return nil, errors.New("signing_key is not an RSA key of at least 2048 bits")
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	for i, sc := range doc.Clients {
		c := &client{id: sc.ID, public: true, registered: true, name: sc.Name, redirectURIs: sc.RedirectURIs,
			scopes: sc.Scopes, issuedAt: sc.IssuedAt, lastUsed: sc.LastUsed}
		if sc.ID == "" || len(sc.RedirectURIs) == 0 {
			return nil, fmt.Errorf("clients[%d]: no client_id or redirect_uris", i)
		}
		if _, dup := st.clients[sc.ID]; dup {
			return nil, fmt.Errorf("clients[%d]: client_id %q is there twice, or is a configured client's", i, sc.ID)
		}
		for _, u := range sc.RedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				return nil, fmt.Errorf("clients[%d]: redirect URI %q %v", i, u, err)
			}
		}
		for _, g := range sc.GrantTypes {
			if gt := oidc.GrantType(g); gt == oidc.GrantTypeCode || gt == oidc.GrantTypeRefreshToken {
				c.grantTypes = append(c.grantTypes, gt)
			} else {
				return nil, fmt.Errorf("clients[%d]: grant type %q is not one a registered client may have", i, g)
			}
		}
		st.clients[c.id] = c
	}
	for i, r := range doc.Refresh {
		h, err := base64.RawURLEncoding.DecodeString(r.Hash)
		if err != nil || len(h) != 32 || r.Grant == "" || r.ClientID == "" || r.Subject == "" {
			return nil, fmt.Errorf("refresh_tokens[%d]: malformed", i)
		}
		if !now.Before(r.Expires) || !known(r.Resource) {
			continue
		}
		st.refresh[[32]byte(h)] = &refreshGrant{grant: r.Grant, clientID: r.ClientID, subject: r.Subject, resource: r.Resource,
			scopes: r.Scopes, authTime: r.AuthTime, loginSeq: r.LoginSeq, expires: r.Expires}
		st.busyLocked(r.ClientID, r.Expires)
	}
	for i, sp := range doc.Spent {
		h, err := base64.RawURLEncoding.DecodeString(sp.Hash)
		if err != nil || len(h) != 32 || sp.Grant == "" {
			return nil, fmt.Errorf("spent_refresh_tokens[%d]: malformed", i)
		}
		if now.Before(sp.Expires) {
			st.spent[[32]byte(h)] = spentRefresh{grant: sp.Grant, expires: sp.Expires}
		}
	}
	for i, sc := range doc.SpentCodes {
		h, err := base64.RawURLEncoding.DecodeString(sc.Hash)
		if err != nil || len(h) != 32 || sc.Grant == "" {
			return nil, fmt.Errorf("spent_codes[%d]: malformed", i)
		}
		if now.Before(sc.Expires) {
			st.spentCodes[[32]byte(h)] = spentCode{grant: sc.Grant, expires: sc.Expires}
		}
	}
	for i, a := range doc.Access {
		if a.JTI == "" || a.Subject == "" {
			return nil, fmt.Errorf("access_tokens[%d]: malformed", i)
		}
		if now.Before(a.Expires) {
			st.live[a.JTI] = liveToken{expires: a.Expires, grant: a.Grant, loginSeq: a.LoginSeq, subject: a.Subject, clientID: a.ClientID, actor: a.Actor}
			st.busyLocked(a.ClientID, a.Expires)
		}
	}
	st.revokeSeq = doc.RevokeSeq
	for i, r := range doc.Revoked {
		if r.Subject == "" || r.Seq > doc.RevokeSeq {
			return nil, fmt.Errorf("revoked_users[%d]: malformed", i)
		}
		st.revokedUsers[r.Subject] = userRevocation{seq: r.Seq, at: r.At}
	}
	return key, nil
}

// saver writes the state to its Store after each change, one write at a
// time: a change made while a write is under way is in the next one, which
// carries every change made meanwhile (a group commit).
type saver struct {
	store    Store
	document func() ([]byte, error)
	log      *slog.Logger

	mu      sync.Mutex
	cond    sync.Cond
	asked   uint64 // changes made
	done    uint64 // changes on record (or whose write failed)
	writing bool
	failing bool
}

func newSaver(store Store, document func() ([]byte, error), log *slog.Logger) *saver {
	s := &saver{store: store, document: document, log: log}
	s.cond.L = &s.mu
	return s
}

// save puts the state, with the change its caller just made, on record and
// returns once it is (or its write failed: that is logged, and the server
// goes on from memory).
func (s *saver) save() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	mine := s.asked
	for s.done < mine {
		if s.writing {
			s.cond.Wait()
			continue
		}
		s.writing = true
		upto := s.asked // every change counted so far is in the document taken now
		s.mu.Unlock()
		err := s.write()
		s.mu.Lock()
		s.writing, s.done = false, upto
		switch {
		case err != nil && !s.failing:
			s.log.Error("could not save the authorization server's state: a restart will lose what changed since", "err", err)
		case err == nil && s.failing:
			s.log.Info("the authorization server's state is saved again")
		}
		s.failing = err != nil
		s.cond.Broadcast()
	}
}

func (s *saver) write() error {
	doc, err := s.document()
	if err != nil {
		return err
	}
	return s.store.Save(doc)
}
