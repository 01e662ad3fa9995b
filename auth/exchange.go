package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ExchangeOptions configure an Exchanger.
type ExchangeOptions struct {
	// Issuer is the authorization server; its metadata names the token
	// endpoint.
	Issuer string
	// ClientID and ClientSecret authenticate the exchange (HTTP Basic, as
	// PingFederate's token exchange processor expects).
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client
}

// Exchanger swaps a user's access token for one meant for a downstream API
// (RFC 8693), the way PingFederate takes it.
type Exchanger struct {
	opts ExchangeOptions

	mu sync.Mutex
	te *tokenexchange.OAuthTokenExchange // discovered on first use
}

// NewExchanger returns an exchanger; it contacts the issuer on first use.
func NewExchanger(opts ExchangeOptions) *Exchanger {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Exchanger{opts: opts}
}

// Exchanged is a token obtained by exchange.
type Exchanged struct {
	// Token is the access token, for the downstream call's Authorization
	// header only: never log it, never show it.
	Token  string
	Scopes []string
	Expiry time.Time
	// Claims are the token's claims when it is a JWT, read without
	// verification (the token came straight from the issuer over its token
	// endpoint): for display only.
	Claims map[string]any
}

// ExchangeError is the authorization server's refusal of an exchange.
type ExchangeError struct {
	Code        string
	Description string
}

func (e *ExchangeError) Error() string {
	if e.Description == "" {
		return "token exchange refused: " + e.Code
	}
	return "token exchange refused: " + e.Code + ": " + e.Description
}

// Exchange swaps subjectToken for an access token for resource with scopes.
func (x *Exchanger) Exchange(ctx context.Context, subjectToken, resource string, scopes []string) (*Exchanged, error) {
	te, err := x.client(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, subjectToken, oidc.AccessTokenType, "", "",
		[]string{resource}, nil, scopes, oidc.AccessTokenType)
	if err != nil {
		var oerr *oidc.Error
		if errors.As(err, &oerr) {
			return nil, &ExchangeError{Code: string(oerr.ErrorType), Description: oerr.Description}
		}
		// Transport trouble; the zitadel client's errors name the endpoint,
		// never the request's tokens.
		return nil, fmt.Errorf("token exchange for %s: %w", resource, err)
	}
	if resp.AccessToken == "" {
		return nil, fmt.Errorf("token exchange for %s: no access token in the response", resource)
	}
	out := &Exchanged{Token: resp.AccessToken, Scopes: []string(resp.Scopes)}
	if resp.ExpiresIn > 0 {
		out.Expiry = time.Now().Add(time.Duration(resp.ExpiresIn) * time.Second)
	}
	if tok, err := jwt.ParseSigned(resp.AccessToken, Algorithms); err == nil {
		var claims map[string]any
		if tok.UnsafeClaimsWithoutVerification(&claims) == nil {
			out.Claims = claims
			if len(out.Scopes) == 0 {
				out.Scopes, _ = scopesOf(claims["scope"])
			}
			if exp, ok := claims["exp"].(float64); ok && out.Expiry.IsZero() {
				out.Expiry = time.Unix(int64(exp), 0)
			}
		}
	}
	return out, nil
}

func (x *Exchanger) client(ctx context.Context) (*tokenexchange.OAuthTokenExchange, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.te != nil {
		return x.te, nil
	}
	md, err := DiscoverMetadata(ctx, x.opts.HTTPClient, x.opts.Issuer)
	if err != nil {
		return nil, err
	}
	if md.TokenEndpoint == "" {
		return nil, fmt.Errorf("issuer %s publishes no token_endpoint", x.opts.Issuer)
	}
	te, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, x.opts.Issuer, x.opts.ClientID, x.opts.ClientSecret,
		tokenexchange.WithHTTPClient(x.opts.HTTPClient), tokenexchange.WithStaticTokenEndpoint(x.opts.Issuer, md.TokenEndpoint))
	if err != nil {
		return nil, fmt.Errorf("token exchange client: %w", err)
	}
	x.te = te.(*tokenexchange.OAuthTokenExchange)
	return x.te, nil
}

// ScopeKey is the canonical form of a scope set, for cache keys.
func ScopeKey(scopes []string) string {
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(scopes))), " ")
}
