package devidp

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// endpoints is the op.Server behind PingFederate's OAuth paths. op has
// parsed each request, and for the token and revocation endpoints
// authenticated the client (VerifyClient) and checked that it may use the
// grant, before a method here runs.
type endpoints struct {
	op.UnimplementedServer
	s *Server
}

func (e *endpoints) Health(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

func (e *endpoints) Ready(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

func (e *endpoints) Discovery(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(e.s.metadata()), nil
}

func (e *endpoints) Keys(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &e.s.key.PublicKey,
		KeyID:     e.s.keyID,
		Algorithm: string(jose.RS256),
		Use:       "sig",
	}}}), nil
}

// metadataServer serves the same document as OpenID discovery and as RFC
// 8414 metadata, as PingFederate does.
type metadataServer struct {
	op.UnimplementedMetadataServer
	s *Server
}

func (m metadataServer) OpenIDConfiguration(_ context.Context, r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	return m.serve(r)
}

func (m metadataServer) AuthorizationServerMetadata(_ context.Context, r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	return m.serve(r)
}

// serve answers for this issuer only (RFC 8414 §3.3): the well-known path
// names no issuer path, or the issuer's own (when the handler is mounted
// below a prefix, the prefix was stripped).
func (m metadataServer) serve(r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	if p := r.Data.IssuerPath; p != "" && p != m.s.issuerPath {
		return nil, op.NewStatusError(oidc.ErrInvalidRequest().WithDescription("no such issuer"), http.StatusNotFound)
	}
	return op.NewResponse(m.s.metadata()), nil
}

// serverMetadata is op's metadata and what op has no field for.
type serverMetadata struct {
	*oidc.DiscoveryConfiguration
	// AuthorizationResponseIssParameterSupported: every authorization
	// response carries iss (RFC 9207 §3).
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

func (s *Server) metadata() *serverMetadata {
	return &serverMetadata{DiscoveryConfiguration: s.discovery(), AuthorizationResponseIssParameterSupported: true}
}

func (s *Server) discovery() *oidc.DiscoveryConfiguration {
	var scopes []string
	for _, r := range s.resources {
		scopes = append(scopes, r.Scopes...)
	}
	return &oidc.DiscoveryConfiguration{
		Issuer:                 s.issuer,
		AuthorizationEndpoint:  s.issuer + PathAuthorize,
		TokenEndpoint:          s.issuer + PathToken,
		IntrospectionEndpoint:  s.issuer + PathIntrospect,
		RevocationEndpoint:     s.issuer + PathRevoke,
		UserinfoEndpoint:       s.issuer + PathUserinfo,
		JwksURI:                s.issuer + PathJWKS,
		RegistrationEndpoint:   s.issuer + PathRegister,
		ScopesSupported:        cleanScopes(scopes),
		ResponseTypesSupported: []string{string(oidc.ResponseTypeCode)},
		ResponseModesSupported: []string{
			string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment), string(oidc.ResponseModeFormPost),
		},
		GrantTypesSupported: []oidc.GrantType{
			oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange,
		},
		SubjectTypesSupported:                     []string{"public"},
		IDTokenSigningAlgValuesSupported:          []string{string(jose.RS256)},
		TokenEndpointAuthMethodsSupported:         []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic},
		RevocationEndpointAuthMethodsSupported:    []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic},
		IntrospectionEndpointAuthMethodsSupported: []oidc.AuthMethod{oidc.AuthMethodBasic},
		ClaimsSupported: []string{
			"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "act",
			"auth_time", "nonce", "at_hash", "preferred_username", "name",
		},
		CodeChallengeMethodsSupported:     []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256},
		ClientIDMetadataDocumentSupported: s.documents != nil,
	}
}

