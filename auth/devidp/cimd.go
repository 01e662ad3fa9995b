package devidp

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
// preferred to registration by MCP 2025-11-25), as PingFederate 13.1 does
// them: a client_id that is an https URL names the client's metadata
// document; the server fetches it, checks it and keeps the client it
// describes in a bounded cache for as long as the document's Cache-Control
// allows (within bounds). Such clients are a cache of documents, not
// registrations: nothing about them is kept beyond the cache.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ClientIDMetadata configures Client ID Metadata Documents. Zero fields take
// the defaults given.
type ClientIDMetadata struct {
	// AllowLoopback lets documents be fetched from loopback addresses, as
	// the draft allows an authorization server on loopback for development
	// and tests (§ SSRF). Other special-use addresses are never fetched.
	AllowLoopback bool
	// CAFile is a PEM file of certificate authorities trusted for fetching
	// documents besides the system's (tests).
	CAFile string
	// MinCache and MaxCache bound how long a document is kept: its
	// Cache-Control max-age clamped between them; MinCache without one.
	// Defaults: 1 minute and 24 hours.
	MinCache, MaxCache time.Duration
	// MaxDocuments bounds the documents kept (default 1000); past it, the
	// one that expires first is dropped.
	MaxDocuments int
	// FetchTimeout bounds a fetch, connecting to reading the body
	// (default 5 s).
	FetchTimeout time.Duration
	// MaxDocumentBytes bounds a document (default 5 KiB, the draft's
	// recommendation); a longer one is refused.
	MaxDocumentBytes int64
}

const (
	defaultMinCache         = time.Minute
	defaultMaxCache         = 24 * time.Hour
	defaultMaxDocuments     = 1000
	defaultFetchTimeout     = 5 * time.Second
	defaultMaxDocumentBytes = 5 << 10
	// maxConcurrentFetches bounds the fetches under way: each authorization
	// request may name a URL of anyone's choosing.
	maxConcurrentFetches = 8
)

// errFetchesBusy refuses a fetch while maxConcurrentFetches are under way.
var errFetchesBusy = fmt.Errorf("too many client metadata documents being fetched, try again later: %w", errFull)

// isClientIDURL reports a client_id that names a metadata document. Ids
// this server issues never start with https:// (randomID is base64url).
func isClientIDURL(id string) bool { return strings.HasPrefix(id, "https://") }

// metadataDocuments fetches, checks and caches clients' metadata documents.
type metadataDocuments struct {
	opts  ClientIDMetadata
	http  *http.Client
	now   func() time.Time
	log   *slog.Logger
	slots chan struct{} // one per fetch under way

	mu      sync.Mutex
	clients map[string]cachedClient
}

type cachedClient struct {
	c       *client
	expires time.Time
}

