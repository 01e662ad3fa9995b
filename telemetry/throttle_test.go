package telemetry

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A throttled line is logged at most Burst times a second; the next one
// logged says how many were not.
func TestThrottleLog(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Burst: 2, Now: func() time.Time { return now }}
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	for range 5 {
		th.Log(l, slog.LevelWarn, "refused", "peer", "p")
	}
	if n := strings.Count(buf.String(), "msg=refused"); n != 2 || strings.Contains(buf.String(), "suppressed") {
		t.Fatalf("%d lines in a second of 5, want 2 without a count:\n%s", n, buf.String())
	}
	now = now.Add(time.Second)
	th.Log(l, slog.LevelWarn, "refused", "peer", "p")
	if !strings.Contains(buf.String(), "level=WARN msg=refused peer=p suppressed=3") {
		t.Errorf("the line after them:\n%s", buf.String())
	}
}
