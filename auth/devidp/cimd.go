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

	"golang.org/x/sync/singleflight"

	"github.com/pingmcp/pingmcp/telemetry"
)

// ClientIDMetadata configures Client ID Metadata Documents. Zero fields take
// the defaults given.
type ClientIDMetadata struct {
	// AllowLoopback lets documents be fetched from loopback addresses, as
	// the draft allows an authorization server on loopback for development
	// and tests (§ SSRF), and from any port (tests' servers listen on
	// random ones); without it, only port 443. Other special-use addresses
	// are never fetched.
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
	// maxFetchesPerHost bounds those to any one host, so that one slow
	// host named in many client_ids cannot hold every slot.
	maxFetchesPerHost = 2
	// failureTTL is how long a refused document stays refused without
	// being fetched again, and maxFailures bounds the refusals kept.
	failureTTL  = 30 * time.Second
	maxFailures = 1000
	// maxLoggedIDLength bounds a client_id in a log line: a client chooses
	// it, up to maxURILength.
	maxLoggedIDLength = 200
)

// errFetchesBusy refuses a fetch while maxConcurrentFetches are under way.
var errFetchesBusy = fmt.Errorf("too many client metadata documents being fetched, try again later: %w", errFull)

// isClientIDURL reports a client_id that names a metadata document. Ids
// this server issues never start with https:// (randomID is base64url).
func isClientIDURL(id string) bool { return strings.HasPrefix(id, "https://") }

// metadataDocuments fetches, checks and caches clients' metadata documents.
type metadataDocuments struct {
	opts     ClientIDMetadata
	http     *http.Client
	now      func() time.Time
	log      *slog.Logger
	logLimit telemetry.Throttle // lines about fetches, which anyone can cause
	slots    chan struct{}      // one per fetch under way
	inFlight singleflight.Group // one fetch of an id at a time, its result shared

	mu       sync.Mutex
	clients  map[string]cachedClient
	failures map[string]time.Time // id → until when it stays refused
	perHost  map[string]int       // fetches under way by host
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
		now:      now,
		log:      log,
		logLimit: telemetry.Throttle{Now: now},
		slots:    make(chan struct{}, maxConcurrentFetches),
		clients:  map[string]cachedClient{},
		failures: map[string]time.Time{},
		perHost:  map[string]int{},
	}, nil
}

// documentError is why a client's metadata document was refused. What
// the client is told is its reason when that says only what is wrong with
// the client_id URL itself (nothing was fetched), and otherwise always the
// same words, errDocumentRefused: the client_id is anyone's choice of URL,
// and an answer that told a 404 from a timeout, a wrong content type or an
// address refused would make this server a probe of what it reaches. The
// detail goes to the (throttled) log.
type documentError struct {
	reason  string
	fetched bool // refused after trying to fetch it: reason is for the log only
}

func (e *documentError) Error() string {
	if e.fetched {
		return errDocumentRefused
	}
	return e.reason
}

// errDocumentRefused is what a client is told of any document that could
// not be fetched or was not right.
const errDocumentRefused = "the client metadata document could not be fetched or is invalid"

// documentRefused refuses a client_id URL for what it is, before any fetch.
func documentRefused(format string, args ...any) error {
	return &documentError{reason: fmt.Sprintf(format, args...)}
}

// fetchRefused refuses a document once its fetch was tried.
func fetchRefused(format string, args ...any) error {
	return &documentError{reason: fmt.Sprintf(format, args...), fetched: true}
}