func newMetadataDocuments(opts ClientIDMetadata, now func() time.Time, log *slog.Logger) (*metadataDocuments, error) {
	if opts.MinCache <= 0 {
		opts.MinCache = defaultMinCache
	}
	if opts.MaxCache <= 0 {
		opts.MaxCache = defaultMaxCache
	}
	if opts.MaxCache < opts.MinCache {
		return nil, fmt.Errorf("devidp: client metadata documents: the longest cache lifetime %v is shorter than the shortest %v", opts.MaxCache, opts.MinCache)
	}
	if opts.MaxDocuments <= 0 {
		opts.MaxDocuments = defaultMaxDocuments
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = defaultFetchTimeout
	}
	if opts.MaxDocumentBytes <= 0 {
		opts.MaxDocumentBytes = defaultMaxDocumentBytes
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("devidp: client metadata documents: CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("devidp: client metadata documents: CA file %s holds no PEM certificate", opts.CAFile)
		}
	}
	guard := addressGuard{allowLoopback: opts.AllowLoopback}
	dialer := &net.Dialer{Timeout: opts.FetchTimeout, Control: guard.control}
	transport := &http.Transport{
		Proxy:                  nil, // the address dialed is the one checked
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    opts.FetchTimeout,
		ResponseHeaderTimeout:  opts.FetchTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
	}
	return &metadataDocuments{
		opts: opts,
		http: &http.Client{
			Transport: transport,
			Timeout:   opts.FetchTimeout,
			// The draft: redirects are not followed (the document's URL is
			// the client's identity).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:     now,
		log:     log,
		slots:   make(chan struct{}, maxConcurrentFetches),
		clients: map[string]cachedClient{},
	}, nil
}

// documentError is why a client's metadata document was refused, worded
// for the client: it never holds what the document's server answered
// beyond its status, nor the address it resolved to.
type documentError struct{ reason string }

func (e *documentError) Error() string { return e.reason }

func documentRefused(format string, args ...any) error {
	return &documentError{reason: fmt.Sprintf(format, args...)}
}

// client returns the client the metadata document at id describes, from
// the cache or fetched now. Its errors are a *documentError (invalid_client)
// or errFetchesBusy.
func (d *metadataDocuments) client(ctx context.Context, id string) (*client, error) {
	now := d.now()
	d.mu.Lock()
	if e, ok := d.clients[id]; ok && now.Before(e.expires) {
		d.mu.Unlock()
		return e.c, nil
	}
	d.mu.Unlock()

	if err := checkClientIDURL(id); err != nil {
		return nil, err
	}
	select {
	case d.slots <- struct{}{}:
		defer func() { <-d.slots }()
	default:
		return nil, errFetchesBusy
	}
	body, maxAge, err := d.fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := d.parse(id, body)
	if err != nil {
		return nil, err
	}
	lifetime := min(max(maxAge, d.opts.MinCache), d.opts.MaxCache)
	d.keep(id, c, now.Add(lifetime))
	d.log.Info("client metadata document fetched", "client_id", id, "client_name", c.name, "redirect_uris", c.redirectURIs, "cached_for", lifetime)
	return c, nil
}

// cached returns the client of a cached document, without fetching; nil
// when none is cached.
func (d *metadataDocuments) cached(id string) *client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clients[id].c
}

// keep caches c until expires. Past MaxDocuments it drops expired
// documents, then the one expiring first.
func (d *metadataDocuments) keep(id string, c *client, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.clients[id]; !ok && len(d.clients) >= d.opts.MaxDocuments {
		now := d.now()
		soonest := ""
		for k, e := range d.clients {
			if !now.Before(e.expires) {
				delete(d.clients, k)
			} else if soonest == "" || e.expires.Before(d.clients[soonest].expires) {
				soonest = k
			}
		}
		if len(d.clients) >= d.opts.MaxDocuments {
			delete(d.clients, soonest)
		}
	}
	d.clients[id] = cachedClient{c: c, expires: expires}
}

// checkClientIDURL applies the draft's rules for a Client Identifier URL.
func checkClientIDURL(id string) error {
	if len(id) > maxURILength {
		return documentRefused("the client_id URL is too long")
	}
	u, err := url.Parse(id)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		return documentRefused("the client_id is not an https URL")
	case u.User != nil:
		return documentRefused("the client_id URL must not have user info")
	case u.Fragment != "" || strings.Contains(id, "#"):
		return documentRefused("the client_id URL must not have a fragment")
	case u.Path == "":
		return documentRefused("the client_id URL must have a path")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if s := strings.ToLower(seg); s == "." || s == ".." || s == "%2e" || s == "%2e%2e" || s == ".%2e" || s == "%2e." {
			return documentRefused("the client_id URL must not have . or .. path segments")
		}
	}
	return nil
}

