package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/telemetry"
)

// protoactor logs undeliverable messages whole; ours carry bearer tokens.
func TestProtoactorLogsNoMessageContent(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(telemetry.Floor(slog.NewTextHandler(&out, nil), slog.LevelWarn))
	env := &envelope.Envelope{Body: &envelope.Envelope_Request{Request: &envelope.Request{
		Principal: &envelope.Principal{Token: "eyJsecret.token.value"},
	}}}
	logger.Error("EndpointWriter failed to serialize message", slog.Any("message", env))
	logger.With(slog.Any("message", env)).Error("again")
	logger.Info("dropped below the floor", slog.Any("message", env))
	got := out.String()
	if strings.Contains(got, "eyJsecret") {
		t.Fatalf("a token reached the log: %s", got)
	}
	if !strings.Contains(got, "EndpointWriter failed") || !strings.Contains(got, "content not logged") || strings.Contains(got, "below the floor") {
		t.Errorf("log = %s", got)
	}
}
