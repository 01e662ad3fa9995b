package state

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// TestRedisEventsRandomOps runs random opens (with and without requests
// journalled), appends of random sizes (some beyond the session's budget),
// answers that finish their stream's requests, finishes without an answer,
// retries of a stream's last write and replays through a Redis store with
// small bounds, so that every way of dropping (count, session bytes, a
// stream's removal once unused, members moved) runs many times. After each
// step it checks what Redis holds: the byte count is the sum of the order's
// members; every member has its event or its stream's record and every
// event and record its member; a stream keeps the last of what was written
// to it, without a gap; a stream with a request in flight, and the
// standalone stream, are never dropped; a stream's first event is kept in
// its record only if it was empty; and a replay gives
// exactly what was written after its index, or ErrEventsPurged.
func TestRedisEventsRandomOps(t *testing.T) {
	client := redistest.Start(t)
	for seed := range uint64(4) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { redisRandomOps(t, client, seed) })
	}
}

func redisRandomOps(t *testing.T, client *redis.Client, seed uint64) {
	ctx := context.Background()
	const budget, maxLen = 6000, 3
	prefix := "rand" + strconv.FormatUint(seed, 10) + ":"
	s := NewRedisEvents(client, prefix, EventOptions{MaxLen: maxLen, MaxBytes: budget})
	r := rand.New(rand.NewPCG(seed, 7))
	sessions := []string{"a", "b"}
	// written is what was appended to each stream since it was opened
	// (data, in order: the SDK's index is the position); journal the
	// requests journalled and not finished; last the last write of each
	// stream, which may be tried again.
	written := map[[2]string][]string{}
	journal := map[[2]string]bool{}
	type write struct {
		id           WriteID
		data         string
		finish, open bool
		ids          []json.RawMessage
	}
	last := map[[2]string]write{}
	for step := range 1500 {
		session := sessions[r.IntN(len(sessions))]
		stream := "s" + strconv.Itoa(r.IntN(12))
		if r.IntN(8) == 0 {
			stream = ""
		}
		key := [2]string{session, stream}
		hash := s.keys(session)[0]
		_, known := written[key]
		record := client.HExists(ctx, hash, "s:"+stream).Val()
		if known && !record {
			// Dropped by the budget: the store forgot it.
			delete(written, key)
			delete(last, key)
			known = false
		}
		data := strings.Repeat(strconv.Itoa(step%10), 1+r.IntN(700))
		if r.IntN(2) == 0 {
			data = data[:min(len(data), 1+r.IntN(20))] // small: a stream's count bound comes first
		}
		if r.IntN(40) == 0 {
			data = strings.Repeat("x", budget) // beyond the budget: delivered, not kept
		}
		if r.IntN(6) == 0 {
			data = "" // as the SDK's priming event: kept in its stream's record if first
		}
		switch op := r.IntN(100); {
		case op < 20 || !known:
			var ids []json.RawMessage
			if stream != "" && r.IntN(2) == 0 {
				ids = []json.RawMessage{json.RawMessage(strconv.Itoa(step))}
			}
			w, openAppend := NewWriteID(), r.IntN(2) == 0
			var err error
			if !openAppend {
				err = s.OpenFor(ctx, session, stream, "", 0, ids)
			} else {
				err = s.OpenAppend(ctx, session, stream, "", 0, ids, w, []byte(data))
			}
			if err != nil {
				t.Fatalf("step %d: open %q: %v", step, stream, err)
			}
			if !known {
				written[key] = nil
			}
			if len(ids) > 0 {
				journal[key] = true
			}
			delete(last, key) // an open is a write: what came before it is not tried again
			if openAppend {
				written[key] = append(written[key], data)
				last[key] = write{id: w, data: data, open: true, ids: ids}
			}
		case op < 80:
			w, finish := NewWriteID(), journal[key] && r.IntN(3) == 0
			var err error
			if finish {
				err = s.AppendFinish(ctx, session, stream, 0, w, []byte(data))
			} else {
				err = s.AppendAt(ctx, session, stream, 0, w, []byte(data))
			}
			if err != nil {
				t.Fatalf("step %d: append to %q: %v", step, stream, err)
			}
			written[key] = append(written[key], data)
			last[key] = write{id: w, data: data, finish: finish}
			if finish {
				delete(journal, key)
			}
		case op < 88:
			// A retry of the stream's last write stores nothing more.
			l, ok := last[key]
			if !ok {
				continue
			}
			var err error
			switch {
			case l.open:
				err = s.OpenAppend(ctx, session, stream, "", 0, l.ids, l.id, []byte(l.data))
			case l.finish:
				err = s.AppendFinish(ctx, session, stream, 0, l.id, []byte(l.data))
			default:
				err = s.AppendAt(ctx, session, stream, 0, l.id, []byte(l.data))
			}
			if err != nil {
				t.Fatalf("step %d: retry on %q: %v", step, stream, err)
			}
		case op < 92:
			if err := s.FinishRequests(ctx, session, stream, 0); err != nil {
				t.Fatal(err)
			}
			delete(journal, key)
		default:
			from := r.IntN(len(written[key])+1) - 1
			// Purged only if an event it needs is not kept.
			kept := true
			implied := strings.HasSuffix(client.HGet(ctx, hash, "s:"+stream).Val(), " i")
			for k := from + 2; k <= len(written[key]); k++ {
				if !(k == 1 && implied) && !client.HExists(ctx, hash, "e:"+strconv.Itoa(k)+":"+stream).Val() {
					kept = false
				}
			}
			got, err := collect(t, s, session, stream, from)
			if err != nil && (kept || !errors.Is(err, mcp.ErrEventsPurged)) {
				t.Fatalf("step %d: replay %q after %d (its events kept: %t): %v", step, stream, from, kept, err)
			}
			if want := written[key][from+1:]; err == nil && !slices.Equal(got, want) {
				t.Fatalf("step %d: replay %q after %d: %d events, want %d", step, stream, from, len(got), len(want))
			}
		}
		checkRedisEvents(t, client, s, step, written, journal)
	}
}

