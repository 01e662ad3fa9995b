package openapi

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// File is an APIs file (--apis), YAML:
//
//	apis:
//	  - name: todo                      # tool names start with it: todo_listTodos
//	    base_url: https://todo.example.com
//	    document: https://todo.example.com/openapi.yaml   # or a file, relative to this one
//	    resource: https://todo.example.com                # the audience to exchange for (default: base_url)
//	    scopes: [todo_api:read]        # for operations whose document declares none
//	    include: {methods: [GET, HEAD, POST], tags: [todos], operations: [deleteTodo]}
//	    exclude: {operations: [createTodo]}
//	    tools:
//	      listTodos: {name: my_todos, description: Lists my todos.}
type File struct {
	APIs []API `json:"apis"`
}

// An API is one API whose operations become tools.
type API struct {
	// Name prefixes its tools' names (name_operationId): letters, digits,
	// '_' and '-', at most 32.
	Name string `json:"name"`
	// BaseURL is where every call goes: it stands for the document's
	// servers; an operation's own are followed only within it
	// (operationBase), and nothing a model sends changes scheme, host or
	// port.
	BaseURL string `json:"base_url"`
	// Document is the OpenAPI 3.0 or 3.1 document: an http(s) URL fetched
	// at start and on each reload, or a file (relative to the APIs file)
	// read then.
	Document string `json:"document"`
	// Resource is the API's resource URI, the audience of the token
	// exchanged for its calls (default: BaseURL).
	Resource string `json:"resource,omitempty"`
	// Scopes are those of operations whose document declares none.
	Scopes []string `json:"scopes,omitempty"`
	// Include selects operations: those named, and those whose method is
	// among Methods (default GET and HEAD: read-only) and, when Tags are
	// given, that have one of them. Exclude removes any operation it
	// matches by name, tag or method.
	Include Selector `json:"include,omitempty"`
	Exclude Selector `json:"exclude,omitempty"`
	// Tools override the name, description or scopes of an operation's
	// tool, by operationId.
	Tools map[string]Override `json:"tools,omitempty"`

	// dir is the APIs file's folder (ReadFile): a document file's $refs
	// may read files under it, or under the document's own folder.
	dir string
}

// A Selector matches operations by operationId, tag or HTTP method.
type Selector struct {
	Operations []string `json:"operations,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Methods    []string `json:"methods,omitempty"`
}

// An Override replaces what the document says of an operation's tool.
// Scopes chooses, of an operation whose security requirements are
// alternatives with different scopes (Google's APIs: drive, or
// drive.readonly), the one the tool's token is asked for and must hold:
// one of those alternatives, exactly.
type Override struct {
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
}

// ReadFile reads and checks an APIs file, without loading any document;
// documents given as relative paths become relative to the file's folder.
func ReadFile(path string) ([]API, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.APIs) == 0 {
		return nil, fmt.Errorf("%s: no apis", path)
	}
	var errs []error
	names := map[string]bool{}
	for i := range f.APIs {
		api := &f.APIs[i]
		api.dir = filepath.Dir(path)
		if !isURL(api.Document) && api.Document != "" && !filepath.IsAbs(api.Document) {
			api.Document = filepath.Join(filepath.Dir(path), api.Document)
		}
		if err := api.check(); err != nil {
			errs = append(errs, err)
		}
		if names[api.Name] {
			errs = append(errs, fmt.Errorf("api %q: named twice", api.Name))
		}
		names[api.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.APIs, nil
}

var apiName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// methods are those an operation may have that Selector.Methods may name.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"}

// check checks what can be checked without the document.
func (api *API) check() error {
	var errs []error
	if !apiName.MatchString(api.Name) {
		errs = append(errs, fmt.Errorf("name %q: want 1 to 32 letters, digits, '_' or '-' (tool names start with it)", api.Name))
	}
	if _, err := parseBaseURL(api.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if api.Document == "" {
		errs = append(errs, errors.New("document: the OpenAPI document's file or URL is required"))
	}
	if r := api.Resource; r != "" {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("resource %q: want an absolute URI without fragment", r))
		}
	}
	for _, s := range append(slices.Clone(api.Include.Methods), api.Exclude.Methods...) {
		if !slices.Contains(methods, strings.ToUpper(s)) {
			errs = append(errs, fmt.Errorf("method %q: want one of %s", s, strings.Join(methods, ", ")))
		}
	}
	for op, o := range api.Tools {
		if o.Name != "" && !validToolName(o.Name) {
			errs = append(errs, fmt.Errorf("tools: %s: name %q: want 1 to 128 letters, digits, '_', '-' or '.'", op, o.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("api %q: %w", api.Name, err)
	}
	return nil
}

func (api *API) resource() string {
	if api.Resource != "" {
		return api.Resource
	}
	return strings.TrimSuffix(api.BaseURL, "/")
}

// parseBaseURL accepts an absolute http(s) URL without credentials, query
// or fragment; its path, if any, prefixes every operation's.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err == nil && u.User != nil:
		return nil, errors.New("base_url: credentials in the URL are refused: calls authenticate with the delegated token")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("base_url %q: want an absolute http(s) URL without query or fragment", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
