package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The client's own token is reused only within the life its server gave it:
// a token that lives 2 s is not sent as an actor_token a minute later.
func TestActorTokenReusedWithinItsLife(t *testing.T) {
	issued := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issued++
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"t%d","token_type":"Bearer","expires_in":%s}`, issued, r.URL.Query().Get("life"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		life string
		max  time.Duration
	}{{"2", 2 * time.Second}, {"3600", time.Hour}, {"0", time.Minute}} {
		x := NewExchanger(ExchangeOptions{ClientID: "c", ClientSecret: "s"})
		x.endpoint = srv.URL + "?life=" + tc.life
		start := time.Now()
		tok, err := x.actorToken(context.Background())
		if err != nil || tok == "" {
			t.Fatalf("expires_in %s: %q, %v", tc.life, tok, err)
		}
		if left := x.actorExp.Sub(start); left > tc.max || left < tc.max/2 {
			t.Errorf("expires_in %s: reused for %v, want within (%v, %v]", tc.life, left, tc.max/2, tc.max)
		}
		if again, _ := x.actorToken(context.Background()); again != tok {
			t.Errorf("expires_in %s: not reused within its life (%q, then %q)", tc.life, tok, again)
		}
	}
}
