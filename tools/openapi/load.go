package openapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pingmcp/pingmcp/internal/outbound"
)

// load reads an OpenAPI document, resolves its $refs and validates it. A
// file's document may refer to other files, under its own folder or the
// APIs file's (dir), and to nothing else: no URL, no file elsewhere (a
// symbolic link leading out included), none larger than
// MaxDocumentBytes; a fetched one may not refer to anything outside
// itself (no fetch is made on a document's say-so).
//
// A document that takes longer to load than ctx allows is refused at once:
// kin-openapi does not stop for a context, and some documents take it
// minutes to days (a long chain of $refs, many schemas each referring to one
// vast one), which would hold a node's start, or a reload, as long. With a
// checking process (Options.Checker, check.go), that process is killed
// then, and the document is loaded here only once it passed there, from the
// bytes it read. Without one, its loading, which nothing can stop, runs on
// meanwhile; no other document is loaded until it ends, so that documents
// reloaded again and again do not pile such loads up.
func load(ctx context.Context, location, dir string, opts Options) (*openapi3.T, error) {
	shown := shownLocation(location)
	if n := abandonedLoads.Load(); n > 0 {
		return nil, fmt.Errorf("document %s: not loaded: the loading of a document given up earlier (it took longer than its time) still runs; try again once it ends", shown)
	}
	var data []byte
	if isURL(location) {
		var err error
		if data, err = fetch(ctx, location, opts); err != nil {
			return nil, err
		}
	}
	var read openapi3.ReadFromURIFunc
	if opts.Checker != nil {
		var err error
		if read, err = check(ctx, location, dir, opts, data); err != nil {
			return nil, err
		}
	}
	type loaded struct {
		doc *openapi3.T
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		doc, err := loadNow(ctx, location, dir, opts, read, data, opts.Checker != nil)
		done <- loaded{doc, err}
	}()
	select {
	case l := <-done:
		return l.doc, l.err
	case <-ctx.Done():
		abandonedLoads.Add(1)
		go func() {
			<-done
			abandonedLoads.Add(-1)
		}()
		return nil, fmt.Errorf("document %s: not loaded and checked within the time given (%w): refused, a document this costly to read would hold the node as long", shown, context.Cause(ctx))
	}
}

// abandonedLoads counts the documents whose loading load gave up, still
// running.
var abandonedLoads atomic.Int32

// loadNow is load's work, which ctx does not stop (kin-openapi's resolving
// and validation): a fetched document's bytes (data), or a file's, read by
// read (readUnder the document's folder and dir when nil). A document
// checked already (the same bytes loaded and validated by a checking
// process) is not validated again.
func loadNow(ctx context.Context, location, dir string, opts Options, read openapi3.ReadFromURIFunc, data []byte, checked bool) (*openapi3.T, error) {
	shown := shownLocation(location)
	loader := openapi3.NewLoader()
	loader.Context = ctx
	var doc *openapi3.T
	var err error
	if isURL(location) {
		doc, err = loader.LoadFromData(data)
	} else {
		if read == nil {
			read = readUnder(docRoots(location, dir), opts.MaxDocumentBytes)
		}
		loader.IsExternalRefsAllowed = true
		loader.ReadFromURIFunc = read
		doc, err = loader.LoadFromFile(location)
	}
	if err != nil {
		return nil, fmt.Errorf("document %s: %w", shown, err)
	}
	if v, ok := doc.Extensions["swagger"]; ok && doc.OpenAPI == "" {
		return nil, fmt.Errorf("document %s: swagger %v: a Swagger (OpenAPI 2) document; want OpenAPI 3.0 or 3.1 (convert it first, with swagger2openapi or the Swagger Editor, say)", shown, v)
	}
	if !doc.IsOpenAPI30() && !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("document %s: openapi %q: want 3.0 or 3.1", shown, doc.OpenAPI)
	}
	if checked {
		return doc, nil
	}
	if err := validate(ctx, doc); err != nil {
		return nil, fmt.Errorf("document %s is not valid OpenAPI: %w", shown, err)
	}
	return doc, nil
}

// docRoots are the folders a file's document may refer to files under:
// its own, and the APIs file's (dir).
func docRoots(location, dir string) []string {
	return []string{filepath.Dir(location), dir}
}

