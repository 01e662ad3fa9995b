package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

const redirectURI = "http://127.0.0.1:9/callback"

// oauth signs users in at the development authorization server the way a
// browser and a public client would: one registered client, then for each
// user the authorization code flow with PKCE.
type oauth struct {
	issuer, resource, clientID string
	http                       *http.Client
}

func newOAuth(ctx context.Context, issuer, resource string) (*oauth, error) {
	o := &oauth{issuer: issuer, resource: resource, http: &http.Client{Timeout: 30 * time.Second}}
	body, _ := json.Marshal(map[string]any{
		"client_name": "pingmcp-load", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/as/clients.oauth2", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := o.do(req, &reg); err != nil {
		return nil, fmt.Errorf("register the load client: %w", err)
	}
	o.clientID = reg.ClientID
	return o, nil
}

func (o *oauth) do(req *http.Request, out any) error {
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %d %s", req.URL.Path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

var loginForm = regexp.MustCompile(`<form method="post" action="([^"]+)">\s*<input type="hidden" name="id" value="([^"]+)">`)

// login returns an access token of user (password: the name) for the MCP
// resource, with scope.
func (o *oauth) login(ctx context.Context, user, scope string) (string, error) {
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {o.clientID}, "redirect_uri": {redirectURI}, "scope": {scope},
		"state": {"s"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {o.resource},
	}
	var callback *url.URL
	browser := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.issuer+"/as/authorization.oauth2?"+q.Encode(), nil)
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := loginForm.FindSubmatch(page)
	if form == nil {
		return "", fmt.Errorf("no login form for %s (status %d)", user, resp.StatusCode)
	}
	action, _ := url.Parse(strings.ReplaceAll(string(form[1]), "&amp;", "&"))
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, resp.Request.URL.ResolveReference(action).String(),
		strings.NewReader(url.Values{"id": {string(form[2])}, "username": {user}, "password": {user}, "action": {"login"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = browser.Do(req); err != nil {
		return "", err
	}
	resp.Body.Close()
	if callback == nil || callback.Query().Get("code") == "" {
		return "", fmt.Errorf("login as %s came back with no code (status %d)", user, resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, o.issuer+"/as/token.oauth2", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {callback.Query().Get("code")}, "redirect_uri": {redirectURI},
		"client_id": {o.clientID}, "code_verifier": {verifier}, "resource": {o.resource},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := o.do(req, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("no access token for %s", user)
	}
	return tok.AccessToken, nil
}

// balancer spreads requests over the nodes' /mcp URLs the way a load
// balancer in front of the cluster would: a node that refuses connections
// is skipped until it comes back.
type balancer struct {
	urls atomic.Pointer[[]string]
	// skipped counts requests a node refused to connect, sent on to the next.
	skipped atomic.Int64
}

func (b *balancer) set(urls []string) { b.urls.Store(&urls) }

// pick returns the URL to try at attempt n of a request that started on
// start.
func (b *balancer) pick(start uint64, n int) string {
	urls := *b.urls.Load()
	return urls[(start+uint64(n))%uint64(len(urls))]
}

// mcpClient speaks the streamable HTTP transport (2025-11-25) by hand, so
// that every failure can be classified and retried as the load test wants.
type mcpClient struct {
	token   string
	session string
	lb      *balancer
	home    uint64 // the balancer slot this client starts from
	http    *http.Client
	nextID  atomic.Int64
}

// failure is a request that did not succeed: its kind, and whether the
// client may retry it (pingmcp said so, or the node was unreachable).
type failure struct {
	kind      string
	retryable bool
	detail    string
}

func (f *failure) Error() string { return f.kind + ": " + f.detail }

const protocolVersion = "2025-11-25"

// post sends one JSON-RPC message and returns the response's result (nil
// for a notification). It tries each node once on connection failures.
func (c *mcpClient) post(ctx context.Context, method string, params any, notify bool) (json.RawMessage, error) {
	msg := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		msg["params"] = params
	}
	id := c.nextID.Add(1)
	if !notify {
		msg["id"] = id
	}
	body, _ := json.Marshal(msg)
	var last error
	urls := len(*c.lb.urls.Load())
	for n := range urls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.lb.pick(c.home, n), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("MCP-Protocol-Version", protocolVersion)
		if c.session != "" {
			req.Header.Set("Mcp-Session-Id", c.session)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				// Sent, perhaps served: not sent again with this id (an id
				// may not be reused while its request is in flight); the
				// caller retries with a new one.
				return nil, &failure{kind: "connection_lost", retryable: true, detail: err.Error()}
			}
			last = &failure{kind: "connection", retryable: true, detail: err.Error()}
			c.lb.skipped.Add(1)
			continue // never sent: the next node, as a load balancer would
		}
		result, err := c.read(resp, id, notify)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err() // the caller gave up, not the server
		}
		if err == nil && method == "initialize" {
			c.session = resp.Header.Get("Mcp-Session-Id")
		}
		return result, err
	}
	return nil, last
}

// read reads the answer to request id from a JSON or SSE response.
func (c *mcpClient) read(resp *http.Response, id int64, notify bool) (json.RawMessage, error) {
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		io.Copy(io.Discard, resp.Body)
		return nil, &failure{kind: "http_503", retryable: true, detail: resp.Status}
	case resp.StatusCode == http.StatusTooManyRequests:
		io.Copy(io.Discard, resp.Body)
		return nil, &failure{kind: "http_429", retryable: true, detail: resp.Status}
	case resp.StatusCode == http.StatusAccepted && notify:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &failure{kind: fmt.Sprintf("http_%d", resp.StatusCode), detail: string(b)}
	}
	var answer struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    struct {
				Retryable bool `json:"retryable"`
			} `json:"data"`
		} `json:"error"`
	}
	found := false
	want := fmt.Sprint(id)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		// The buffer grows as lines need it (to 8 MiB): a 1 MiB one made for
		// every response was most of this client's CPU (clearing it), taken
		// from the nodes it measures on a shared machine.
		sc.Buffer(nil, 8<<20)
		for sc.Scan() && !found {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if json.Unmarshal([]byte(data), &answer) == nil && string(answer.ID) == want {
				found = true
			}
		}
	} else if json.NewDecoder(resp.Body).Decode(&answer) == nil && string(answer.ID) == want {
		found = true
	}
	if !found {
		// The stream ended before the answer: the actor went away.
		return nil, &failure{kind: "stream_cut", retryable: true, detail: "the response ended before its answer"}
	}
	if e := answer.Error; e != nil {
		return nil, &failure{kind: fmt.Sprintf("jsonrpc_%d", e.Code), retryable: e.Data.Retryable, detail: e.Message}
	}
	return answer.Result, nil
}

// connect opens a session.
func (c *mcpClient) connect(ctx context.Context) error {
	_, err := c.post(ctx, "initialize", map[string]any{
		"protocolVersion": protocolVersion, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "pingmcp-load", "version": "1"},
	}, false)
	if err != nil {
		return err
	}
	if c.session == "" {
		return errors.New("initialize answered without a session id")
	}
	_, err = c.post(ctx, "notifications/initialized", nil, true)
	return err
}

// callTool runs a tool; a tool's own error (isError) is a failure.
func (c *mcpClient) callTool(ctx context.Context, name string, args map[string]any) (string, error) {
	res, err := c.post(ctx, "tools/call", map[string]any{"name": name, "arguments": args}, false)
	if err != nil {
		return "", err
	}
	var out struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return "", &failure{kind: "bad_result", detail: err.Error()}
	}
	text := ""
	if len(out.Content) > 0 {
		text = out.Content[0].Text
	}
	if out.IsError {
		return "", &failure{kind: "tool_error", detail: text}
	}
	return text, nil
}