// fetch GETs the document at id within the bounds, and returns its body and
// how long it may be cached for.
func (d *metadataDocuments) fetch(ctx context.Context, id string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, documentRefused("the client_id is not an https URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		// Which of refusing the address, not resolving or not reaching it
		// stays in the log: a client must not map what this server reaches.
		d.log.Info("client metadata document not fetched", "client_id", id, "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, documentRefused("the client metadata document could not be fetched within %v", d.opts.FetchTimeout)
		}
		return nil, 0, documentRefused("the client metadata document could not be fetched (its host unreachable, or at an address this server does not fetch from)")
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 3:
		return nil, 0, documentRefused("the client metadata document's URL answered a redirect (%d); redirects are not followed", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, 0, documentRefused("the client metadata document's URL answered %d, not 200", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		!(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil, 0, documentRefused("the client metadata document is not served as application/json")
	}
	if resp.ContentLength > d.opts.MaxDocumentBytes {
		return nil, 0, documentRefused("the client metadata document is larger than %d bytes", d.opts.MaxDocumentBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, d.opts.MaxDocumentBytes+1))
	switch {
	case err != nil:
		d.log.Info("client metadata document not read", "client_id", id, "err", err)
		return nil, 0, documentRefused("the client metadata document could not be read within %v", d.opts.FetchTimeout)
	case int64(len(body)) > d.opts.MaxDocumentBytes:
		return nil, 0, documentRefused("the client metadata document is larger than %d bytes", d.opts.MaxDocumentBytes)
	}
	return body, cacheLifetime(resp.Header), nil
}

// cacheLifetime reads Cache-Control's max-age (RFC 9111 §5.2.2.1); no-store
// and no-cache mean none. Without it, 0: the caller's minimum applies.
func cacheLifetime(h http.Header) time.Duration {
	var age time.Duration
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && n > 0 {
					age = time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
				}
			}
		}
	}
	return age
}

// metadataDocument is the client metadata of a document: RFC 7591's, as
// registration reads it, and what the draft forbids in a document.
type metadataDocument struct {
	registrationRequest
	ClientID              string          `json:"client_id"`
	ClientSecret          json.RawMessage `json:"client_secret"`
	ClientSecretExpiresAt json.RawMessage `json:"client_secret_expires_at"`
	JWKS                  *struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	} `json:"jwks"`
}

// parse checks a document fetched from id and returns its client.
func (d *metadataDocuments) parse(id string, body []byte) (*client, error) {
	var doc metadataDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, documentRefused("the client metadata document is not a JSON object of client metadata")
	}
	switch {
	case doc.ClientID != id:
		return nil, documentRefused("the client metadata document's client_id is not the URL it was fetched from")
	case doc.ClientSecret != nil || doc.ClientSecretExpiresAt != nil:
		return nil, documentRefused("a client metadata document must not hold client_secret or client_secret_expires_at")
	}
	if doc.JWKS != nil {
		for _, k := range doc.JWKS.Keys {
			if k["d"] != nil || k["k"] != nil {
				return nil, documentRefused("a client metadata document must not hold private or symmetric keys")
			}
		}
	}
	switch doc.TokenEndpointAuthMethod {
	case "", "none":
	case "private_key_jwt":
		return nil, documentRefused("token_endpoint_auth_method private_key_jwt is not supported here: only public clients (none)")
	default:
		return nil, documentRefused("token_endpoint_auth_method %q cannot be used with a metadata document: only none", doc.TokenEndpointAuthMethod)
	}
	c, _, code, desc := newPublicClient(&doc.registrationRequest, id, d.now())
	if c == nil {
		return nil, documentRefused("the client metadata document is refused (%s): %s", code, desc)
	}
	c.fromDocument = true
	return c, nil
}

// addressGuard refuses to connect to special-use addresses (RFC 6890), and
// to loopback unless allowed. It checks the address actually dialed, after
// resolution, so that a name resolving differently on a second look (DNS
// rebinding) cannot slip through.
type addressGuard struct{ allowLoopback bool }

func (g addressGuard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dial %s: not an IP address", address)
	}
	if !g.allowed(ip) {
		return fmt.Errorf("dial %s: %w", address, errForbiddenAddress)
	}
	return nil
}

var errForbiddenAddress = errors.New("a special-use address, not fetched from")

// specialUse are the special-use blocks of RFC 6890 and its successors that
// netip's predicates do not name.
var specialUse = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGN)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: would reach IPv4 addresses unchecked
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo among them)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: would reach IPv4 addresses unchecked
}

func (g addressGuard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return g.allowLoopback
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	return !slices.ContainsFunc(specialUse, func(p netip.Prefix) bool { return p.Contains(ip) })
}
