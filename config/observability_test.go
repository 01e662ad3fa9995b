package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestTracingAndAuditFlags(t *testing.T) {
	c, err := Parse("dev", []string{"--otlp-endpoint", "http://collector:4318", "--audit-log", "/var/log/pingmcp-audit.jsonl", "--audit-tool-args"}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.OTLPEndpoint != "http://collector:4318" || c.AuditLog != "/var/log/pingmcp-audit.jsonl" || !c.AuditToolArgs {
		t.Errorf("parsed %q %q %v", c.OTLPEndpoint, c.AuditLog, c.AuditToolArgs)
	}
	c, err = Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0"}, env(map[string]string{"PINGMCP_OTLP_ENDPOINT": "collector:4318", "PINGMCP_AUDIT_TOOL_ARGS": "true"}), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.OTLPEndpoint != "collector:4318" || !c.AuditToolArgs || c.AuditLog != "" {
		t.Errorf("from the environment: %q %v %q", c.OTLPEndpoint, c.AuditToolArgs, c.AuditLog)
	}
	if c, err = Parse("todo-api", []string{"--issuer", "http://idp", "--otlp-endpoint", "https://collector/v1/traces"}, env(nil), new(bytes.Buffer)); err != nil || c.OTLPEndpoint == "" {
		t.Errorf("todo-api --otlp-endpoint: %v", err)
	}
	for _, bad := range []string{"ftp://collector", "http://"} {
		_, err := Parse("dev", []string{"--otlp-endpoint", bad}, env(nil), new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "--otlp-endpoint") {
			t.Errorf("--otlp-endpoint %q: %v", bad, err)
		}
	}
}
