package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle bounds the lines of one kind a process logs: at most Burst a
// second, the rest counted and reported with the next line logged. It is
// for lines an outsider can cause at will (a refused connection, a refused
// token): they must leave a trace without letting a flood fill the log.
// The zero value allows 5 a second.
type Throttle struct {
	Burst int
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu         sync.Mutex
	second     time.Time
	n          int
	suppressed int
}

// Allow says whether a line may be logged now and, if so, how many were
// suppressed since the last one logged (to be logged with it).
func (t *Throttle) Allow() (ok bool, suppressed int) {
	burst := t.Burst
	if burst <= 0 {
		burst = 5
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if now := now(); now.Sub(t.second) >= time.Second {
		t.second, t.n = now, 0
	}
	t.n++
	if t.n > burst {
		t.suppressed++
		return false, 0
	}
	suppressed, t.suppressed = t.suppressed, 0
	return true, suppressed
}

// Log logs msg at level through l if t allows a line now, with the count
// of the lines it suppressed since the last one (attribute suppressed,
// when there were).
func (t *Throttle) Log(l *slog.Logger, level slog.Level, msg string, attrs ...any) {
	ok, suppressed := t.Allow()
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.Log(context.Background(), level, msg, attrs...)
}