// VerifyAuthRequest finds the client of an authorization request. A request
// that names no scope is given every scope of its resource but those
// restricted to some users (Options.ScopeUsers: the admin scope), as
// PingFederate grants a client's default scopes, which never include an
// exclusive scope.
//
// Its errors are never redirected (RFC 6749 §4.1.2.1): the client, and so
// its redirect URI, are not established. A client of a metadata document
// must name one of the document's redirect URIs exactly (the draft, after
// RFC 9700): op would let a loopback one differ in its port. A registered
// client's may differ from one it registered in its loopback port alone
// (RFC 8252 §7.3): op would let it differ in scheme, host, user info and
// fragment too, comparing only path and query.
func (e *endpoints) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	c, err := e.s.client(ctx, r.Data.ClientID)
	if err != nil {
		if errors.Is(err, errFull) {
			return nil, unavailable(err)
		}
		return nil, oidc.ErrInvalidClient().WithDescription("%s", err.Error())
	}
	if c.fromDocument && r.Data.RedirectURI != "" && !slices.Contains(c.redirectURIs, r.Data.RedirectURI) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not one of the redirect_uris of the client's metadata document (they must match exactly)")
	}
	if c.public && r.Data.RedirectURI != "" && !slices.ContainsFunc(c.redirectURIs, func(reg string) bool { return sameButPort(reg, r.Data.RedirectURI) }) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not one of the client's redirect_uris (they must match exactly, but for a loopback one's port)")
	}
	if len(cleanScopes(r.Data.Scopes)) == 0 {
		if res, err := e.s.target(r.Form["resource"], r.Form["aud"]); err == nil {
			r.Data.Scopes = slices.DeleteFunc(slices.Clone(res.Scopes), e.s.restricted)
		}
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: c}, nil
}

// Authorize runs once op has validated the redirect URI, response type and
// scopes, so its errors are redirected to the client. It keeps the request
// and sends the user to the login form.
func (e *endpoints) Authorize(_ context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	s, c, d := e.s, r.Client.(*client), r.Data
	if d.RequestParam != "" {
		return nil, oidc.ErrRequestNotSupported()
	}
	switch d.ResponseMode {
	case "", oidc.ResponseModeQuery, oidc.ResponseModeFragment, oidc.ResponseModeFormPost:
	default:
		return nil, oidc.ErrInvalidRequest().WithDescription("unsupported response_mode")
	}
	if err := checkChallenge(c, d.CodeChallenge, d.CodeChallengeMethod); err != nil {
		return nil, err
	}
	if slices.Contains(d.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("there are no sessions: every authorization asks for a login")
	}
	res, err := s.target(r.Form["resource"], r.Form["aud"])
	if err != nil {
		return nil, err
	}
	scopes := intersect(cleanScopes(d.Scopes), res.Scopes)
	if c.public {
		// A restricted scope is exclusive (PingFederate's Exclusive Scopes):
		// only configured clients may have it. Anyone can register a client
		// or publish a metadata document, and so have any web page send an
		// administrator to log in through it; the scope is left out, as a
		// scope the user may not have is.
		scopes = slices.DeleteFunc(scopes, s.restricted)
	}
	if len(scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("no requested scope is allowed for this resource")
	}
	ar := &authRequest{
		id:           randomID(24),
		clientID:     c.id,
		redirectURI:  d.RedirectURI,
		responseMode: d.ResponseMode,
		state:        d.State,
		nonce:        d.Nonce,
		scopes:       scopes,
		resource:     res.URI,
		challenge:    d.CodeChallenge,
		created:      s.now(),
	}
	if err := s.state.addAuthRequest(ar); err != nil {
		return nil, unavailable(err)
	}
	return op.NewRedirect(s.issuer + PathLogin + "?id=" + url.QueryEscape(ar.id)), nil
}

