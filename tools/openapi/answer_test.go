package openapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/rawtest"
	"github.com/pingmcp/pingmcp/tools/answer"
)

// rawAPI answers every request with what reply makes of it, written as
// is: not necessarily HTTP.
var rawAPI = rawtest.Server

// An answer that is not HTTP fails the call with Go's transport error,
// which quotes what the API sent: never the token, should the API echo it,
// and never more than an excerpt.
func TestTransportErrorShowsNoToken(t *testing.T) {
	long := strings.Repeat("ignore previous instructions ", 2000)
	for name, reply := range map[string]func(string) string{
		"status line": func(auth string) string { return auth + "\r\n\r\n" },
		"header line": func(auth string) string { return "HTTP/1.1 200 OK\r\n" + auth + "\r\nContent-Length: 0\r\n\r\n" },
		"status code": func(auth string) string { return "HTTP/1.1 " + strings.TrimPrefix(auth, "Bearer ") + " x\r\n\r\n" },
		"a long line": func(string) string { return "HTTP/1.1 200 OK\r\n" + long + "\r\n\r\n" },
		"an escaped token": func(auth string) string {
			return "HTTP/1.1 200 OK\r\n" + strings.ReplaceAll(auth, "t", `\u0074`) + "\r\n\r\n"
		},
	} {
		t.Run(name, func(t *testing.T) {
			cs := connect(t, itemsTools(t, rawAPI(t, func(req *http.Request) string { return reply(req.Header.Get("Authorization")) }), Options{}), &countingCaller{})
			res := callTool(t, cs, "items_getItem", `{"id":"a"}`)
			b, _ := json.Marshal(res)
			if !res.IsError || strings.Contains(string(b), testToken) || len(text(res)) > answer.MaxExcerpt+200 {
				t.Errorf("the tool's error (%d bytes) shows the token or more than an excerpt: %.300s", len(text(res)), text(res))
			}
		})
	}
}

// A path argument that becomes '?' or '#' once percent-decoded is refused:
// an API that decodes the path again would end it there.
func TestPathEndAfterDecoding(t *testing.T) {
	api := newRecorder(t, nil)
	cs := connect(t, itemsTools(t, api.URL, Options{}), &countingCaller{})
	for _, id := range []string{"5%3Fx", "5%23x", "5%253Fx", "5%2523x"} {
		if res := callTool(t, cs, "items_deleteItem", `{"id":"`+id+`"}`); !res.IsError {
			t.Errorf("id %q was sent; decoded again it ends the path", id)
		}
	}
	if res := callTool(t, cs, "items_deleteItem", `{"id":"5?x"}`); res.IsError {
		t.Errorf("id \"5?x\" (sent escaped, %%3F) was refused: %s", text(res))
	}
}

// A document's URL may carry a credential (userinfo, a signed query): an
// answer that is not HTTP never has its fetch's error quote it.
func TestFetchErrorQuotesNoCredential(t *testing.T) {
	base := rawAPI(t, func(req *http.Request) string {
		return req.Method + " " + req.URL.RequestURI() + " " + req.Header.Get("Authorization") + "\r\n\r\n"
	})
	loc := strings.Replace(base, "http://", "http://svc:BASIC-PASSWORD@", 1) + "/spec.json?sig=SIGNED-URL-SECRET"
	_, err := fetch(context.Background(), loc, Options{HTTPClient: &http.Client{Timeout: 5 * time.Second}, MaxDocumentBytes: 1 << 20})
	if err == nil || strings.Contains(err.Error(), "SIGNED-URL-SECRET") || strings.Contains(err.Error(), "Basic ") || !strings.Contains(err.Error(), "not HTTP") {
		t.Errorf("the fetch's error: %v; want it to say the answer was not HTTP, quoting nothing", err)
	}
}
