package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMemoryEventsRandomOps runs random opens, appends of random sizes
// (some beyond the session's budget), answered and unanswered requests,
// replays held across later writes, and closed sessions through a memory
// store with small bounds, so that every way of dropping (count, session
// bytes, total bytes, a stream's removal once unused or expired, own places
// moved to the newest end) and both compactions (of a session's order, of a stream's
// bytes) run many times; after each step it checks what the store holds
// against what was written.
func TestMemoryEventsRandomOps(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { randomOps(t, seed) })
	}
}

func randomOps(t *testing.T, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 42))
	m := NewMemoryEvents(nil)
	m.SetOptions(EventOptions{MaxLen: 12, MaxBytes: 64 << 10, MaxTotalBytes: 160 << 10, TTL: time.Minute})
	now := time.Unix(0, 0)
	m.Now = func() time.Time { return now }
	// appended counts the events written to each stream since it was
	// (re)opened, which is the SDK's index of its next event.
	appended := map[[2]string]int{}
	// emptyFirst says a stream's event 0 was written empty (as the SDK's
	// priming event), which counts nothing.
	emptyFirst := map[[2]string]bool{}
	type held struct {
		session, stream string
		from            int
		events          [][]byte
		want            []string
	}
	var holds []held
	sessions := []string{"a", "b", "c", "d"}
	users := map[string]string{"a": "u1", "b": "u1", "c": "u2", "d": "u3"}
	for step := range 6000 {
		session := sessions[r.IntN(len(sessions))]
		stream := "s" + strconv.Itoa(r.IntN(30))
		if r.IntN(2) == 0 {
			stream = "s" + strconv.Itoa(r.IntN(3)) // a few busy streams
		}
		if r.IntN(10) == 0 {
			stream = "" // the standalone stream
		}
		key := [2]string{session, stream}
		// Streams untouched for a minute expire.
		now = now.Add(time.Duration(r.IntN(100)) * time.Millisecond)
		if r.IntN(500) == 0 {
			now = now.Add(time.Minute)
		}
		switch op := r.IntN(100); {
		case op < 25:
			var ids []json.RawMessage
			if stream != "" && r.IntN(2) == 0 {
				ids = []json.RawMessage{json.RawMessage(strconv.Itoa(step))}
			}
			before, _ := m.sessions[session].streamOf(stream)
			if err := m.OpenFor(ctx, session, stream, users[session], 0, ids); err != nil {
				t.Fatalf("step %d: open: %v", step, err)
			}
			if st, _ := m.sessions[session].streamOf(stream); st != before {
				appended[key] = 0 // opened anew (it was not, or it expired just now)
			}
		case op < 85:
			if _, open := m.sessions[session].streamOf(stream); !open {
				continue
			}
			size := r.IntN(3000)
			if r.IntN(2) == 0 {
				size = r.IntN(100)
			}
			if r.IntN(200) == 0 {
				size = 70 << 10 // larger than the session's budget
			}
			data := eventData(session, stream, appended[key], size)
			if appended[key] == 0 {
				emptyFirst[key] = r.IntN(3) == 0
				if emptyFirst[key] {
					data = nil
				}
			}
			err := m.AppendAt(ctx, session, stream, 0, "", data)
			if errors.Is(err, ErrStreamGone) {
				continue // expired just now
			} else if err != nil {
				t.Fatalf("step %d: append: %v", step, err)
			}
			appended[key]++
		case op < 93:
			if err := m.FinishRequests(ctx, session, stream, 0); err != nil {
				t.Fatal(err)
			}
		case op < 99:
			// Hold a replay's events across the steps that follow: they
			// must not change under it.
			st, open := m.sessions[session].streamOf(stream)
			if !open {
				continue
			}
			from := st.first - 1 + r.IntN(st.kept+1)
			var events [][]byte
			var want []string
			for d, err := range m.After(ctx, session, stream, from) {
				if err != nil {
					t.Fatalf("step %d: replay of %q/%q after %d (first %d): %v", step, session, stream, from, st.first, err)
				}
				events = append(events, d)
				want = append(want, string(d))
			}
			holds = append(holds, held{session, stream, from, events, want})
		default:
			if err := m.SessionClosed(ctx, session); err != nil {
				t.Fatal(err)
			}
		}
		checkMemoryEvents(t, step, m, appended, emptyFirst)
	}
	for _, h := range holds {
		for i := range h.events {
			if string(h.events[i]) != h.want[i] {
				t.Fatalf("a replay of %q/%q after %d held: event %d changed from %.40q to %.40q", h.session, h.stream, h.from, i, h.want[i], h.events[i])
			}
		}
	}
}

