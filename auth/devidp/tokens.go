package devidp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// accessClaims are the claims of an access token, as PingFederate's JWT
// access token manager issues them: a single audience, and scope as a
// space-separated string.
type accessClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
	Expiry    *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	ID        string           `json:"jti"`
	// Act is the RFC 8693 actor of a delegated (exchanged) token.
	Act map[string]any `json:"act,omitempty"`
}

func (c *accessClaims) scopes() []string { return strings.Fields(c.Scope) }

type idClaims struct {
	Issuer            string           `json:"iss"`
	Subject           string           `json:"sub"`
	Audience          string           `json:"aud"`
	Expiry            *jwt.NumericDate `json:"exp"`
	IssuedAt          *jwt.NumericDate `json:"iat"`
	AuthTime          *jwt.NumericDate `json:"auth_time,omitempty"`
	Nonce             string           `json:"nonce,omitempty"`
	AccessTokenHash   string           `json:"at_hash,omitempty"`
	PreferredUsername string           `json:"preferred_username,omitempty"`
	Name              string           `json:"name,omitempty"`
}

// accessSpec describes an access token to mint.
type accessSpec struct {
	subject  string
	clientID string
	resource string
	scopes   []string
	act      map[string]any
	grant    string
	loginSeq uint64 // state.revokeSeq at the login grant descends from
	// notAfter caps the expiry (an exchanged token does not outlive its
	// subject token); zero means no cap.
	notAfter time.Time
}

// mintAccess signs an access token and records it as live.
func (s *Server) mintAccess(spec accessSpec) (token string, expires time.Time, err error) {
	now := s.now()
	expires = now.Add(s.accessTTL)
	if !spec.notAfter.IsZero() && spec.notAfter.Before(expires) {
		expires = spec.notAfter
	}
	c := accessClaims{
		Issuer:    s.issuer,
		Subject:   spec.subject,
		Audience:  spec.resource,
		ClientID:  spec.clientID,
		Scope:     strings.Join(spec.scopes, " "),
		Expiry:    jwt.NewNumericDate(expires),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ID:        randomID(16),
		Act:       spec.act,
	}
	token, err = jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	actor, _ := spec.act["sub"].(string)
	live := liveToken{expires: expires, grant: spec.grant, loginSeq: spec.loginSeq, subject: spec.subject, clientID: spec.clientID, actor: actor}
	if err := s.state.addLive(c.ID, live, now); err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

var errNotOurs = errors.New("not an access token issued by this server")

// verifyAccess checks that raw is a live access token of this server:
// signed with its key, for its issuer, not expired, not revoked. Errors
// never quote the token.
func (s *Server) verifyAccess(raw string) (*accessClaims, map[string]any, liveToken, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].KeyID != s.keyID {
		return nil, nil, liveToken{}, errNotOurs
	}
	var c accessClaims
	var all map[string]any
	if err := tok.Claims(&s.key.PublicKey, &c, &all); err != nil || c.Issuer != s.issuer || c.ID == "" || c.Expiry == nil {
		return nil, nil, liveToken{}, errNotOurs
	}
	now := s.now()
	if !now.Before(c.Expiry.Time()) {
		return nil, nil, liveToken{}, errors.New("token expired")
	}
	live, ok := s.state.isLive(c.ID, now)
	if !ok {
		return nil, nil, liveToken{}, errors.New("token revoked or expired")
	}
	return &c, all, live, nil
}

// mintID signs an ID token for a user who logged in through clientID.
func (s *Server) mintID(g refreshGrant, nonce, accessToken string) (string, error) {
	now := s.now()
	atHash, err := oidc.ClaimHash(accessToken, jose.RS256)
	if err != nil {
		return "", fmt.Errorf("at_hash: %w", err)
	}
	c := idClaims{
		Issuer:          s.issuer,
		Subject:         g.subject,
		Audience:        g.clientID,
		Expiry:          jwt.NewNumericDate(now.Add(s.accessTTL)),
		IssuedAt:        jwt.NewNumericDate(now),
		AuthTime:        jwt.NewNumericDate(g.authTime),
		Nonce:           nonce,
		AccessTokenHash: atHash,
	}
	if slices.Contains(g.scopes, oidc.ScopeProfile) {
		c.PreferredUsername = g.subject
		c.Name = g.subject
	}
	token, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	return token, nil
}

// userTokens answers a code or refresh grant: an access token for g's
// resource with scopes (g's, or fewer), a rotated refresh token when the
// client may refresh, and an ID token when openid was granted.
func (s *Server) userTokens(c *client, g refreshGrant, scopes []string, nonce string) (*oidc.AccessTokenResponse, error) {
	access, expires, err := s.mintAccess(accessSpec{
		subject:  g.subject,
		clientID: g.clientID,
		resource: g.resource,
		scopes:   scopes,
		grant:    g.grant,
		loginSeq: g.loginSeq,
	})
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken: access,
		TokenType:   oidc.BearerToken,
		ExpiresIn:   expiresIn(expires, s.now()),
		Scope:       scopes,
	}
	if c.allows(oidc.GrantTypeRefreshToken) {
		refresh := randomID(32)
		g.expires = s.now().Add(s.refreshTTL)
		if err := s.state.addRefresh(refresh, g, s.now()); err != nil {
			return nil, err
		}
		resp.RefreshToken = refresh
	}
	if slices.Contains(scopes, oidc.ScopeOpenID) {
		if resp.IDToken, err = s.mintID(g, nonce, access); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func expiresIn(expires, now time.Time) uint64 {
	d := expires.Sub(now)
	if d < time.Second {
		return 1
	}
	return uint64(d / time.Second)
}

// AccessToken issues an access token for the user subject, as if they had
// logged in through clientID and been granted scopes for resource, without
// the login: a shortcut for tests of resource servers and of token
// exchange. The token is live: introspection, exchange and revocation know
// it.
func (s *Server) AccessToken(subject, clientID, resource string, scopes ...string) (string, error) {
	res, ok := s.resource(resource)
	if !ok {
		return "", fmt.Errorf("devidp: unknown resource %q", resource)
	}
	asked := cleanScopes(scopes)
	if granted := intersect(asked, res.Scopes); len(granted) != len(asked) || len(asked) == 0 {
		return "", fmt.Errorf("devidp: scopes %q are not all allowed for %s", asked, resource)
	}
	for _, sc := range asked {
		if !s.userMay(subject, sc) {
			return "", fmt.Errorf("devidp: %s may not be granted %q", subject, sc)
		}
	}
	token, _, err := s.mintAccess(accessSpec{
		subject:  subject,
		clientID: clientID,
		resource: resource,
		scopes:   asked,
		grant:    randomID(16),
		loginSeq: s.state.loginSeq(),
	})
	return token, err
}