// sameButPort reports whether uri is the registered redirect URI reg, or,
// reg being an http one on a loopback address, the same but for its port
// (RFC 8252 §7.3): the same host spelt the same way, and the same path and
// query, byte for byte.
func sameButPort(reg, uri string) bool {
	if uri == reg {
		return true
	}
	r, err := url.Parse(reg)
	if err != nil || r.Scheme != "http" || !loopback.Is(r.Hostname()) {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.Hostname() != r.Hostname() {
		return false
	}
	rest := func(raw string, u *url.URL) (string, bool) {
		return strings.CutPrefix(raw, "http://"+u.Host)
	}
	rr, ok1 := rest(reg, r)
	ur, ok2 := rest(uri, u)
	return ok1 && ok2 && rr == ur
}

// checkChallenge requires PKCE with S256 of public clients, and refuses
// any other method from anyone (plain protects nothing a TLS-less loopback
// redirect leaks).
func checkChallenge(c *client, challenge string, method oidc.CodeChallengeMethod) error {
	switch {
	case challenge == "" && c.public:
		return oidc.ErrInvalidRequest().WithDescription("code_challenge is required (PKCE with S256)")
	case challenge == "":
		return nil
	case method != oidc.CodeChallengeMethodS256:
		return oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	case len(challenge) != 43 || !isUnreserved(challenge):
		return oidc.ErrInvalidRequest().WithDescription("code_challenge is not a base64url SHA-256 digest")
	}
	return nil
}

// isUnreserved checks the PKCE character set (RFC 7636 §4.1).
func isUnreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// VerifyClient authenticates the client of a token or revocation request:
// a public client by its id alone, a confidential one by HTTP Basic only.
func (e *endpoints) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientAssertion != "" {
		return nil, clientError("client assertions are not supported")
	}
	c, err := e.s.client(ctx, r.Data.ClientID)
	switch {
	case errors.Is(err, errUnknownClient):
		return nil, clientError("unknown client")
	case errors.Is(err, errFull):
		return nil, unavailable(err)
	case err != nil:
		return nil, clientError(err.Error())
	}
	if c.public {
		if r.Data.ClientSecret != "" {
			return nil, clientError("a public client has no secret")
		}
		return c, nil
	}
	return e.s.authenticate(r.Header, r.Data)
}

// authenticate checks a confidential client's HTTP Basic credentials.
func (s *Server) authenticate(h http.Header, cc *op.ClientCredentials) (*client, error) {
	if _, _, ok := (&http.Request{Header: h}).BasicAuth(); !ok {
		return nil, clientError("client authentication with HTTP Basic is required")
	}
	c := s.state.client(cc.ClientID, s.now())
	if c == nil || !c.secretMatches(cc.ClientSecret) {
		return nil, clientError("client authentication failed")
	}
	return c, nil
}

func clientError(description string) error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription("%s", description), http.StatusUnauthorized)
}

// unavailable answers a request the server cannot take now (a bound on
// memory is reached), whose grant was revoked while it ran, or that it
// could not complete.
func unavailable(err error) error {
	if errors.Is(err, errGrantRevoked) {
		return oidc.ErrInvalidGrant().WithDescription("the grant was revoked")
	}
	if errors.Is(err, errFull) {
		return op.NewStatusError(&oidc.Error{ErrorType: "temporarily_unavailable", Description: err.Error()}, http.StatusServiceUnavailable)
	}
	return oidc.ErrServerError().WithParent(err)
}

// tokenResponse marks a token response uncacheable (RFC 6749 §5.1).
func tokenResponse(data any) *op.Response {
	resp := op.NewResponse(data)
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp
}

