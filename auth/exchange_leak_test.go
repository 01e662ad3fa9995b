package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/rawtest"
)

// tokenEndpoint is an issuer's URL: its discovery document, and a token
// endpoint that token answers.
func tokenEndpoint(t *testing.T, token func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "token_endpoint": srv.URL + "/token"})
		case "/token":
			token(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// An answer the exchange cannot read never reaches its error: a 200 whose
// fields have unexpected types holds the issued token, and a proxy's page
// may echo the posted subject token.
func TestExchangeErrorHoldsNoToken(t *testing.T) {
	const issued, subject = "ISSUED-ACCESS-TOKEN-abcdef0123456789", "USER-SUBJECT-TOKEN-0123456789"
	for name, answer := range map[string]func(w http.ResponseWriter, r *http.Request){
		"expires_in a string": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"` + issued + `","token_type":"Bearer","expires_in":"3600"}`))
		},
		"scope an object": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"` + issued + `","token_type":"Bearer","scope":{"a":1}}`))
		},
		"a proxy's page echoing the form": func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>upstream failed for " + r.PostForm.Encode() + "</html>"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, answer), ClientID: "pingmcp", ClientSecret: "s"})
			_, err := x.Exchange(context.Background(), subject, "http://api.test", []string{"read"})
			if err == nil {
				t.Fatal("the exchange succeeded")
			}
			if strings.Contains(err.Error(), issued) || strings.Contains(err.Error(), subject) {
				t.Errorf("the exchange's error holds a token: %v", err)
			}
			if !strings.Contains(err.Error(), "could not be read") && !strings.Contains(err.Error(), "answered 502 Bad Gateway") {
				t.Errorf("the exchange's error does not say what failed: %v", err)
			}
		})
	}
	// An OAuth error is passed on as the server words it.
	x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant","error_description":"subject token expired"}`))
	}), ClientID: "pingmcp", ClientSecret: "s"})
	_, err := x.Exchange(context.Background(), subject, "http://api.test", nil)
	if e, ok := err.(*ExchangeError); !ok || e.Code != "invalid_grant" || e.Description != "subject token expired" {
		t.Errorf("an OAuth error: %#v, want invalid_grant with its description", err)
	}
}

// A redirect from the token endpoint is not followed: a 307 would post the
// user's subject token, and the client's credentials, to its target.
func TestExchangeFollowsNoRedirect(t *testing.T) {
	reached := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		reached <- r.PostForm.Get("subject_token")
	}))
	defer other.Close()
	x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}), ClientID: "pingmcp", ClientSecret: "s"})
	if _, err := x.Exchange(context.Background(), "USER-SUBJECT-TOKEN", "http://api.test", nil); err == nil {
		t.Error("an exchange answered by a redirect succeeded")
	}
	select {
	case s := <-reached:
		t.Errorf("the redirect's target was sent subject_token %q", s)
	default:
	}
}

// reflector is an authorization server, or a proxy before it, whose answer
// to every call but discovery is not HTTP and reflects the request: its
// Authorization header and its form, in a header line Go's transport
// quotes in its error.
func reflector(t *testing.T) string {
	t.Helper()
	var base string
	base = rawtest.Server(t, func(req *http.Request) string {
		if req.URL.Path == "/.well-known/openid-configuration" {
			b, _ := json.Marshal(map[string]any{"issuer": base, "token_endpoint": base + "/token",
				"revocation_endpoint": base + "/revoke", "introspection_endpoint": base + "/introspect"})
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
		}
		req.ParseForm()
		return "HTTP/1.1 200 OK\r\n" + req.Header.Get("Authorization") + " " + req.PostForm.Encode() + "\r\n\r\n"
	})
	return base
}