// client returns the client the metadata document at id describes, from
// the cache or fetched now. Its errors are a *documentError (invalid_client)
// or errFetchesBusy. Concurrent requests for one id share one fetch, and a
// refused document stays refused for failureTTL without another fetch.
func (d *metadataDocuments) client(ctx context.Context, id string) (*client, error) {
	if c, err, ok := d.lookup(id); ok {
		return c, err
	}
	if err := checkClientIDURL(id, d.opts.AllowLoopback); err != nil {
		return nil, err
	}
	// The fetch outlives a caller that gives up: others may wait on it.
	ctx = context.WithoutCancel(ctx)
	v, err, _ := d.inFlight.Do(id, func() (any, error) {
		if c, err, ok := d.lookup(id); ok {
			return c, err
		}
		return d.fetchClient(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	return v.(*client), nil
}

// lookup answers from the cache: a document's client, or the refusal of a
// document refused less than failureTTL ago. ok is false for neither.
func (d *metadataDocuments) lookup(id string) (c *client, err error, ok bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, found := d.clients[id]; found && now.Before(e.expires) {
		return e.c, nil, true
	}
	if until, found := d.failures[id]; found {
		if now.Before(until) {
			return nil, &documentError{reason: "refused recently", fetched: true}, true
		}
		delete(d.failures, id)
	}
	return nil, nil, false
}

// fetchClient fetches, checks and caches the document at id, within the
// bounds on fetches under way.
func (d *metadataDocuments) fetchClient(ctx context.Context, id string) (*client, error) {
	host := urlHost(id)
	if !d.takeSlot(host) {
		return nil, errFetchesBusy
	}
	defer d.releaseSlot(host)
	now := d.now()
	c, maxAge, err := d.fetchAndParse(ctx, id)
	if err != nil {
		d.refused(id, now)
		reason := err.Error()
		if de, ok := err.(*documentError); ok {
			reason = de.reason
		}
		d.logThrottled("client metadata document refused", "client_id", shortID(id), "reason", reason)
		return nil, err
	}
	lifetime := min(max(maxAge, d.opts.MinCache), d.opts.MaxCache)
	d.keep(id, c, now.Add(lifetime))
	d.logThrottled("client metadata document fetched", "client_id", shortID(id), "client_name", c.name, "redirect_uris", c.redirectURIs, "cached_for", lifetime)
	return c, nil
}

func (d *metadataDocuments) fetchAndParse(ctx context.Context, id string) (*client, time.Duration, error) {
	body, maxAge, err := d.fetch(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	c, err := d.parse(id, body)
	return c, maxAge, err
}

// takeSlot takes one of the maxConcurrentFetches, and one of host's
// maxFetchesPerHost; false when either is taken.
func (d *metadataDocuments) takeSlot(host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.perHost[host] >= maxFetchesPerHost {
		return false
	}
	select {
	case d.slots <- struct{}{}:
	default:
		return false
	}
	d.perHost[host]++
	return true
}

func (d *metadataDocuments) releaseSlot(host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	<-d.slots
	if d.perHost[host]--; d.perHost[host] <= 0 {
		delete(d.perHost, host)
	}
}

// refused remembers that the document at id was refused at now. Past
// maxFailures it drops the expired refusals, then any.
func (d *metadataDocuments) refused(id string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.failures) >= maxFailures {
		for k, until := range d.failures {
			if !now.Before(until) {
				delete(d.failures, k)
			}
		}
		for k := range d.failures {
			if len(d.failures) < maxFailures {
				break
			}
			delete(d.failures, k)
		}
	}
	d.failures[id] = now.Add(failureTTL)
}

// logThrottled logs a line about a fetch at Info, throttled: any web page
// can make this server fetch.
func (d *metadataDocuments) logThrottled(msg string, attrs ...any) {
	d.logLimit.Log(d.log, slog.LevelInfo, msg, attrs...)
}

// shortID is a client_id as logged: at most maxLoggedIDLength bytes.
func shortID(id string) string {
	if len(id) <= maxLoggedIDLength {
		return id
	}
	return id[:maxLoggedIDLength] + "…"
}

// urlHost is the host (and port) of a URL, "" when it has none.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
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

// checkClientIDURL applies the draft's rules for a Client Identifier URL,
// and this server's: no port but https's own (443) unless anyPort (the
// tests' loopback servers), so that a client_id cannot aim a fetch at
// another service of a host.
func checkClientIDURL(id string, anyPort bool) error {
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
	case !anyPort && u.Port() != "" && u.Port() != "443":
		return documentRefused("the client_id URL must not name a port other than 443")
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
		return nil, 0, fetchRefused("not a URL to fetch: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, fetchRefused("not fetched within %v", d.opts.FetchTimeout)
		}
		return nil, 0, fetchRefused("not fetched: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 3:
		return nil, 0, fetchRefused("its URL answered a redirect (%d); redirects are not followed", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fetchRefused("its URL answered %d, not 200", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		!(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil, 0, fetchRefused("not served as application/json")
	}
	if resp.ContentLength > d.opts.MaxDocumentBytes {
		return nil, 0, fetchRefused("larger than %d bytes", d.opts.MaxDocumentBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, d.opts.MaxDocumentBytes+1))
	switch {
	case err != nil:
		return nil, 0, fetchRefused("not read within %v: %v", d.opts.FetchTimeout, err)
	case int64(len(body)) > d.opts.MaxDocumentBytes:
		return nil, 0, fetchRefused("larger than %d bytes", d.opts.MaxDocumentBytes)
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
		return nil, fetchRefused("the client metadata document is not a JSON object of client metadata")
	}
	switch {
	case doc.ClientID != id:
		return nil, fetchRefused("the client metadata document's client_id is not the URL it was fetched from")
	case doc.ClientSecret != nil || doc.ClientSecretExpiresAt != nil:
		return nil, fetchRefused("a client metadata document must not hold client_secret or client_secret_expires_at")
	}
	if doc.JWKS != nil {
		for _, k := range doc.JWKS.Keys {
			if k["d"] != nil || k["k"] != nil {
				return nil, fetchRefused("a client metadata document must not hold private or symmetric keys")
			}
		}
	}
	switch doc.TokenEndpointAuthMethod {
	case "", "none":
	case "private_key_jwt":
		return nil, fetchRefused("token_endpoint_auth_method private_key_jwt is not supported here: only public clients (none)")
	default:
		return nil, fetchRefused("token_endpoint_auth_method %q cannot be used with a metadata document: only none", doc.TokenEndpointAuthMethod)
	}
	c, _, code, desc := newPublicClient(&doc.registrationRequest, id, d.now())
	if c == nil {
		return nil, fetchRefused("the client metadata document is refused (%s): %s", code, desc)
	}
	for _, uri := range c.redirectURIs {
		if err := sameOrigin(uri, id); err != nil {
			return nil, fetchRefused("redirect_uri %q %v", uri, err)
		}
	}
	c.fromDocument = true
	return c, nil
}

// sameOrigin requires an https redirect URI of a document's client to be
// at its client_id's origin (scheme, host and port), so that a document
// cannot send codes to another site than the one that publishes it; a
// loopback http one (a native client's, RFC 8252 §7.3) is exempt: it
// reaches only the user's own machine. checkRedirectURI already admits
// only these two kinds.
func sameOrigin(redirectURI, clientID string) error {
	r, err := url.Parse(redirectURI)
	if err != nil {
		return errors.New("is not a URL")
	}
	if r.Scheme == "http" {
		return nil
	}
	c, err := url.Parse(clientID)
	if err != nil || r.Scheme != c.Scheme || !strings.EqualFold(r.Hostname(), c.Hostname()) || portOr443(r) != portOr443(c) {
		return errors.New("is not at the client_id's origin (an https redirect URI must be; a loopback http one may be anywhere)")
	}
	return nil
}

func portOr443(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
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

// globalUnicast6 is the IPv6 global unicast space (RFC 4291 §2.4): no
// other IPv6 address is fetched from (IPv4-compatible and -translated
// ::/96, ::ffff:0:0/96 SIIT, site-local fec0::/10, and any block IANA has
// not allocated as global unicast are all outside it).
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// specialUse are the special-use blocks of RFC 6890 and its successors that
// netip's predicates do not name.
var specialUse = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGN)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo among them)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: would reach IPv4 addresses unchecked
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
}

func (g addressGuard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return g.allowLoopback
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return false // NAT64 64:ff9b::/96, discard 100::/64, ULA, link-local, multicast, SRv6 5f00::/16 among others
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	return !slices.ContainsFunc(specialUse, func(p netip.Prefix) bool { return p.Contains(ip) })
}