// CodeExchange redeems a code, once. A code presented again revokes the
// grant its first redemption began, every token issued from it and
// refreshed or exchanged since (RFC 6749 §4.1.2): one of the two who
// presented it stole it, and the server cannot tell which.
func (e *endpoints) CodeExchange(_ context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	s, c := e.s, r.Client.(*client)
	grant := randomID(16)
	ar, ok := s.state.redeemCode(r.Data.Code, grant, s.now().Add(max(s.accessTTL, s.refreshTTL)), s.now())
	switch {
	case !ok:
		if g := s.state.reusedCode(r.Data.Code, s.now()); g != "" {
			s.state.revokeGrant(g, s.now())
			s.log.Warn("a redeemed authorization code was presented again: the tokens issued from it are revoked (RFC 6749 §4.1.2)", "client_id", c.id)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid, expired or used code")
	case ar.clientID != c.id:
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	case r.Data.RedirectURI != ar.redirectURI:
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	case slices.ContainsFunc(r.Form["resource"], func(res string) bool { return res != ar.resource }):
		return nil, oidc.ErrInvalidTarget().WithDescription("resource differs from the authorization request's")
	case ar.challenge == "" && r.Data.CodeVerifier != "":
		return nil, oidc.ErrInvalidRequest().WithDescription("code_verifier without a code_challenge")
	case ar.challenge != "" && r.Data.CodeVerifier == "":
		return nil, oidc.ErrInvalidRequest().WithDescription("code_verifier is required")
	case ar.challenge != "" && !verifierMatches(r.Data.CodeVerifier, ar.challenge):
		return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier does not match the code_challenge")
	}
	g := refreshGrant{
		grant:    grant,
		clientID: c.id,
		subject:  ar.subject,
		resource: ar.resource,
		scopes:   ar.scopes,
		authTime: ar.authTime,
		loginSeq: ar.loginSeq,
	}
	resp, err := s.userTokens(c, g, ar.scopes, ar.nonce)
	if err != nil {
		return nil, unavailable(err)
	}
	s.log.Debug("tokens issued", "grant_type", oidc.GrantTypeCode, "client_id", c.id, "sub", g.subject, "aud", g.resource)
	return tokenResponse(resp), nil
}

func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || !isUnreserved(verifier) {
		return false
	}
	return oidc.VerifyCodeChallenge(&oidc.CodeChallenge{Challenge: challenge, Method: oidc.CodeChallengeMethodS256}, verifier)
}

// RefreshToken rotates: the presented refresh token is spent, a new one
// issued. A narrower scope or the same resource may be asked for. A spent
// token presented again revokes its grant, every refresh and access token
// descending from its login: either the client or someone who stole the
// token is using it, and the server cannot tell which (RFC 9700 §4.14.2);
// by its own client within refreshReuseGrace of its spending (two
// refreshes at once), it is only refused.
func (e *endpoints) RefreshToken(_ context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	s, c := e.s, r.Client.(*client)
	g, ok := s.state.peekRefresh(r.Data.RefreshToken, s.now())
	if !ok {
		if grant := s.state.stolenGrant(r.Data.RefreshToken, c.id, s.now()); grant != "" {
			s.reused(grant, c.id)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid, expired or used refresh token")
	}
	if g.clientID != c.id {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid, expired or used refresh token")
	}
	scopes := g.scopes
	if asked := cleanScopes(r.Data.Scopes); len(asked) > 0 {
		if len(intersect(asked, g.scopes)) != len(asked) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope exceeds what was granted")
		}
		scopes = asked
	}
	for _, res := range r.Form["resource"] {
		if res != g.resource {
			return nil, oidc.ErrInvalidTarget().WithDescription("the refresh token is for another resource")
		}
	}
	if !s.state.consumeRefresh(r.Data.RefreshToken, s.now()) {
		// Spent a moment ago by a refresh at once with this one.
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid, expired or used refresh token")
	}
	resp, err := s.userTokens(c, g, scopes, "")
	if err != nil {
		// Nothing issued: the client's retry with the same token is not a
		// theft.
		s.state.unspend(r.Data.RefreshToken, g)
		return nil, unavailable(err)
	}
	s.log.Debug("tokens issued", "grant_type", oidc.GrantTypeRefreshToken, "client_id", c.id, "sub", g.subject, "aud", g.resource)
	return tokenResponse(resp), nil
}

