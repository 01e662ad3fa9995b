package todo

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"AAAAAAAAAAAAAAAAAAAAAA":     true,
		"../../api/admin":            false,
		"AAAAAAAAAAAAAAAAAAAAA":      false,
		"AAAAAAAAAAAAAAAAAAAA%2F":    false,
		"":                           false,
		"AAAAAAAAAAAAAAAAAAAAAA?x=1": false,
	} {
		if err := checkID(id); (err == nil) != ok {
			t.Errorf("checkID(%q) = %v", id, err)
		}
	}
}

func TestDecodeRefusesUnknownArguments(t *testing.T) {
	var in struct {
		Text string `json:"text"`
	}
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Arguments: json.RawMessage(`{"text":"a","token":"x"}`)}}
	if err := decode(req, &in); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("unknown argument accepted: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	got := describe(map[string]any{"exp": float64(0), "scope": "b a", "sub": "alice"})
	if got["exp"] != "1970-01-01T00:00:00Z" || strings.Join(got["scope"].([]string), " ") != "a b" || got["sub"] != "alice" {
		t.Errorf("describe = %v", got)
	}
}

// Without authentication the tools say so instead of calling anything.
func TestNoCaller(t *testing.T) {
	c := &calls{opts: Options{APIURL: "http://127.0.0.1:1"}}
	res, _ := c.list(t.Context(), nil)
	if !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "without authentication") {
		t.Errorf("list without a caller: %+v", res)
	}
}