// An answer that is not HTTP never reaches an error with what it says: a
// reflecting server would put the client's secret (Basic) and the user's
// token there, for the exchange, the actor token, revocation and
// introspection alike.
func TestTransportErrorHoldsNoCredentials(t *testing.T) {
	const subject, secret = "USER-SUBJECT-TOKEN-0123456789", "CLIENT-SECRET-abc/def+"
	base := reflector(t)
	basic := base64.StdEncoding.EncodeToString([]byte("pingmcp:" + secret))
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded", what)
			return
		}
		if s := err.Error(); strings.Contains(s, subject) || strings.Contains(s, secret) || strings.Contains(s, basic) || strings.Contains(s, "Basic") {
			t.Errorf("%s: the error quotes the request's credentials: %v", what, err)
		} else if !strings.Contains(s, "not HTTP") {
			t.Errorf("%s: %v, want it to say the answer was not HTTP", what, err)
		}
	}
	x := NewExchanger(ExchangeOptions{Issuer: base, ClientID: "pingmcp", ClientSecret: secret})
	_, err := x.Exchange(context.Background(), subject, "http://api.test", nil)
	check("the exchange", err)
	x = NewExchanger(ExchangeOptions{Issuer: base, ClientID: "pingmcp", ClientSecret: secret, ActorToken: true})
	_, err = x.Exchange(context.Background(), subject, "http://api.test", nil)
	check("the actor token", err)
	check("revocation", x.Revoke(context.Background(), subject))
	v := NewIntrospectionVerifier(IntrospectionOptions{Issuer: base, ClientID: "pingmcp", ClientSecret: secret, Audiences: []string{"x"}})
	_, err = v.Verify(context.Background(), subject)
	check("introspection", err)
}

// A token endpoint's answer that is neither a token nor an OAuth error is
// said by its status code and standard text (never its body, nor its
// reason phrase), and a redirect is named as not followed.
func TestExchangeErrorSaysTheStatus(t *testing.T) {
	for code, want := range map[int]string{
		http.StatusTemporaryRedirect: "answered 307 Temporary Redirect, not an OAuth error (redirects are not followed)",
		http.StatusBadGateway:        "answered 502 Bad Gateway, not an OAuth error",
	} {
		x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			if code == http.StatusTemporaryRedirect {
				http.Redirect(w, r, "http://elsewhere.test/token", code)
				return
			}
			w.WriteHeader(code)
			w.Write([]byte("<html>echo: USER-SUBJECT-TOKEN</html>"))
		}), ClientID: "pingmcp", ClientSecret: "s"})
		_, err := x.Exchange(context.Background(), "USER-SUBJECT-TOKEN", "http://api.test", nil)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "USER-SUBJECT-TOKEN") {
			t.Errorf("HTTP %d: %v, want %q", code, err, want)
		}
	}
}

// An authorization server's refusal is passed on by its code and at most
// 512 bytes of its description, with neither the user's subject token nor
// the client's credentials should it echo its request: the error is logged, audited,
// put on the span and shown in the tool's result. The client_credentials
// call for the actor token is held to the same.
func TestExchangeRefusalBoundedWithoutSecrets(t *testing.T) {
	const subject, secret = "USER-SUBJECT-TOKEN-0123456789", "CLIENT-SECRET-abcdef"
	basic := base64.StdEncoding.EncodeToString([]byte("pingmcp:" + secret))
	pad := strings.Repeat("x", 900<<10)
	refuse := func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant",
			"error_description": "refused " + r.PostForm.Get("subject_token") + " of " + r.Header.Get("Authorization") + " or " + secret + pad})
	}
	for name, actor := range map[string]bool{"exchange": false, "actor token": true} {
		x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, refuse), ClientID: "pingmcp", ClientSecret: secret, ActorToken: actor})
		_, err := x.Exchange(context.Background(), subject, "http://api.test", nil)
		var xerr *ExchangeError
		if !errors.As(err, &xerr) || xerr.Code != "invalid_grant" || !strings.Contains(xerr.Description, "refused") {
			t.Fatalf("%s: %v, want invalid_grant with its description", name, err)
		}
		if s := err.Error(); strings.Contains(s, subject) || strings.Contains(s, secret) || strings.Contains(s, basic) {
			t.Errorf("%s: the error quotes the request's credentials: %.200s", name, s)
		}
		if n := len(err.Error()); n > 1<<10 {
			t.Errorf("%s: the error is %d bytes, want it bounded", name, n)
		}
	}
}

// An authorization server that cannot be reached is said to be so by the
// cause alone, in the error a tool's result shows its user: not by the
// address its host name resolved to, nor the node's own, whether
// discovery or the token endpoint failed.
func TestExchangeErrorNamesNoAddress(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	down := "http://localhost:" + port
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "token_endpoint": down + "/token"})
	}))
	t.Cleanup(srv.Close)
	issuer = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for what, iss := range map[string]string{"discovery": down, "token endpoint": issuer} {
		x := NewExchanger(ExchangeOptions{Issuer: iss, ClientID: "pingmcp", ClientSecret: "s"})
		_, err := x.Exchange(context.Background(), "USER-SUBJECT-TOKEN", "http://api.test", []string{"read"})
		if err == nil || strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "::1") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: %v, want the cause without an address", what, err)
		}
	}
}