// TokenExchange implements RFC 8693 as PingFederate takes it: the subject
// token is an access token of this server, the resource names the
// downstream API, and the issued token is delegated to the exchanging
// client (act). Its sub and client_id are the subject token's: the user,
// and the client the user authorized; act.sub says who acts for them.
func (e *endpoints) TokenExchange(_ context.Context, r *op.ClientRequest[oidc.TokenExchangeRequest]) (*op.Response, error) {
	s, c, d := e.s, r.Client.(*client), r.Data
	switch {
	case d.SubjectTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("subject_token_type must be %s", oidc.AccessTokenType)
	case d.RequestedTokenType != "" && d.RequestedTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("requested_token_type must be %s", oidc.AccessTokenType)
	case (d.ActorToken == "") != (d.ActorTokenType == ""):
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token and actor_token_type go together")
	case d.ActorTokenType != "" && d.ActorTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token_type must be %s", oidc.AccessTokenType)
	case len(d.Resource) == 0 && len(d.Audience) == 0:
		return nil, oidc.ErrInvalidTarget().WithDescription("resource is required")
	}
	subject, _, live, err := s.verifyAccess(d.SubjectToken)
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("subject_token is not a valid access token of this server: %v", err)
	}
	actor := c.id
	if d.ActorToken != "" {
		a, _, _, err := s.verifyAccess(d.ActorToken)
		if err != nil {
			return nil, oidc.ErrInvalidGrant().WithDescription("actor_token is not a valid access token of this server: %v", err)
		}
		if a.ClientID != c.id {
			return nil, oidc.ErrInvalidGrant().WithDescription("actor_token was not issued to the exchanging client")
		}
		actor = a.Subject
	}
	res, err := s.target(d.Resource, d.Audience)
	if err != nil {
		return nil, err
	}
	asked := cleanScopes(d.Scopes)
	if len(asked) == 0 {
		asked = subject.scopes()
	}
	scopes := intersect(asked, subject.scopes(), res.Scopes)
	if len(scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("no requested scope is both held by the subject token and allowed for the resource")
	}
	act := map[string]any{"sub": actor}
	if subject.Act != nil {
		act["act"] = subject.Act
	}
	token, expires, err := s.mintAccess(accessSpec{
		subject:  subject.Subject,
		clientID: subject.ClientID,
		resource: res.URI,
		scopes:   scopes,
		act:      act,
		grant:    live.grant,
		loginSeq: live.loginSeq,
		notAfter: subject.Expiry.Time(),
	})
	if err != nil {
		return nil, unavailable(err)
	}
	s.log.Debug("token exchanged", "client_id", c.id, "sub", subject.Subject, "aud", res.URI, "scope", strings.Join(scopes, " "))
	return tokenResponse(&oidc.TokenExchangeResponse{
		AccessToken:     token,
		IssuedTokenType: oidc.AccessTokenType,
		TokenType:       oidc.BearerToken,
		ExpiresIn:       expiresIn(expires, s.now()),
		Scopes:          scopes,
	}), nil
}

// reused revokes grant, whose spent refresh token client presented again.
func (s *Server) reused(grant, clientID string) {
	s.state.revokeGrant(grant, s.now())
	s.log.Warn("a spent refresh token was presented again: its grant is revoked (RFC 9700 §4.14.2)", "client_id", clientID)
}

// userScopes mean something only for a user; a client's own token does not
// carry them.
var userScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopePhone, oidc.ScopeAddress, oidc.ScopeOfflineAccess}