// eventData is an event that names its session, stream and index, padded
// to size.
func eventData(session, stream string, index, size int) []byte {
	head := fmt.Sprintf("%s/%s/%d/", session, stream, index)
	return []byte(head + strings.Repeat("x", max(size-len(head), 0)))
}

// streamOf returns the stream if s is open and holds it.
func (s *memSession) streamOf(stream string) (*memStream, bool) {
	if s == nil {
		return nil, false
	}
	st, ok := s.streams[stream]
	return st, ok
}

// checkMemoryEvents checks every session of m: each stream replays its
// kept events in order, each the one written at its index; the session's
// bytes, its user's and the total are what it keeps; it is within its
// budget (unless one stream in use holds more), the store within its
// total; and its order holds exactly one live place for each stream and
// kept event, and counts its dead places right.
func checkMemoryEvents(t *testing.T, step int, m *MemoryEvents, appended map[[2]string]int, emptyFirst map[[2]string]bool) {
	t.Helper()
	var total int64
	users := map[*memUser]int64{}
	for id, s := range m.sessions {
		var bytes int64
		for name, st := range s.streams {
			bytes += StreamOverhead
			var got []string
			for d, err := range m.After(context.Background(), id, name, st.first-1) {
				if err != nil {
					t.Fatalf("step %d: %q/%q: %v", step, id, name, err)
				}
				bytes += eventSize(st.first+len(got), d)
				got = append(got, string(d))
			}
			if len(got) != st.kept || st.first+st.kept != appended[[2]string{id, name}] {
				t.Fatalf("step %d: %q/%q replays %d events from %d, keeps %d; %d were written", step, id, name, len(got), st.first, st.kept, appended[[2]string{id, name}])
			}
			for i, d := range got {
				if st.first+i == 0 && emptyFirst[[2]string{id, name}] {
					if d != "" {
						t.Fatalf("step %d: %q/%q event 0 is %.30q, written empty", step, id, name, d)
					}
					continue
				}
				if want := fmt.Sprintf("%s/%s/%d/", id, name, st.first+i); !strings.HasPrefix(d, want) {
					t.Fatalf("step %d: %q/%q event %d is %.30q, want %q…", step, id, name, st.first+i, d, want)
				}
			}
		}
		if bytes != s.bytes {
			t.Fatalf("step %d: session %q counts %d bytes, keeps %d", step, id, s.bytes, bytes)
		}
		total += bytes
		users[s.user] += bytes
		live, dead := 0, 0
		for i := s.head; i < len(s.order); i++ {
			if s.live(i) {
				live++
			} else {
				dead++
			}
		}
		kept := len(s.streams)
		for _, st := range s.streams {
			kept += st.kept
		}
		if live != kept || dead != s.dead {
			t.Fatalf("step %d: session %q's order has %d live and %d dead places (counted %d dead); it keeps %d streams and events", step, id, live, dead, s.dead, kept)
		}
		for i := range s.order[:s.head] {
			if s.order[i].stream != nil {
				t.Fatalf("step %d: session %q still holds a place before its head", step, id)
			}
		}
	}
	if total != m.total {
		t.Fatalf("step %d: the store counts %d bytes, keeps %d", step, m.total, total)
	}
	for u, b := range users {
		if u.bytes != b {
			t.Fatalf("step %d: user %q counts %d bytes, keeps %d", step, u.key, u.bytes, b)
		}
	}
}

// A long-lived stream (the standalone one, trimmed by count) holds little
// more memory than the bytes it keeps, however long it runs: the dropped
// events' bytes are let go as it grows, and its session's order stays
// about the size of what it keeps.
func TestMemoryEventsLongStreamHoldsLittleMore(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryEvents(nil)
	m.SetOptions(EventOptions{MaxLen: 100})
	if err := m.OpenFor(ctx, "s", "", "u", 0, nil); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	for i := range 100_000 {
		size := 50 + r.IntN(2000)
		if err := m.AppendAt(ctx, "s", "", 0, "", eventData("s", "", i, size)); err != nil {
			t.Fatal(err)
		}
		s := m.sessions["s"]
		st := s.streams[""]
		var kept int
		next := st.base
		for range st.kept {
			var ev []byte
			ev, next = st.at(next)
			kept += len(ev)
		}
		if kept > 64<<10 {
			worst = max(worst, float64(cap(st.data))/float64(kept))
		}
		if len(s.order) > 2*(st.kept+1)+64 {
			t.Fatalf("after %d events the order holds %d places for %d events", i, len(s.order), st.kept)
		}
	}
	t.Logf("the stream's array is at most %.2f× the bytes it keeps", worst)
	if worst > 2.1 {
		t.Errorf("the stream's array reached %.2f× the bytes it keeps", worst)
	}
}
