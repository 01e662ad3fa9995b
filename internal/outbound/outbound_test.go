package outbound

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A redirect, to another port of the same host here, is answered as it is:
// its target is sent nothing, the Authorization header least of all.
func TestNoRedirectFollowed(t *testing.T) {
	reached := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Header.Get("Authorization")
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	c := Client(nil, "test")
	if c.Timeout != DefaultTimeout {
		t.Errorf("timeout %v, want %v", c.Timeout, DefaultTimeout)
	}
	req, _ := http.NewRequest(http.MethodPost, api.URL, strings.NewReader("subject_token=secret"))
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d, want the redirect itself (307)", resp.StatusCode)
	}
	select {
	case a := <-reached:
		t.Errorf("the redirect was followed, with Authorization %q", a)
	default:
	}
	// The caller's client is copied, not changed.
	mine := &http.Client{}
	Client(mine, "test")
	if mine.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
}
