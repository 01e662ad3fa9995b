package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/telemetry"
)

// GrantsPath is where PingFederate serves its OAuth Access Grant Management
// Service by user, below its base URL: <GrantsPath>/<userKey>/grants.
const GrantsPath = "/pf-ws/rest/oauth/users"

// GrantsOptions configure a GrantRevoker.
type GrantsOptions struct {
	// URL is the service by user, up to the user key: PingFederate's base
	// URL followed by GrantsPath.
	URL string
	// User and Password are credentials of the Password Credential
	// Validator that PingFederate's OAuth server settings name for the
	// service (HTTP Basic). Never logged, never in an error.
	User, Password string
	// HTTPClient defaults to a client with a 10 s timeout.
	// It is copied, never changed: the copy follows no redirect.
	HTTPClient *http.Client
}

// GrantRevoker revokes a user's persistent grants at the authorization
// server, so that the refresh tokens their clients hold stop working and
// only a new interactive login gives them tokens again.
type GrantRevoker struct{ opts GrantsOptions }

// NewGrantRevoker returns a revoker for the service opts names.
func NewGrantRevoker(opts GrantsOptions) *GrantRevoker {
	// No redirect is followed: Go would turn the DELETE into a GET on a
	// 301/302/303, send the credentials again, and take the listing or
	// login page it lands on for a revocation.
	opts.HTTPClient = outbound.Client(opts.HTTPClient, "oauth")
	opts.URL = strings.TrimSuffix(opts.URL, "/")
	return &GrantRevoker{opts: opts}
}

// RevokeUser revokes every persistent grant of the user whose USER_KEY is
// userKey: DELETE <URL>/<userKey>/grants with X-XSRF-HEADER, which
// PingFederate requires against cross-site request forgery. PingFederate's
// USER_KEY is whatever its grant mapping fills it with; pingmcp passes the
// subject of the user's tokens, so the mapping must make them the same.
// Only 204 (PingFederate's answer) and 200 count as revoked; any other
// answer, a redirect included, is an error saying what the server answered.
func (g *GrantRevoker) RevokeUser(ctx context.Context, userKey string) error {
	if userKey == "" || userKey == "." || userKey == ".." {
		// "." and ".." survive url.PathEscape and would change the path.
		return fmt.Errorf("revoke grants: no user key %q is possible", userKey)
	}
	endpoint := g.opts.URL + "/" + url.PathEscape(userKey) + "/grants"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, endpoint, nil)
	if err != nil {
		return fmt.Errorf("revoke grants: %w", err)
	}
	req.SetBasicAuth(g.opts.User, g.opts.Password)
	req.Header.Set("X-XSRF-HEADER", "pingmcp")
	req.Header.Set("Accept", "application/json")
	resp, err := g.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("revoke grants at %s: %w", endpoint, outbound.Failed(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("revoke grants at %s: HTTP %d redirecting to %s: not followed, nothing was revoked (is --grants-url right?)",
			endpoint, resp.StatusCode, g.shownLocation(resp.Header.Get("Location")))
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("revoke grants at %s: HTTP 401: the grant management credentials (--grants-user, --grants-password) were refused", endpoint)
	}
	return fmt.Errorf("revoke grants at %s: HTTP %d", endpoint, resp.StatusCode)
}

// shownLocation is where a redirect points, as an error may say it: its
// path alone (a query or userinfo may hold anything), quoted and clipped,
// and nothing of it should a reflecting server have put the grant
// manager's credentials there.
func (g *GrantRevoker) shownLocation(loc string) string {
	basic := base64.StdEncoding.EncodeToString([]byte(g.opts.User + ":" + g.opts.Password))
	if g.opts.Password != "" && (strings.Contains(loc, g.opts.Password) || strings.Contains(loc, basic)) {
		return "(a location holding the credentials sent: not shown)"
	}
	if u, err := url.Parse(loc); err == nil {
		loc = u.EscapedPath()
	}
	return strconv.Quote(telemetry.ClipTo(loc, 200))
}
