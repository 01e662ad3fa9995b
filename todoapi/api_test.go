package todoapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
)

func TestCRUD(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	alice := is.token(t, "alice")

	resp := api.list(t, alice)
	if resp.status != http.StatusOK || string(resp.body) != "{\"todos\":[]}\n" {
		t.Fatalf("empty list: %d %q", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}

	milk := api.mustCreate(t, alice, "buy milk")
	dog := api.mustCreate(t, alice, "walk the dog")
	// The "text" spelling of the field, and trimming.
	resp = call(t, http.MethodPost, api.URL+"/api/todos", bearer(alice), `{"text": "  write the report  "}`)
	report := resp.list(t)[2]
	if report.Text != "write the report" {
		t.Fatalf("text %q, want it trimmed", report.Text)
	}

	// The wire shape: {"todos": [{id, text, completed, createdAt}]} and
	// nothing else.
	resp = api.list(t, alice)
	var raw map[string][]map[string]any
	if err := json.Unmarshal(resp.body, &raw); err != nil || len(raw) != 1 || raw["todos"] == nil {
		t.Fatalf("body %s is not {\"todos\": [...]}", resp.body)
	}
	for _, item := range raw["todos"] {
		keys := make([]string, 0, len(item))
		for k := range item {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"completed", "createdAt", "id", "text"}) {
			t.Errorf("todo fields %v", keys)
		}
		if id, _ := item["id"].(string); !validID(id) {
			t.Errorf("id %q is not a valid id", id)
		}
		if _, ok := item["completed"].(bool); !ok {
			t.Errorf("completed %v is not a boolean", item["completed"])
		}
		created, _ := item["createdAt"].(string)
		if _, err := time.Parse(time.RFC3339, created); err != nil {
			t.Errorf("createdAt %q is not RFC 3339: %v", created, err)
		}
	}

	steps := []struct {
		name string
		do   func() response
		want []string // texts in answer order
		done []bool
	}{
		{"list in creation order", func() response { return api.list(t, alice) },
			[]string{"buy milk", "walk the dog", "write the report"}, []bool{false, false, false}},
		{"complete the dog: completed last", func() response { return api.setCompleted(t, alice, dog.ID, true) },
			[]string{"buy milk", "write the report", "walk the dog"}, []bool{false, false, true}},
		{"complete the milk: completed by creation", func() response { return api.setCompleted(t, alice, milk.ID, true) },
			[]string{"write the report", "buy milk", "walk the dog"}, []bool{false, true, true}},
		{"completing again changes nothing", func() response { return api.setCompleted(t, alice, milk.ID, true) },
			[]string{"write the report", "buy milk", "walk the dog"}, []bool{false, true, true}},
		{"reopen the dog", func() response { return api.setCompleted(t, alice, dog.ID, false) },
			[]string{"walk the dog", "write the report", "buy milk"}, []bool{false, false, true}},
		{"delete the report", func() response { return api.remove(t, alice, report.ID) },
			[]string{"walk the dog", "buy milk"}, []bool{false, true}},
		{"list", func() response { return api.list(t, alice) },
			[]string{"walk the dog", "buy milk"}, []bool{false, true}},
	}
	for _, s := range steps {
		got := s.do().list(t)
		done := make([]bool, len(got))
		for i, todo := range got {
			done[i] = todo.Completed
		}
		if !slices.Equal(texts(got), s.want) || !slices.Equal(done, s.done) {
			t.Fatalf("%s: got %v %v, want %v %v", s.name, texts(got), done, s.want, s.done)
		}
	}

	for _, resp := range []response{api.remove(t, alice, report.ID), api.setCompleted(t, alice, report.ID, true)} {
		if resp.status != http.StatusNotFound || resp.errorBody(t).Error != "not_found" {
			t.Errorf("a deleted todo: %d %s, want 404 not_found", resp.status, resp.body)
		}
	}

	head := call(t, http.MethodHead, api.URL+"/api/todos", bearer(alice), "")
	if head.status != http.StatusOK || len(head.body) != 0 {
		t.Errorf("HEAD: %d %q", head.status, head.body)
	}
}

