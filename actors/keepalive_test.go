package actors

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// unacked is the window of a stream whose parts nobody acknowledges here:
// one that keep-alives, every interval, never fill. (They would fill a
// window of 16 in 16 intervals, a fraction of a second, and the test's next
// flush would then wait for an ack forever: a test delayed that long, on a
// loaded machine, would hang.)
const unacked = 1 << 20

// awaitPart returns the next part the writer sends within d, or nil.
func (s *sink) awaitPart(d time.Duration) *envelope.ResponsePart {
	select {
	case p := <-s.parts:
		return p
	case <-time.After(d):
		return nil
	}
}

// An event stream silent for the keep-alive interval carries a comment, a
// part of its own with no event id, again after each interval, and none
// once the response is over.
func TestRelayWriterKeepAliveOnIdleStream(t *testing.T) {
	const interval = 20 * time.Millisecond
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(unacked), s.send)
	w.startKeepAlive(interval, false)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(": ok\n\n"))
	w.Flush()
	if p := s.awaitPart(10 * time.Second); p == nil || string(p.Body) != ": ok\n\n" {
		t.Fatalf("first part = %+v", p)
	}
	for i := range 3 {
		p := s.awaitPart(10 * time.Second)
		if p == nil || string(p.Body) != keepAliveComment || p.Final || p.Status != 0 {
			t.Fatalf("keep-alive %d = %+v", i, p)
		}
		if strings.Contains(string(p.Body), "id:") {
			t.Fatalf("a keep-alive carries an event id: %q", p.Body)
		}
	}
	// An event in between restarts the interval; each part is whole.
	w.Write([]byte("id: s_1\ndata: {}\n\n"))
	w.Flush()
	for p := s.awaitPart(10 * time.Second); ; p = s.awaitPart(10 * time.Second) {
		if p == nil {
			t.Fatal("the event never went out")
		}
		if string(p.Body) == "id: s_1\ndata: {}\n\n" {
			break
		}
		if string(p.Body) != keepAliveComment {
			t.Fatalf("part = %q", p.Body)
		}
	}
	w.finish()
	for p := s.awaitPart(10 * time.Second); p == nil || !p.Final; p = s.awaitPart(10 * time.Second) {
		if p == nil {
			t.Fatal("no final part")
		}
	}
	if p := s.awaitPart(5 * interval); p != nil {
		t.Fatalf("a part after the final one: %+v", p)
	}
}

// A keep-alive never splits an event: while the handler has written part
// of one and not flushed, none is written, and the event goes out whole.
func TestRelayWriterKeepAliveNeverSplitsAnEvent(t *testing.T) {
	const interval = 10 * time.Millisecond
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(unacked), s.send)
	w.startKeepAlive(interval, false)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte(": ok\n\n"))
	w.Flush()
	s.awaitPart(10 * time.Second)
	// Wait for a keep-alive, so that the timer is known to run, then
	// write half an event.
	if p := s.awaitPart(10 * time.Second); p == nil || string(p.Body) != keepAliveComment {
		t.Fatalf("keep-alive = %+v", p)
	}
	w.Write([]byte("id: s_1\n"))
	if p := s.awaitPart(10 * interval); p != nil {
		t.Fatalf("a part while an event was half written: %q", p.Body)
	}
	w.Write([]byte("data: {}\n\n"))
	w.Flush()
	if p := s.awaitPart(10 * time.Second); p == nil || string(p.Body) != "id: s_1\ndata: {}\n\n" {
		t.Fatalf("event part = %+v", p)
	}
	w.finish()
}

// A plain JSON response, or a stream with keep-alives off, carries none;
// and a keep-alive never waits for the window (the edge is behind: the
// stream is not silent).
func TestRelayWriterKeepAliveOnlyWhereDue(t *testing.T) {
	const interval = 10 * time.Millisecond
	cases := map[string]func(w *relayWriter){
		"json response": func(w *relayWriter) {
			w.startKeepAlive(interval, false)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{"))
			w.Flush()
		},
		"keep-alive off": func(w *relayWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte(": ok\n\n"))
			w.Flush()
		},
	}
	for name, start := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSink()
			w := newRelayWriter(context.Background(), "r", newWindow(16), s.send)
			start(w)
			s.awaitPart(10 * time.Second)
			if p := s.awaitPart(10 * interval); p != nil {
				t.Fatalf("a keep-alive: %q", p.Body)
			}
			w.finish()
		})
	}
	t.Run("window full", func(t *testing.T) {
		s := newSink()
		win := newWindow(2)
		w := newRelayWriter(context.Background(), "r", win, s.send)
		w.startKeepAlive(interval, false)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte(": ok\n\n"))
		w.Flush()
		w.Write([]byte("data: 1\n\n"))
		w.Flush() // parts 0 and 1: the window of 2 is full
		s.awaitPart(10 * time.Second)
		s.awaitPart(10 * time.Second)
		if p := s.awaitPart(10 * interval); p != nil {
			t.Fatalf("a keep-alive beyond the window: %q", p.Body)
		}
		win.ack(1)
		if p := s.awaitPart(10 * time.Second); p == nil || string(p.Body) != keepAliveComment {
			t.Fatalf("after the ack: %+v", p)
		}
		w.finish()
	})
}

// A GET the handler holds open without writing a byte (the go-sdk resuming
// a stream with nothing to replay) gets its headers, an event stream's,
// with the first keep-alive; the handler's events follow. A GET answered
// at once gets nothing more.
func TestRelayWriterKeepAliveOpensAHeldGET(t *testing.T) {
	const interval = 20 * time.Millisecond
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(unacked), s.send)
	w.startKeepAlive(interval, true)
	w.Header().Set("Content-Type", "text/event-stream")
	p := s.awaitPart(10 * time.Second)
	if p == nil || p.Status != http.StatusOK || string(p.Body) != keepAliveComment || p.Final {
		t.Fatalf("first part of a held GET = %+v", p)
	}
	h := http.Header{}
	envelope.ToHTTP(p.Headers, h)
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache, no-transform" {
		t.Errorf("headers of a held GET: %v", h)
	}
	w.Write([]byte("id: s_2\ndata: {}\n\n"))
	w.Flush()
	for p := s.awaitPart(10 * time.Second); p == nil || string(p.Body) != "id: s_2\ndata: {}\n\n"; p = s.awaitPart(10 * time.Second) {
		if p == nil || p.Status != 0 || string(p.Body) != keepAliveComment {
			t.Fatalf("part after the head = %+v", p)
		}
	}
	w.finish()

	s2 := newSink()
	w2 := newRelayWriter(context.Background(), "r2", newWindow(16), s2.send)
	w2.startKeepAlive(interval, true)
	w2.WriteHeader(http.StatusNotFound)
	w2.Write([]byte("session not found\n"))
	w2.finish()
	if p := s2.awaitPart(10 * time.Second); p == nil || p.Status != http.StatusNotFound || !p.Final {
		t.Fatalf("refused GET = %+v", p)
	}
	if p := s2.awaitPart(10 * interval); p != nil {
		t.Fatalf("a part after a refused GET: %+v", p)
	}
}
