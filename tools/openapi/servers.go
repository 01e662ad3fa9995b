package openapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pingmcp/pingmcp/internal/outbound"
)

// operationBase is where an operation's calls go: base_url, which stands
// for the document's servers, unless the operation, else its path item,
// names servers of its own (OpenAPI: the most specific servers win). Of
// those, one that is also the document's is base_url too; else the first
// that lies within base_url (its scheme, host and port, under its path)
// is followed: its path replaces base_url's. A relative one is taken
// relative to base_url. Calls carry a token for the API the operator
// configured, to base_url: an operation whose servers all lie outside it
// (another host, another path, plain http) is refused, never followed.
func operationBase(doc *openapi3.T, item *openapi3.PathItem, op *openapi3.Operation, base *url.URL) (*url.URL, error) {
	servers := item.Servers
	if op.Servers != nil && len(*op.Servers) > 0 {
		servers = *op.Servers
	}
	if len(servers) == 0 {
		return base, nil
	}
	documents := map[string]bool{}
	for _, s := range doc.Servers {
		documents[strings.TrimSuffix(serverURL(s), "/")] = true
	}
	if len(doc.Servers) == 0 {
		documents[""] = true // OpenAPI's default server, "/"
	}
	for _, s := range servers {
		if documents[strings.TrimSuffix(serverURL(s), "/")] {
			return base, nil
		}
	}
	var why []string
	for _, s := range servers {
		u, err := withinBase(serverURL(s), base)
		if err == nil {
			return u, nil
		}
		why = append(why, err.Error())
	}
	exclude := "exclude: in the APIs file"
	if op.OperationID != "" {
		exclude = fmt.Sprintf("exclude: {operations: [%s]} in the APIs file", op.OperationID)
	}
	return nil, fmt.Errorf("its servers are not within base_url %s, the only place its calls may take the API's token: %s; exclude it (%s), or call it through an API entry of its own whose base_url is its server", base, strings.Join(why, "; "), exclude)
}

// serverURL is a server's URL with each variable's default in its place.
func serverURL(s *openapi3.Server) string {
	if s == nil {
		return ""
	}
	u := s.URL
	for name, v := range s.Variables {
		if v != nil {
			u = strings.ReplaceAll(u, "{"+name+"}", v.Default)
		}
	}
	return u
}

// withinBase is the base URL of a server's (raw, relative ones taken
// relative to base) when it lies within base, with base's scheme and host
// as written; else an error naming the server, without its credentials
// or query.
func withinBase(raw string, base *url.URL) (*url.URL, error) {
	shown := shownURL(raw)
	ref, err := url.Parse(raw)
	if err != nil || strings.ContainsAny(raw, "{}") {
		return nil, fmt.Errorf("%s: not a URL", shown)
	}
	dir := *base
	dir.Path += "/"
	if dir.RawPath != "" {
		dir.RawPath += "/"
	}
	u := dir.ResolveReference(ref)
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("%s: credentials in the URL are refused: calls authenticate with the delegated token", shown)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("%s: want an absolute http(s) URL without query or fragment", shown)
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path != "" {
		if _, _, _, err := checkPathTemplate(path); err != nil {
			return nil, fmt.Errorf("%s: %w", shown, err)
		}
	}
	if !outbound.SameOrigin(u, base) {
		return nil, fmt.Errorf("%s is on another origin (scheme, host or port)", shown)
	}
	if path != base.EscapedPath() && !strings.HasPrefix(path, base.EscapedPath()+"/") {
		return nil, fmt.Errorf("%s is outside base_url's path", shown)
	}
	out := *base
	out.Path, out.RawPath = strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.RawPath, "/")
	return &out, nil
}