func TestUserIsolation(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	alice, bob := is.token(t, "alice"), is.token(t, "bob")
	secret := api.mustCreate(t, alice, "alice's secret")

	if got := api.list(t, bob).list(t); len(got) != 0 {
		t.Fatalf("bob sees %v", got)
	}
	for name, resp := range map[string]response{
		"patch":  api.setCompleted(t, bob, secret.ID, true),
		"delete": api.remove(t, bob, secret.ID),
	} {
		if resp.status != http.StatusNotFound || resp.errorBody(t).Error != "not_found" {
			t.Errorf("bob's %s of alice's todo: %d %s, want 404", name, resp.status, resp.body)
		}
	}
	bobs := api.mustCreate(t, bob, "bob's own")
	if got := api.list(t, alice).list(t); len(got) != 1 || got[0] != secret {
		t.Errorf("alice's list is %+v, want only %+v", got, secret)
	}
	if got := api.list(t, bob).list(t); len(got) != 1 || got[0] != bobs {
		t.Errorf("bob's list is %+v, want only %+v", got, bobs)
	}
}

// TestIssuerIsolation: the same subject at two issuers is two users, and no
// split of issuer and subject poses as another.
func TestIssuerIsolation(t *testing.T) {
	tokens := map[string]*auth.Token{
		"a": {Principal: auth.Principal{Issuer: "https://idp-one.test", Subject: "alice"}},
		"b": {Principal: auth.Principal{Issuer: "https://idp-two.test", Subject: "alice"}},
		"c": {Principal: auth.Principal{Issuer: "https://idp-one.test/x", Subject: "y"}},
		"d": {Principal: auth.Principal{Issuer: "https://idp-one.test/", Subject: "xy"}},
	}
	verifier := verifierFunc(func(ctx context.Context, token string) (*auth.Token, error) {
		tok, ok := tokens[token]
		if !ok {
			return nil, &auth.Error{Code: auth.CodeInvalidToken, Description: "unknown"}
		}
		c := *tok
		c.Scopes = []string{ScopeRead, ScopeWrite}
		c.Actor = map[string]any{"sub": testActor}
		return &c, nil
	})
	api := newTestAPI(t, nil, Options{Verifier: verifier})
	for name := range tokens {
		api.mustCreate(t, name, "todo of "+name)
	}
	for name := range tokens {
		if got := texts(api.list(t, name).list(t)); !slices.Equal(got, []string{"todo of " + name}) {
			t.Errorf("user %s sees %v", name, got)
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	alice := is.token(t, "alice")
	mine := api.mustCreate(t, alice, "mine")
	unknown := newID()

	longText := strings.Repeat("é", DefaultMaxTextRunes+1)
	cases := []struct {
		name        string
		method      string
		path        string // {id} is alice's todo
		contentType string // "none" sends no Content-Type; "" means application/json
		body        string
		status      int
		code        string
		allow       string
	}{
		// Media type and size.
		{name: "text/plain", method: "POST", path: "/api/todos", contentType: "text/plain", body: `{"todoText":"x"}`, status: 415, code: "unsupported_media_type"},
		{name: "no content type", method: "POST", path: "/api/todos", contentType: "none", body: `{"todoText":"x"}`, status: 415, code: "unsupported_media_type"},
		{name: "form", method: "POST", path: "/api/todos", contentType: "application/x-www-form-urlencoded", body: `todoText=x`, status: 415, code: "unsupported_media_type"},
		{name: "json lookalike", method: "POST", path: "/api/todos", contentType: "application/jsonx", body: `{"todoText":"x"}`, status: 415, code: "unsupported_media_type"},
		{name: "latin-1", method: "POST", path: "/api/todos", contentType: "application/json; charset=iso-8859-1", body: `{"todoText":"x"}`, status: 415, code: "unsupported_media_type"},
		{name: "patch text/plain", method: "PATCH", path: "/api/todos/{id}", contentType: "text/plain", body: `{"completed":true}`, status: 415, code: "unsupported_media_type"},
		{name: "too large", method: "POST", path: "/api/todos", body: `{"todoText":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, status: 413, code: "request_too_large"},
		{name: "patch too large", method: "PATCH", path: "/api/todos/{id}", body: `{"completed":true}` + strings.Repeat(" ", DefaultMaxBodyBytes), status: 413, code: "request_too_large"},

		// Create bodies.
		{name: "empty body", method: "POST", path: "/api/todos", contentType: "application/json", status: 400, code: "invalid_request"},
		{name: "not JSON", method: "POST", path: "/api/todos", body: `buy milk`, status: 400, code: "invalid_request"},
		{name: "array", method: "POST", path: "/api/todos", body: `["buy milk"]`, status: 400, code: "invalid_request"},
		{name: "bare string", method: "POST", path: "/api/todos", body: `"buy milk"`, status: 400, code: "invalid_request"},
		{name: "unterminated", method: "POST", path: "/api/todos", body: `{"todoText":"x"`, status: 400, code: "invalid_request"},
		{name: "trailing object", method: "POST", path: "/api/todos", body: `{"todoText":"x"} {}`, status: 400, code: "invalid_request"},
		{name: "trailing garbage", method: "POST", path: "/api/todos", body: `{"todoText":"x"}x`, status: 400, code: "invalid_request"},
		{name: "no field", method: "POST", path: "/api/todos", body: `{}`, status: 400, code: "invalid_request"},
		{name: "unknown field", method: "POST", path: "/api/todos", body: `{"todoText":"x","completed":true}`, status: 400, code: "invalid_request"},
		{name: "field in another case", method: "POST", path: "/api/todos", body: `{"TodoText":"x"}`, status: 400, code: "invalid_request"},
		{name: "duplicate field", method: "POST", path: "/api/todos", body: `{"todoText":"x","todoText":"y"}`, status: 400, code: "invalid_request"},
		{name: "both spellings", method: "POST", path: "/api/todos", body: `{"todoText":"x","text":"y"}`, status: 400, code: "invalid_request"},
		{name: "number", method: "POST", path: "/api/todos", body: `{"todoText":5}`, status: 400, code: "invalid_request"},
		{name: "null", method: "POST", path: "/api/todos", body: `{"text":null}`, status: 400, code: "invalid_request"},
		{name: "array text", method: "POST", path: "/api/todos", body: `{"todoText":["x"]}`, status: 400, code: "invalid_request"},
		{name: "empty text", method: "POST", path: "/api/todos", body: `{"todoText":""}`, status: 400, code: "invalid_request"},
		{name: "blank text", method: "POST", path: "/api/todos", body: `{"todoText":" \t \u00a0 "}`, status: 400, code: "invalid_request"},
		{name: "text too long", method: "POST", path: "/api/todos", body: `{"todoText":"` + longText + `"}`, status: 400, code: "invalid_request"},
		{name: "bell", method: "POST", path: "/api/todos", body: `{"todoText":"a\u0007b"}`, status: 400, code: "invalid_request"},
		{name: "NUL", method: "POST", path: "/api/todos", body: `{"todoText":"a\u0000b"}`, status: 400, code: "invalid_request"},
		{name: "newline", method: "POST", path: "/api/todos", body: `{"todoText":"a\nb"}`, status: 400, code: "invalid_request"},
		{name: "DEL", method: "POST", path: "/api/todos", body: "{\"todoText\":\"a\x7fb\"}", status: 400, code: "invalid_request"},
		{name: "C1 control", method: "POST", path: "/api/todos", body: `{"todoText":"a\u0085b"}`, status: 400, code: "invalid_request"},
		{name: "line separator", method: "POST", path: "/api/todos", body: `{"todoText":"a\u2028b"}`, status: 400, code: "invalid_request"},
		{name: "bidi override", method: "POST", path: "/api/todos", body: `{"todoText":"a\u202eb"}`, status: 400, code: "invalid_request"},
		{name: "invalid UTF-8", method: "POST", path: "/api/todos", body: "{\"todoText\":\"a\xffb\"}", status: 400, code: "invalid_request"},

		// Update bodies.
		{name: "completed as string", method: "PATCH", path: "/api/todos/{id}", body: `{"completed":"true"}`, status: 400, code: "invalid_request"},
		{name: "completed as number", method: "PATCH", path: "/api/todos/{id}", body: `{"completed":1}`, status: 400, code: "invalid_request"},
		{name: "completed null", method: "PATCH", path: "/api/todos/{id}", body: `{"completed":null}`, status: 400, code: "invalid_request"},
		{name: "completed missing", method: "PATCH", path: "/api/todos/{id}", body: `{}`, status: 400, code: "invalid_request"},
		{name: "patch text", method: "PATCH", path: "/api/todos/{id}", body: `{"completed":true,"text":"renamed"}`, status: 400, code: "invalid_request"},
		{name: "patch empty body", method: "PATCH", path: "/api/todos/{id}", contentType: "application/json", status: 400, code: "invalid_request"},

		// Ids: only what the API mints reaches the store.
		{name: "short id", method: "PATCH", path: "/api/todos/abc", body: `{"completed":true}`, status: 400, code: "invalid_request"},
		{name: "long id", method: "DELETE", path: "/api/todos/" + mine.ID + "A", status: 400, code: "invalid_request"},
		{name: "timestamp id", method: "DELETE", path: "/api/todos/1767323045000", status: 400, code: "invalid_request"},
		{name: "id with !", method: "DELETE", path: "/api/todos/" + mine.ID[:21] + "!", status: 400, code: "invalid_request"},
		{name: "id with .", method: "DELETE", path: "/api/todos/" + mine.ID[:21] + ".", status: 400, code: "invalid_request"},
		{name: "non-canonical id", method: "DELETE", path: "/api/todos/AAAAAAAAAAAAAAAAAAAAAB", status: 400, code: "invalid_request"},
		{name: "encoded slash", method: "DELETE", path: "/api/todos/AAAAAAAAAAAAAAAAAAA%2FA", status: 400, code: "invalid_request"},
		{name: "encoded dot-dot", method: "PATCH", path: "/api/todos/%2E%2E", body: `{"completed":true}`, status: 400, code: "invalid_request"},
		{name: "encoded key pattern", method: "DELETE", path: "/api/todos/%2A", status: 400, code: "invalid_request"},
		{name: "unknown id", method: "DELETE", path: "/api/todos/" + unknown, status: 404, code: "not_found"},
		{name: "unknown id patch", method: "PATCH", path: "/api/todos/" + unknown, body: `{"completed":true}`, status: 404, code: "not_found"},

		// Paths and methods.
		{name: "nested path", method: "DELETE", path: "/api/todos/{id}/x", status: 404, code: "not_found"},
		{name: "dot-dot path", method: "DELETE", path: "/api/todos/../todos", status: 404, code: "not_found"},
		{name: "trailing slash", method: "GET", path: "/api/todos/", status: 404, code: "not_found"},
		{name: "other path", method: "GET", path: "/api/todo", status: 404, code: "not_found"},
		{name: "root", method: "GET", path: "/", status: 404, code: "not_found"},
		{name: "PUT collection", method: "PUT", path: "/api/todos", body: `{"todoText":"x"}`, status: 405, code: "method_not_allowed", allow: "GET, HEAD, POST"},
		{name: "DELETE collection", method: "DELETE", path: "/api/todos", status: 405, code: "method_not_allowed", allow: "GET, HEAD, POST"},
		{name: "OPTIONS collection", method: "OPTIONS", path: "/api/todos", status: 405, code: "method_not_allowed", allow: "GET, HEAD, POST"},
		{name: "GET one", method: "GET", path: "/api/todos/{id}", status: 405, code: "method_not_allowed", allow: "PATCH, DELETE"},
		{name: "PUT one", method: "PUT", path: "/api/todos/{id}", body: `{"completed":true}`, status: 405, code: "method_not_allowed", allow: "PATCH, DELETE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := bearer(alice)
			switch tc.contentType {
			case "none":
				header["Content-Type"] = ""
			case "":
			default:
				header["Content-Type"] = tc.contentType
			}
			resp := call(t, tc.method, api.URL+strings.ReplaceAll(tc.path, "{id}", mine.ID), header, tc.body)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if e := resp.errorBody(t); e.Error != tc.code {
				t.Errorf("error %q, want %q (%s)", e.Error, tc.code, e.Description)
			}
			if got := resp.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}

	t.Run("too large, chunked", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader(`{"todoText":"`), strings.NewReader(strings.Repeat("a", DefaultMaxBodyBytes)), strings.NewReader(`"}`))
		req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/todos", body)
		req.Header.Set("Authorization", "Bearer "+alice)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d (request length %d), want 413 for a chunked body", resp.StatusCode, req.ContentLength)
		}
	})

	if got := api.list(t, alice).list(t); len(got) != 1 || got[0] != mine {
		t.Errorf("after invalid requests the list is %+v, want only %+v", got, mine)
	}
}

func TestAcceptedEdgeInputs(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	alice := is.token(t, "alice")
	cases := []struct {
		name, contentType, body, want string
	}{
		{"charset utf-8", "application/json; charset=UTF-8", `{"todoText":"a"}`, "a"},
		{"longest text", "application/json", `{"todoText":"` + strings.Repeat("é", DefaultMaxTextRunes) + `"}`, strings.Repeat("é", DefaultMaxTextRunes)},
		{"escaped unicode", "application/json", `{"todoText":"caf\u00e9 \ud83d\ude00"}`, "café 😀"},
		{"emoji with joiner", "application/json", `{"todoText":"👩‍💻 ship it"}`, "👩‍💻 ship it"},
		{"markup kept as text", "application/json", `{"todoText":"<b>bold</b> & \"quoted\""}`, `<b>bold</b> & "quoted"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, http.MethodPost, api.URL+"/api/todos", map[string]string{
				"Authorization": "Bearer " + alice, "Content-Type": tc.contentType,
			}, tc.body)
			if !slices.Contains(texts(resp.list(t)), tc.want) {
				t.Errorf("the list does not hold %q: %s", tc.want, resp.body)
			}
		})
	}
}

func TestListBound(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{MaxTodos: 3})
	alice := is.token(t, "alice")
	var first Todo
	for i := range 3 {
		todo := api.mustCreate(t, alice, fmt.Sprint("todo ", i))
		if i == 0 {
			first = todo
		}
	}
	resp := api.create(t, alice, "one too many")
	if resp.status != http.StatusConflict {
		t.Fatalf("status %d, want 409; body %s", resp.status, resp.body)
	}
	if e := resp.errorBody(t); e.Error != "too_many_todos" || !strings.Contains(e.Description, "3") {
		t.Errorf("error %+v", e)
	}
	if n := len(api.list(t, alice).list(t)); n != 3 {
		t.Errorf("%d todos after a refused create", n)
	}
	// Bob's list has its own bound; deleting makes room again.
	api.mustCreate(t, is.token(t, "bob"), "bob's")
	api.remove(t, alice, first.ID).list(t)
	api.mustCreate(t, alice, "fits again")
}

