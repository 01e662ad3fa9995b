package actors

import (
	"slices"
	"testing"
)

func TestToolCalls(t *testing.T) {
	tests := []struct {
		body  string
		names []string
		bad   bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`, []string{"delete_todo"}, false},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil, false},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a"}}]`, []string{"a"}, false},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"x","params":{"name":"delete_todo"}}`, nil, true},
		{`{"jsonrpc":"2.0","id":1,"method":"x","method":"tools/call","params":{"name":"delete_todo"}}`, nil, true},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo","Name":"who_am_I"}}`, nil, true},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, nil, true},
		{`not json`, nil, false},
		{`[1,2]`, nil, false},
	}
	for _, tt := range tests {
		calls, err := toolCalls([]byte(tt.body))
		var names []string
		for _, c := range calls {
			names = append(names, c.name)
		}
		if (err != nil) != tt.bad || !slices.Equal(names, tt.names) {
			t.Errorf("toolCalls(%s) = %v, %v; want %v, error %v", tt.body, names, err, tt.names, tt.bad)
		}
	}
}