// readUnder reads files under one of the folders roots (an empty one is
// none), at most max bytes of each; anything else is refused.
func readUnder(roots []string, max int64) openapi3.ReadFromURIFunc {
	var real []string
	for _, r := range roots {
		if r == "" {
			continue
		}
		if abs, err := filepath.Abs(r); err == nil {
			if ev, err := filepath.EvalSymlinks(abs); err == nil {
				real = append(real, ev)
			}
		}
	}
	return func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		if u.Scheme != "" && u.Scheme != "file" || u.Host != "" {
			return nil, fmt.Errorf("$ref %s: only files beside the document are read, not URLs", u.Redacted())
		}
		p, err := filepath.Abs(filepath.FromSlash(u.Path))
		if err == nil {
			p, err = filepath.EvalSymlinks(p)
		}
		if err != nil {
			return nil, fmt.Errorf("$ref %s: %w", u.Path, err)
		}
		if !slices.ContainsFunc(real, func(root string) bool {
			rel, err := filepath.Rel(root, p)
			return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
		}) {
			return nil, fmt.Errorf("$ref %s: not under the document's folder or the APIs file's", u.Path)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > max {
			return nil, fmt.Errorf("%s is larger than %d bytes", u.Path, max)
		}
		return b, nil
	}
}

// validate checks a document as kin-openapi does, but for what matters
// only to a server routing requests: examples do not shape the tools,
// nor defaults (the API applies its own: a default its schema refuses, as
// one in sixty of the documents of a public directory of APIs has, a
// string for an array or a boolean, only says what the API does without
// the argument); patterns are ECMAScript regular expressions that Go's cannot always
// compile (schema.go leaves those out); and two paths that differ only in
// their parameters' names ("conflicting paths": GitHub's description has
// two such pairs) are called each as written, so each is checked on its own.
func validate(ctx context.Context, doc *openapi3.T) error {
	opts := []openapi3.ValidationOption{openapi3.DisableExamplesValidation(), openapi3.DisableSchemaDefaultsValidation(), openapi3.DisableSchemaPatternValidation()}
	err := doc.Validate(ctx, append(opts, openapi3.EnableMultiError())...)
	if err == nil {
		return nil
	}
	var conflicts []error
	for _, e := range leaves(err) {
		var cp *openapi3.ConflictingPathsError
		if !errors.As(e, &cp) {
			return err
		}
		// Validate skipped the later path of the two.
		if item := doc.Paths.Value(cp.Path1); item != nil {
			if ierr := item.Validate(ctx, opts...); ierr != nil {
				conflicts = append(conflicts, fmt.Errorf("path %s: %w", cp.Path1, ierr))
			}
		}
	}
	return errors.Join(conflicts...)
}

// leaves are the errors a validation error is made of, unwrapped.
func leaves(err error) []error {
	switch e := err.(type) {
	case openapi3.MultiError:
		var out []error
		for _, c := range e {
			out = append(out, leaves(c)...)
		}
		return out
	case interface{ Unwrap() []error }:
		var out []error
		for _, c := range e.Unwrap() {
			out = append(out, leaves(c)...)
		}
		return out
	}
	if u := errors.Unwrap(err); u != nil {
		return leaves(u)
	}
	return []error{err}
}

// fetch gets a document, at most MaxDocumentBytes of it, without following
// redirects.
func fetch(ctx context.Context, location string, opts Options) ([]byte, error) {
	shown := shownLocation(location)
	client := *opts.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client.Transport = boundHeaders(client.Transport)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, fmt.Errorf("document %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/yaml, application/json;q=0.9, */*;q=0.1")
	resp, err := client.Do(req)
	if err != nil {
		// Never Go's own words: the URL may carry a credential (userinfo,
		// a signed query), which a reflecting server would quote.
		return nil, fmt.Errorf("document %s could not be fetched: %w", shown, outbound.Failed(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("document %s: answered %s", shown, outbound.Status(resp.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, opts.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("document %s: %w", shown, outbound.Failed(err))
	}
	if int64(len(b)) > opts.MaxDocumentBytes {
		return nil, fmt.Errorf("document %s is larger than %d bytes", shown, opts.MaxDocumentBytes)
	}
	return b, nil
}

// shownLocation is a document's location as errors and logs name it: a
// URL without its user information and query, either of which may carry a
// credential (a signed URL's signature, an API key); a file as it is.
func shownLocation(location string) string {
	if !isURL(location) {
		return location
	}
	return shownURL(location)
}

// shownURL is a URL (or a relative reference) without its user
// information and query, either of which may carry a credential: "…" in
// their place.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
	s := shown.String()
	if u.User != nil {
		s = strings.Replace(s, "//", "//…@", 1)
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?…"
	}
	return s
}
