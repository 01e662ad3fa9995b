package telemetry

import (
	"context"
	"fmt"
	"log/slog"
)

// Floor wraps h for a library's logs: it drops records below level,
// whatever h allows, and never lets a message's content through (the
// attributes "message", "msg" and "envelope" are replaced by their type).
// protoactor logs whole messages when it cannot deliver or serialize one,
// and pingmcp's carry bearer tokens; the go-sdk logs each stateless
// request's session at info.
func Floor(h slog.Handler, level slog.Level) slog.Handler {
	return floor{h, level}
}

type floor struct {
	slog.Handler
	level slog.Level
}

func (h floor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h floor) Handle(ctx context.Context, r slog.Record) error {
	clean := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		clean.AddAttrs(redactMessage(a))
		return true
	})
	return h.Handler.Handle(ctx, clean)
}

func (h floor) WithAttrs(as []slog.Attr) slog.Handler {
	for i := range as {
		as[i] = redactMessage(as[i])
	}
	return floor{h.Handler.WithAttrs(as), h.level}
}

func (h floor) WithGroup(g string) slog.Handler {
	return floor{h.Handler.WithGroup(g), h.level}
}

// redactMessage replaces a message's content by its type.
func redactMessage(a slog.Attr) slog.Attr {
	switch a.Key {
	case "message", "msg", "envelope":
		return slog.String(a.Key, fmt.Sprintf("%T (content not logged)", a.Value.Any()))
	}
	return a
}