// testConcurrentCreates: 100 creates by one user at once are all stored,
// exactly once each, under distinct ids.
func testConcurrentCreates(t *testing.T, store Store) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{Store: store, Now: time.Now})
	alice := is.token(t, "alice")
	const n = 100
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			b, _ := json.Marshal(map[string]string{"todoText": fmt.Sprint("todo ", i)})
			req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/todos", strings.NewReader(string(b)))
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("create %d: status %d", i, s)
		}
	}
	got := api.list(t, alice).list(t)
	if len(got) != n {
		t.Fatalf("%d todos stored, want %d", len(got), n)
	}
	ids, seen := map[string]bool{}, map[string]bool{}
	for _, todo := range got {
		if ids[todo.ID] || seen[todo.Text] {
			t.Errorf("duplicate: %+v", todo)
		}
		ids[todo.ID], seen[todo.Text] = true, true
	}
	for i := range n {
		if !seen[fmt.Sprint("todo ", i)] {
			t.Errorf("todo %d was lost", i)
		}
	}
}

func TestConcurrentCreatesMemory(t *testing.T) {
	testConcurrentCreates(t, NewMemoryStore())
}

func TestNewOptions(t *testing.T) {
	v := verifierFunc(func(ctx context.Context, token string) (*auth.Token, error) { return nil, nil })
	for name, opts := range map[string]Options{
		"no verifier":     {},
		"negative body":   {Verifier: v, MaxBodyBytes: -1},
		"negative todos":  {Verifier: v, MaxTodos: -1},
		"negative length": {Verifier: v, MaxTextRunes: -1},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New accepted %+v", name, opts)
		}
	}
	api, err := New(Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	o := api.opts
	if o.MaxBodyBytes != DefaultMaxBodyBytes || o.MaxTodos != DefaultMaxTodos || o.MaxTextRunes != DefaultMaxTextRunes ||
		o.Store == nil || o.Logger == nil || o.Now == nil || o.AllowUndelegated {
		t.Errorf("defaults not applied: %+v", o)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newID()
		if !validID(id) || seen[id] {
			t.Fatalf("newID minted %q (valid %v, seen %v)", id, validID(id), seen[id])
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 21), strings.Repeat("A", 23), "AAAAAAAAAAAAAAAAAAAAAB",
		"AAAAAAAAAAAAAAAAAAAA+A", "AAAAAAAAAAAAAAAAAAAA/A", "AAAAAAAAAAAAAAAAAAAA=A", "AAAAAAAAAAAAAAAAAAAA\nA", "AAAAAAAAAAAAAAAAAAAAA\n"} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}

