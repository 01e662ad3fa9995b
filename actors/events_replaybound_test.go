package actors

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// A replay the store refuses for its size (events larger than pingmcp
// keeps) fails as one of dropped events does (the SDK answers 400 and says
// nothing of why), and the node's log says why, naming the key and the
// size; the session's other streams, and other sessions, replay as before.
func TestReplayRefusedForItsSizeLogged(t *testing.T) {
	client := redistest.Start(t)
	store := state.NewRedisEvents(client, "", state.EventOptions{})
	logs := &logtest.Buffer{}
	e := &sessionEvents{store: store, logger: slog.New(slog.NewJSONHandler(logs, nil))}
	ctx := context.Background()
	for _, stream := range []string{"big", "small"} {
		if err := e.Open(ctx, "s1", stream); err != nil {
			t.Fatal(err)
		}
		if err := e.Append(ctx, "s1", stream, []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	huge := strings.Repeat("s3cr3t", 2*state.DefaultEventsMaxBytes/6+1)
	client.HSet(ctx, "pingmcp:events:{s1}:bytes", "e:1:big", "2 "+huge)
	var err error
	for _, err = range e.After(ctx, "s1", "big", -1) {
	}
	if !errors.Is(err, state.ErrTooLarge) {
		t.Fatalf("replay of an oversize event: %v", err)
	}
	if !strings.Contains(logs.String(), "events not replayed") || !strings.Contains(logs.String(), "holds "+strconv.Itoa(len(huge)+2)+" bytes") || strings.Contains(logs.String(), "s3cr3t") {
		t.Fatalf("the refusal is not logged with its size, or quotes the events:\n%.1000s", logs)
	}
	var got []string
	for data, err := range e.After(ctx, "s1", "small", -1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
	}
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("the other stream's replay: %q", got)
	}
}
