package devidp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
)

// The development authorization server configured as PingFederate is for
// Ping's MCP demo: the MCP server's resource, the Todo API's, and pingmcp
// as the confidential client that exchanges the user's token for a Todo API
// token on every tool call.
func Example() {
	// The issuer is the server's own URL, so take the socket first.
	ts := httptest.NewUnstartedServer(nil)
	idp, err := devidp.New(&devidp.Options{
		Issuer:  "http://" + ts.Listener.Addr().String(),
		Clients: []devidp.Client{{ID: "pingmcp", Secret: "dev-secret"}},
		Resources: []devidp.Resource{
			{URI: "http://127.0.0.1:8080/mcp", Scopes: []string{"openid", "profile", "offline_access", "mcp:tools", "todo_api:read", "todo_api:write"}},
			{URI: "http://127.0.0.1:8081", Scopes: []string{"todo_api:read", "todo_api:write"}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ts.Config.Handler = idp
	ts.Start()
	defer ts.Close()

	// What an MCP client holds after the code flow (here without the login).
	userToken, err := idp.AccessToken("alice", "some-mcp-client", "http://127.0.0.1:8080/mcp", "mcp:tools", "todo_api:read")
	if err != nil {
		log.Fatal(err)
	}

	// pingmcp exchanges it for a Todo API token, as it would with PingFederate.
	form := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {userToken},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"resource":             {"http://127.0.0.1:8081"},
		"scope":                {"todo_api:read todo_api:write"},
	}
	req, _ := http.NewRequest(http.MethodPost, idp.Issuer()+devidp.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("pingmcp", "dev-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var exchanged struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		Scope           string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&exchanged); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, exchanged.IssuedTokenType, exchanged.Scope)

	// The Todo API verifies it as it would a PingFederate token.
	verifier := auth.NewJWTVerifier(auth.JWTOptions{Issuer: idp.Issuer(), Audiences: []string{"http://127.0.0.1:8081"}})
	tok, err := verifier.Verify(context.Background(), exchanged.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Subject, tok.ClientID, tok.Scopes, tok.Actor)
	// Output:
	// 200 OK urn:ietf:params:oauth:token-type:access_token todo_api:read
	// alice some-mcp-client [todo_api:read] map[sub:pingmcp]
}