// checkRedisEvents checks what Redis holds for each session of written
// (see TestRedisEventsRandomOps).
func checkRedisEvents(t *testing.T, client *redis.Client, s *RedisEvents, step int, written map[[2]string][]string, journal map[[2]string]bool) {
	t.Helper()
	ctx := context.Background()
	for _, session := range []string{"a", "b"} {
		keys := s.keys(session)
		hash := client.HGetAll(ctx, keys[0]).Val()
		members := client.ZRange(ctx, keys[3], 0, -1).Val()
		var sum int64
		seen := map[string]bool{}
		for _, m := range members {
			parts := strings.SplitN(m, "|", 4)
			if len(parts) != 4 {
				t.Fatalf("step %d: member %q", step, m)
			}
			size, _ := strconv.ParseInt(parts[1], 10, 64)
			sum += size
			field := "s:" + parts[3]
			if parts[2] != "0" {
				field = "e:" + parts[2] + ":" + parts[3]
				v, ok := hash[field]
				if !ok || !strings.HasPrefix(v, parts[0]+" ") || int64(len(v)-len(parts[0])-1+EventOverhead) != size {
					t.Fatalf("step %d: member %q has no event, or not its own (%t, %.20q)", step, m, ok, v)
				}
			} else if _, ok := hash[field]; !ok {
				t.Fatalf("step %d: member %q has no record", step, m)
			}
			if seen[field] {
				t.Fatalf("step %d: two members for %s", step, field)
			}
			seen[field] = true
		}
		var inFlight int64
		for field, v := range hash {
			if (strings.HasPrefix(field, "e:") || strings.HasPrefix(field, "s:")) && !seen[field] {
				t.Fatalf("step %d: %s has no member", step, field)
			}
			stream, ok := strings.CutPrefix(field, "s:")
			if !ok {
				continue
			}
			key := [2]string{session, stream}
			want, known := written[key]
			n, _, _ := strings.Cut(v, " ")
			if c, _ := strconv.Atoi(n); !known || c != len(want) {
				t.Fatalf("step %d: stream %q numbers %s events, %d were written (known %t)", step, stream, n, len(want), known)
			}
			// Its kept events are the last written, without a gap.
			kept := 0
			for k := len(want); k >= 1; k-- {
				d, ok := hash["e:"+strconv.Itoa(k)+":"+stream]
				if !ok {
					break
				}
				if _, data, _ := strings.Cut(d, " "); data != want[k-1] {
					t.Fatalf("step %d: stream %q event %d holds other data", step, stream, k)
				}
				kept++
			}
			for k := len(want) - kept; k >= 1; k-- {
				if _, ok := hash["e:"+strconv.Itoa(k)+":"+stream]; ok {
					t.Fatalf("step %d: stream %q keeps event %d after a gap", step, stream, k)
				}
			}
			// An empty first event is kept in the record (" i"), without a
			// field, a member or bytes; once an event after it went, a
			// replay from before that one fails anyway.
			if strings.HasSuffix(v, " i") {
				if len(want) == 0 || want[0] != "" {
					t.Fatalf("step %d: stream %q (%d written) keeps an implied first event, not written empty", step, stream, len(want))
				}
				if kept == len(want)-1 {
					kept++
				}
			}
			if kept > maxLenOf(s) {
				t.Fatalf("step %d: stream %q keeps %d events, bound %d", step, stream, kept, maxLenOf(s))
			}
			if journal[key] {
				inFlight++
			}
		}
		for key := range journal {
			if _, ok := hash["s:"+key[1]]; key[0] == session && !ok {
				t.Fatalf("step %d: stream %q, its request in flight, was dropped", step, key[1])
			}
		}
		if _, ok := written[[2]string{session, ""}]; ok {
			if _, kept := hash["s:"]; !kept {
				t.Fatalf("step %d: the standalone stream was dropped", step)
			}
		}
		b, _ := strconv.ParseInt(hash["b"], 10, 64)
		if b != sum {
			t.Fatalf("step %d: session %s counts %d bytes, its members %d", step, session, b, sum)
		}
		// Over the budget by the streams that cannot go at most: those of
		// requests in flight, the standalone one and the one written.
		if limit := s.opts.MaxBytes + (inFlight+2)*StreamOverhead; b > limit {
			t.Fatalf("step %d: session %s counts %d bytes, budget %d (%d streams in flight)", step, session, b, s.opts.MaxBytes, inFlight)
		}
		pending, err := s.PendingRequests(ctx, session)
		if err != nil {
			t.Fatal(err)
		}
		for key := range journal {
			if _, ok := pending[key[1]]; key[0] == session && !ok {
				t.Fatalf("step %d: the journal lost %q", step, key[1])
			}
		}
		for stream := range pending {
			if !journal[[2]string{session, stream}] {
				t.Fatalf("step %d: the journal keeps %q, finished", step, stream)
			}
		}
	}
}

func maxLenOf(s *RedisEvents) int { return int(s.opts.MaxLen) }