// testIdempotentCreates: a create retried with the same Idempotency-Key
// adds the todo once, also when the retries race; another user's same key
// is another todo; the key reused for another text is 409; a bad key is
// 400 and changes nothing.
func testIdempotentCreates(t *testing.T, store Store) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{Store: store})
	alice, bob := is.token(t, "alice"), is.token(t, "bob")
	create := func(token, key, text string) response {
		b, _ := json.Marshal(map[string]string{"todoText": text})
		h := bearer(token)
		h["Idempotency-Key"] = key
		return call(t, http.MethodPost, api.URL+"/api/todos", h, string(b))
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for range 8 {
		wg.Go(func() { statuses <- create(alice, "k-1", "buy milk").status })
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a retried create: %d", s)
		}
	}
	if got := texts(api.list(t, alice).list(t)); !slices.Equal(got, []string{"buy milk"}) {
		t.Errorf("alice's list after 8 tries of one create: %q", got)
	}
	if r := create(bob, "k-1", "buy milk"); r.status != http.StatusOK || len(r.list(t)) != 1 {
		t.Errorf("bob's create with alice's key: %d %s", r.status, r.body)
	}
	if r := create(alice, "k-1", "buy bread"); r.status != http.StatusConflict || r.errorBody(t).Error != "idempotency_key_reused" {
		t.Errorf("the key reused for another text: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"has space", strings.Repeat("k", 129), "é"} {
		if r := create(alice, bad, "other"); r.status != http.StatusBadRequest {
			t.Errorf("key %q: %d %s", bad, r.status, r.body)
		}
	}
	if n := len(api.list(t, alice).list(t)); n != 1 {
		t.Errorf("alice has %d todos, want 1", n)
	}
}