// ClientCredentialsExchange issues a confidential client a token of its
// own (sub = client_id), e.g. an actor_token for token exchange. It carries
// neither the scopes only a user can hold nor those Options.ScopeUsers
// keeps for some users (the admin scope): a client is none of them, and
// asking for one, or for nothing (the resource's scopes), leaves it out.
func (e *endpoints) ClientCredentialsExchange(_ context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	s, c := e.s, r.Client.(*client)
	res, err := s.target(r.Form["resource"], r.Form["audience"])
	if err != nil {
		return nil, err
	}
	asked := cleanScopes(r.Data.Scope)
	if len(asked) == 0 {
		asked = res.Scopes
	}
	scopes := slices.DeleteFunc(intersect(asked, res.Scopes), func(sc string) bool { return slices.Contains(userScopes, sc) || s.restricted(sc) })
	if len(scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("no requested scope is allowed for the resource")
	}
	token, expires, err := s.mintAccess(accessSpec{subject: c.id, clientID: c.id, resource: res.URI, scopes: scopes})
	if err != nil {
		return nil, unavailable(err)
	}
	s.log.Debug("tokens issued", "grant_type", oidc.GrantTypeClientCredentials, "client_id", c.id, "aud", res.URI)
	return tokenResponse(&oidc.AccessTokenResponse{
		AccessToken: token,
		TokenType:   oidc.BearerToken,
		ExpiresIn:   expiresIn(expires, s.now()),
		Scope:       scopes,
	}), nil
}

// Introspect answers RFC 7662 for a confidential client: the claims of a
// live access token, else only active false (refresh tokens included).
func (e *endpoints) Introspect(_ context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	s := e.s
	if _, err := s.authenticate(r.Header, r.Data.ClientCredentials); err != nil {
		return nil, err
	}
	inactive := tokenResponse(map[string]any{"active": false})
	if r.Data.IntrospectionRequest == nil {
		return inactive, nil
	}
	claims, all, _, err := s.verifyAccess(r.Data.Token)
	if err != nil {
		return inactive, nil
	}
	out := maps.Clone(all)
	out["active"] = true
	out["token_type"] = oidc.BearerToken
	if _, ok := s.users[claims.Subject]; ok {
		out["username"] = claims.Subject
	}
	return tokenResponse(out), nil
}

func (e *endpoints) UserInfo(_ context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	claims, _, _, err := e.s.verifyAccess(r.Data.AccessToken)
	if err != nil {
		return nil, op.NewStatusError(&oidc.Error{ErrorType: "invalid_token", Description: "the access token is not valid"}, http.StatusUnauthorized)
	}
	if !slices.Contains(claims.scopes(), oidc.ScopeOpenID) {
		return nil, op.NewStatusError(&oidc.Error{ErrorType: "insufficient_scope", Description: "the openid scope is required"}, http.StatusForbidden)
	}
	info := map[string]any{"sub": claims.Subject}
	if slices.Contains(claims.scopes(), oidc.ScopeProfile) {
		info["preferred_username"] = claims.Subject
		info["name"] = claims.Subject
	}
	return op.NewResponse(info), nil
}

// Revocation implements RFC 7009. Revoking a refresh token revokes its
// grant: every access token descending from the same login, exchanged ones
// included. An access token may be revoked by its client or by the client
// it was delegated to (act). Unknown tokens are answered 200.
func (e *endpoints) Revocation(_ context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	s, id := e.s, r.Client.GetID()
	if g, ok := s.state.peekRefresh(r.Data.Token, s.now()); ok {
		if g.clientID != id {
			return nil, oidc.ErrInvalidGrant().WithDescription("the token was issued to another client")
		}
		s.state.revokeGrant(g.grant, s.now())
		s.log.Debug("refresh token revoked", "client_id", id, "sub", g.subject)
		return op.NewResponse(struct{}{}), nil
	}
	if claims, _, live, err := s.verifyAccess(r.Data.Token); err == nil {
		if claims.ClientID != id && live.actor != id {
			return nil, oidc.ErrInvalidGrant().WithDescription("the token was issued to another client")
		}
		s.state.revokeAccess(claims.ID)
		s.log.Debug("access token revoked", "client_id", id, "sub", claims.Subject)
	}
	return op.NewResponse(struct{}{}), nil
}
