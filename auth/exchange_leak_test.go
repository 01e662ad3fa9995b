package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
			if !strings.Contains(err.Error(), "could not be read") {
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