func TestIdempotentCreatesMemory(t *testing.T) { testIdempotentCreates(t, NewMemoryStore()) }

// A write answers only what it wrote to a token without todo_api:read: the
// write scope does not read the list (an idempotent replay included).
func TestWriteOnlyTokenSeesOnlyItsWrite(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	alice := is.token(t, "alice")
	api.mustCreate(t, alice, "secret plan")
	c := is.claims("alice")
	c["scope"] = ScopeWrite
	writer := is.sign(t, c)

	created := api.create(t, writer, "buy milk").list(t)
	if len(created) != 1 || created[0].Text != "buy milk" {
		t.Fatalf("create with the write scope only answered %v", texts(created))
	}
	replay := func() []Todo {
		return call(t, http.MethodPost, api.URL+"/api/todos", map[string]string{"Authorization": "Bearer " + writer, "Idempotency-Key": "k"}, `{"todoText":"once"}`).list(t)
	}
	if first, again := replay(), replay(); len(first) != 1 || len(again) != 1 || again[0].ID != first[0].ID {
		t.Errorf("keyed create with the write scope only answered %v, then %v", texts(first), texts(again))
	}
	if got := api.setCompleted(t, writer, created[0].ID, true).list(t); len(got) != 1 || !got[0].Completed {
		t.Errorf("update with the write scope only answered %v", texts(got))
	}
	if got := api.remove(t, writer, created[0].ID).list(t); len(got) != 0 {
		t.Errorf("delete with the write scope only answered %v", texts(got))
	}
	if got := api.create(t, alice, "third").list(t); len(got) != 3 {
		t.Errorf("create with both scopes answered %v, want the whole list", texts(got))
	}
}
