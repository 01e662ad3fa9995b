package devidp

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// registrationRequest is the client metadata of RFC 7591 §2 this server
// reads; other members are ignored, as §2 asks.
type registrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	Scope                   string   `json:"scope"`
	SoftwareID              string   `json:"software_id"`
	SoftwareVersion         string   `json:"software_version"`
}

// registrationResponse is the RFC 7591 §3.2.1 answer: the client id and the
// metadata as registered, which may differ from what was asked (defaults
// filled in).
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
}

const (
	maxRedirectURIs = 20
	maxURILength    = 2000
	maxNameLength   = 200
)

// register is the RFC 7591 registration endpoint. Anyone may register a
// public client (token_endpoint_auth_method none) for the authorization
// code grant with PKCE, as PingFederate's DCR policy for the MCP demo
// allows.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	// Browser-based MCP clients register from their own origin; the
	// endpoint holds no cookies, so any origin may call it.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization, "+mcpProtocolVersion)
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the request body must be application/json")
		return
	}
	var req registrationRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the request body is not client metadata JSON")
		return
	}
	c, resp, code, desc := newPublicClient(&req, randomID(16), s.now())
	if c == nil {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	c.registered = true // kept by a Store
	evicted, retry, err := s.state.register(c)
	if err != nil {
		// Every registered client is in use: refused, in RFC 7591's error
		// form, with a code of RFC 6749's (it defines none for this).
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Sub(s.now()).Seconds())))))
		s.registerLog.Log(s.log, slog.LevelWarn, "registration refused: every registered client is in use", "max_clients", s.state.maxClients)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable",
			"every registered client is in use (a login under way, or tokens unexpired); try again later")
		return
	}
	if evicted != "" {
		s.registerLog.Log(s.log, slog.LevelWarn, "registered clients at their bound: forgot the least recently used of those not in use", "client_id", evicted)
	}
	s.log.Info("client registered", "client_id", c.id, "client_name", c.name, "redirect_uris", c.redirectURIs)
	writeJSON(w, http.StatusCreated, resp)
}

// newPublicClient checks the metadata of a public client, registered
// (RFC 7591) or described by its metadata document, and returns the client
// known by id. On refusal it returns the RFC 7591 §3.2.2 error code and
// description instead of a client.
func newPublicClient(req *registrationRequest, id string, now time.Time) (c *client, resp *registrationResponse, code, desc string) {
	refuse := func(code, format string, args ...any) (*client, *registrationResponse, string, string) {
		return nil, nil, code, fmt.Sprintf(format, args...)
	}
	switch {
	case len(req.RedirectURIs) == 0:
		return refuse("invalid_redirect_uri", "redirect_uris is required")
	case len(req.RedirectURIs) > maxRedirectURIs:
		return refuse("invalid_redirect_uri", "at most %d redirect_uris", maxRedirectURIs)
	}
	for i, u := range req.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return refuse("invalid_redirect_uri", "redirect_uris[%d] %v", i, err)
		}
	}
	switch req.TokenEndpointAuthMethod {
	case "", string(oidc.AuthMethodNone):
	default:
		return refuse("invalid_client_metadata", "only public clients register here: token_endpoint_auth_method must be none")
	}
	grants := req.GrantTypes
	if len(grants) == 0 {
		grants = []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken)}
	}
	for _, g := range grants {
		if g != string(oidc.GrantTypeCode) && g != string(oidc.GrantTypeRefreshToken) {
			return refuse("invalid_client_metadata", "grant_types may hold only authorization_code and refresh_token")
		}
	}
	if !slices.Contains(grants, string(oidc.GrantTypeCode)) {
		return refuse("invalid_client_metadata", "grant_types must include authorization_code")
	}
	responses := req.ResponseTypes
	if len(responses) == 0 {
		responses = []string{string(oidc.ResponseTypeCode)}
	}
	if slices.ContainsFunc(responses, func(t string) bool { return t != string(oidc.ResponseTypeCode) }) {
		return refuse("invalid_client_metadata", "response_types may hold only code")
	}
	if utf8.RuneCountInString(req.ClientName) > maxNameLength || len(req.ClientURI) > maxURILength ||
		len(req.SoftwareID) > maxNameLength || len(req.SoftwareVersion) > maxNameLength || len(req.Scope) > maxURILength {
		return refuse("invalid_client_metadata", "a metadata value is too long")
	}
	if req.ClientURI != "" {
		if u, err := url.Parse(req.ClientURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return refuse("invalid_client_metadata", "client_uri must be an http(s) URL")
		}
	}
	c = &client{
		id:           id,
		public:       true,
		name:         req.ClientName,
		redirectURIs: slices.Clone(req.RedirectURIs),
		scopes:       cleanScopes([]string{req.Scope}),
		issuedAt:     now,
	}
	for _, g := range grants {
		if !c.allows(oidc.GrantType(g)) {
			c.grantTypes = append(c.grantTypes, oidc.GrantType(g))
		}
	}
	resp = &registrationResponse{
		ClientID:                c.id,
		ClientIDIssuedAt:        now.Unix(),
		RedirectURIs:            c.redirectURIs,
		TokenEndpointAuthMethod: string(oidc.AuthMethodNone),
		ResponseTypes:           []string{string(oidc.ResponseTypeCode)},
		ClientName:              req.ClientName,
		ClientURI:               req.ClientURI,
		Scope:                   req.Scope,
		SoftwareID:              req.SoftwareID,
		SoftwareVersion:         req.SoftwareVersion,
	}
	for _, g := range c.grantTypes {
		resp.GrantTypes = append(resp.GrantTypes, string(g))
	}
	if c.scopes != nil {
		resp.Scope = strings.Join(c.scopes, " ")
	}
	return c, resp, "", ""
}

// checkRedirectURI admits https URLs and http URLs on a loopback address
// (any port: RFC 8252 §7.3), without fragment or user info.
func checkRedirectURI(raw string) error {
	if len(raw) > maxURILength {
		return fmt.Errorf("is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("is not an absolute URL")
	}
	if u.Fragment != "" || u.RawFragment != "" || u.User != nil {
		return fmt.Errorf("must not have a fragment or user info")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback.Is(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("must be https, or http on a loopback address (127.0.0.1, [::1], localhost)")
}

// confidentialClient turns a configured client into a registered one.
func confidentialClient(c Client) (*client, error) {
	if c.ID == "" || c.Secret == "" {
		return nil, fmt.Errorf("devidp: a confidential client needs an ID and a secret")
	}
	rc := &client{id: c.ID, secret: sha256Sum(c.Secret), redirectURIs: slices.Clone(c.RedirectURIs)}
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{string(oidc.GrantTypeClientCredentials), string(oidc.GrantTypeTokenExchange)}
	}
	for _, g := range grants {
		switch gt := oidc.GrantType(g); gt {
		case oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange:
			rc.grantTypes = append(rc.grantTypes, gt)
		default:
			return nil, fmt.Errorf("devidp: client %q: unsupported grant type %q", c.ID, g)
		}
	}
	if rc.allows(oidc.GrantTypeCode) {
		if len(rc.redirectURIs) == 0 {
			return nil, fmt.Errorf("devidp: client %q uses authorization_code but has no redirect URIs", c.ID)
		}
		for _, u := range rc.redirectURIs {
			if err := checkRedirectURI(u); err != nil {
				return nil, fmt.Errorf("devidp: client %q: redirect URI %q %v", c.ID, u, err)
			}
		}
	}
	return rc, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an OAuth error response (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
