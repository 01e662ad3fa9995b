package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// tooLarge checks that err refuses what at key for holding size units,
// over limit, and says so without quoting the value (which is made of
// content).
func tooLarge(t *testing.T, err error, what, key string, size, limit int64, unit, content string) {
	t.Helper()
	var big *TooLarge
	if !errors.As(err, &big) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%s: %v, want a *TooLarge", what, err)
	}
	if big.What != what || big.Key != key || big.Size != size || big.Limit != limit || big.Unit != unit {
		t.Fatalf("%s: refused as %+v, want %s at %s, %d %s over %d", what, *big, what, key, size, unit, limit)
	}
	msg := err.Error()
	for _, want := range []string{what, key, strconv.FormatInt(size, 10), unit} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not name %q: %s", want, msg)
		}
	}
	if content != "" && strings.Contains(msg, content) {
		t.Errorf("the refusal quotes the value: %.200s", msg)
	}
}

// A snapshot larger than pingmcp writes (a writer of Redis stored it, or a
// bug did) is refused in Redis, unread, by every read of the store: an
// activation takes its epoch and gets a *TooLarge instead of the bytes (the
// actor then refuses the session as unrestorable), Get says the same and
// List lists it without its bytes, with the *TooLarge (so that an operator
// sees it, and may end it); the other sessions are read as before, and a
// snapshot of exactly the bound is read whole. Before, each read allocated
// whatever the key held (one key of 512 MB took a node down, and the next
// activation of the session on the node that took over did again).
func TestRedisSnapshotsReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisSnapshots(client, "")
	bound := int64(2 * DefaultMaxSnapshotBytes)
	if got := s.readBound(); got != bound {
		t.Fatalf("read bound %d, want %d: twice the default --max-snapshot-bytes", got, bound)
	}
	for _, id := range []string{"big", "other"} {
		epoch, _, err := s.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, id, epoch, []byte(`{"v":1,"id":"`+id+`"}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	key := "pingmcp:session:{big}:snap"
	fill := strings.Repeat("s3cr3t", int(bound)/6+1)[:bound+1]
	if err := client.Set(ctx, key, fill, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	epoch, snap, err := s.Activate(ctx, "big", false)
	tooLarge(t, err, "session snapshot", key, bound+1, bound, "bytes", "s3cr3t")
	if epoch != 2 || snap != nil {
		t.Fatalf("an oversize snapshot activated with epoch %d and %d bytes, want epoch 2 and none", epoch, len(snap))
	}
	if ttl := client.PTTL(ctx, "pingmcp:session:{big}:epoch").Val(); ttl < fenceTTL-time.Minute {
		t.Errorf("the epoch counter of an oversize snapshot expires in %v, want the fence TTL of a session that has one", ttl)
	}
	_, err = s.Get(ctx, "big")
	tooLarge(t, err, "session snapshot", key, bound+1, bound, "bytes", "s3cr3t")
	page, _, err := s.List(ctx, "", 100)
	if err != nil || len(page) != 2 {
		t.Fatalf("List with an oversize snapshot: %v, %v; want both sessions", page, err)
	}
	for _, st := range page {
		switch st.Session {
		case "big":
			if st.Snapshot != nil {
				t.Errorf("List read the oversize snapshot: %d bytes", len(st.Snapshot))
			}
			tooLarge(t, st.Unreadable, "session snapshot", key, bound+1, bound, "bytes", "s3cr3t")
		case "other":
			if string(st.Snapshot) != `{"v":1,"id":"other"}` || st.Unreadable != nil {
				t.Errorf("List of the other session: %q, %v", st.Snapshot, st.Unreadable)
			}
		default:
			t.Errorf("List names %q", st.Session)
		}
	}
	if _, snap, err := s.Activate(ctx, "other", false); err != nil || string(snap) != `{"v":1,"id":"other"}` {
		t.Fatalf("the other session: %q, %v", snap, err)
	}

	// At the bound, read whole.
	if err := client.Set(ctx, key, fill[:bound], time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, snap, err := s.Activate(ctx, "big", false); err != nil || int64(len(snap)) != bound {
		t.Fatalf("a snapshot at the bound: %d bytes, %v", len(snap), err)
	}
	if snap, err := s.Get(ctx, "big"); err != nil || int64(len(snap)) != bound {
		t.Fatalf("Get of a snapshot at the bound: %d bytes, %v", len(snap), err)
	}
	if page, _, err := s.List(ctx, "", 100); err != nil || len(page) != 2 || page[0].Unreadable != nil || page[1].Unreadable != nil {
		t.Fatalf("List with a snapshot at the bound: %v, %v", page, err)
	}

	// The bound follows --max-snapshot-bytes when it is larger.
	s.SetMaxBytes(1 << 20)
	if err := client.Set(ctx, key, strings.Repeat("x", 2<<20), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, snap, err := s.Activate(ctx, "big", false); err != nil || len(snap) != 2<<20 {
		t.Fatalf("a snapshot within twice --max-snapshot-bytes 1 MiB: %d bytes, %v", len(snap), err)
	}
	client.Append(ctx, key, "x")
	if _, _, err := s.Activate(ctx, "big", false); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a snapshot beyond twice --max-snapshot-bytes 1 MiB: %v", err)
	}

	// A key whose name is longer than pingmcp's (its id is 22 bytes) is no
	// session of pingmcp's: neither listed nor counted, its name never
	// read whole.
	long := "pingmcp:session:{" + strings.Repeat("i", 4<<10) + "}:snap"
	client.Set(ctx, long, `{"v":1}`, time.Hour)
	client.Set(ctx, key, "{}", time.Hour)
	if page, _, err := s.List(ctx, "", 100); err != nil || len(page) != 2 {
		t.Fatalf("List with a key of a long name: %d sessions, %v", len(page), err)
	}
	if n, err := s.Count(ctx); err != nil || n != 2 {
		t.Fatalf("Count with a key of a long name: %d, %v", n, err)
	}
}

// openStream opens stream of session in e and appends data to it, one
// event each.
func openStream(t *testing.T, e *RedisEvents, session, stream string, data ...string) {
	t.Helper()
	ctx := context.Background()
	if err := e.Open(ctx, session, stream); err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		if err := e.Append(ctx, session, stream, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// A replay of more events, or bytes, than pingmcp keeps (the stream's and
// the session's bounds, or their defaults, twice) is refused in Redis
// before an event is read: the events were not written by pingmcp. Other
// sessions replay as before, a replay at the bounds reads them all, and a
// resumption from before events dropped is still answered as purged, even
// when the events after it are more than a replay reads.
func TestRedisEventsReplayBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	e := NewRedisEvents(client, "", EventOptions{MaxLen: 10, MaxBytes: 64 << 10})
	maxEvents, maxBytes := e.replayBounds()
	if maxEvents != 2*DefaultEventsMaxLen || maxBytes != 2*DefaultEventsMaxBytes {
		t.Fatalf("replay bounds %d events, %d bytes; want twice the defaults (the node's bounds are below)", maxEvents, maxBytes)
	}
	openStream(t, e, "big", "s", "a", "b")
	openStream(t, e, "other", "s", "c", "d")
	hash := "pingmcp:events:{big}:bytes"

	// One event of more bytes than a replay reads.
	fill := strings.Repeat("s3cr3t", int(maxBytes)/6+1)[:maxBytes-1]
	client.HSet(ctx, hash, "e:1:s", "1 "+fill)
	_, err := collect(t, e, "big", "s", -1)
	tooLarge(t, err, `replay of event stream "s"`, hash, maxBytes+1+3, maxBytes, "bytes", "s3cr3t")
	if got, err := collect(t, e, "other", "s", -1); err != nil || strings.Join(got, ",") != "c,d" {
		t.Fatalf("the other session's replay: %v, %v", got, err)
	}
	// At the bound (the stored values, their sequence numbers included).
	client.HSet(ctx, hash, "e:1:s", "1 "+fill[:maxBytes-2-3])
	if got, err := collect(t, e, "big", "s", -1); err != nil || len(got) != 2 || len(got[0]) != int(maxBytes)-5 {
		t.Fatalf("a replay of %d bytes: %d events, %v", maxBytes, len(got), err)
	}

	// More events than a replay reads, all there (a stream pingmcp would
	// have trimmed to its last MaxLen).
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	events := func(stream string, from, to int64) {
		t.Helper()
		fields := map[string]any{"s:" + stream: strconv.FormatInt(to, 10) + " " + now + " w"}
		for k := from; k <= to; k++ {
			fields["e:"+strconv.FormatInt(k, 10)+":"+stream] = "1 x"
		}
		if err := client.HSet(ctx, hash, fields).Err(); err != nil {
			t.Fatal(err)
		}
	}
	events("many", 1, maxEvents+1)
	_, err = collect(t, e, "big", "many", -1)
	tooLarge(t, err, `replay of event stream "many"`, hash, maxEvents+1, maxEvents, "events", "")
	if got, err := collect(t, e, "big", "many", 0); err != nil || int64(len(got)) != maxEvents {
		t.Fatalf("a replay of %d events: %d, %v", maxEvents, len(got), err)
	}
	// Events dropped before those asked for: purged, as ever, however many
	// come after.
	events("trimmed", 5*maxEvents-9, 5*maxEvents)
	if _, err := collect(t, e, "big", "trimmed", 3); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("a replay from before dropped events: %v, want ErrEventsPurged", err)
	}
	if got, err := collect(t, e, "big", "trimmed", int(5*maxEvents)-11); err != nil || len(got) != 10 {
		t.Fatalf("a replay of the kept events: %d, %v", len(got), err)
	}
}

// A request journal larger than pingmcp writes is refused unread, by its
// fields or its bytes; one at the bounds is read whole.
func TestRedisEventsJournalBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	e := NewRedisEvents(client, "", EventOptions{})
	key := "pingmcp:events:{big}:inflight"
	fields := map[string]any{}
	for i := range DefaultJournalEntries {
		fields["s"+strconv.Itoa(i)] = "[1]"
	}
	client.HSet(ctx, key, fields)
	if got, err := e.PendingRequests(ctx, "big"); err != nil || len(got) != DefaultJournalEntries {
		t.Fatalf("a journal of %d entries: %d, %v", DefaultJournalEntries, len(got), err)
	}
	client.HSet(ctx, key, "one more", "[2]")
	_, err := e.PendingRequests(ctx, "big")
	tooLarge(t, err, "request journal", key, DefaultJournalEntries+1, DefaultJournalEntries, "entries", "")

	client.Del(ctx, key)
	ids := `["` + strings.Repeat("s3cr3t", DefaultJournalEntries*journalEntryBytes/6) + `"]`
	client.HSet(ctx, key, "s", ids[:DefaultJournalEntries*journalEntryBytes-len(`s"]`)]+`"]`)
	if got, err := e.PendingRequests(ctx, "big"); err != nil || len(got["s"]) != 1 {
		t.Fatalf("a journal of %d bytes: %v", DefaultJournalEntries*journalEntryBytes, err)
	}
	client.HSet(ctx, key, "s", ids)
	_, err = e.PendingRequests(ctx, "big")
	tooLarge(t, err, "request journal", key, int64(len(ids)+1), DefaultJournalEntries*journalEntryBytes, "bytes", "s3cr3t")
	if got, err := e.PendingRequests(ctx, "other"); err != nil || len(got) != 0 {
		t.Fatalf("another session's journal: %v, %v", got, err)
	}
	// A node whose sessions may run more calls at once reads a journal as
	// large as they make (EventOptions.JournalEntries).
	client.Del(ctx, key)
	fields["one more"] = "[2]"
	client.HSet(ctx, key, fields)
	wide := NewRedisEvents(client, "", EventOptions{JournalEntries: 2 * DefaultJournalEntries})
	if got, err := wide.PendingRequests(ctx, "big"); err != nil || len(got) != DefaultJournalEntries+1 {
		t.Fatalf("a journal of %d entries, %d read: %d, %v", DefaultJournalEntries+1, 2*DefaultJournalEntries, len(got), err)
	}
}

// Revocations more than pingmcp writes are refused unread (by their
// number, or their bytes): the node's cache keeps those it read last and
// says so in the log, once, until they are read again.
func TestRedisRevocationsReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	r := NewRedisRevocations(client, "")
	now := time.Now()
	if err := r.Revoke(ctx, RevocationKey("iss", "alice"), Revocation{At: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	cache := NewRevocationCache(r, time.Second)
	cache.Refresh(ctx)
	if !cache.Revoked("iss", "alice", now.Add(-time.Minute)) {
		t.Fatal("alice is not revoked")
	}

	// At the bound of revocations: all read.
	rev, _ := json.Marshal(redisRevocation{Revocation: Revocation{At: now, Until: now.Add(time.Hour)}, UntilMS: now.Add(time.Hour).UnixMilli()})
	fields := map[string]any{}
	for i := range maxRevocations - 1 {
		fields[RevocationKey("iss", "u"+strconv.Itoa(i))] = string(rev)
	}
	if err := client.HSet(ctx, "pingmcp:revocations", fields).Err(); err != nil {
		t.Fatal(err)
	}
	if all, err := r.All(ctx); err != nil || len(all) != maxRevocations {
		t.Fatalf("%d revocations: read %d, %v", maxRevocations, len(all), err)
	}
	client.HSet(ctx, "pingmcp:revocations", RevocationKey("iss", "mallory"), string(rev))
	_, err := r.All(ctx)
	tooLarge(t, err, "revocations", "pingmcp:revocations", maxRevocations+1, maxRevocations, "entries", "")
	// Past the bound by what ended or is no revocation: those go, in
	// Redis, and the rest is read (else only a read drops what ended, and
	// the list stayed refused for good), at most once a minute per node:
	// r purged already (in vain), a node started since does now.
	endedRev, _ := json.Marshal(redisRevocation{Revocation: Revocation{At: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour)}, UntilMS: now.Add(-time.Hour).UnixMilli()})
	client.HSet(ctx, "pingmcp:revocations", RevocationKey("iss", "mallory"), string(endedRev), RevocationKey("iss", "junk"), "s3cr3t")
	if _, err := r.All(ctx); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a second purge within the minute: %v", err)
	}
	if all, err := NewRedisRevocations(client, "").All(ctx); err != nil || len(all) != maxRevocations || client.HLen(ctx, "pingmcp:revocations").Val() != maxRevocations {
		t.Fatalf("past the bound by an ended revocation and junk: read %d, %v", len(all), err)
	}

	// Bytes: one revocation of more than all may take.
	client.Del(ctx, "pingmcp:revocations")
	if err := r.Revoke(ctx, RevocationKey("iss", "bob"), Revocation{At: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cache.Refresh(ctx)
	field := RevocationKey("iss", "carol")
	// (a revocation in force, padded: one that does not decode would go)
	padded := func(pad string) string {
		return fmt.Sprintf(`{"at":%q,"until":%q,"until_ms":%d,"pad":%q}`, now.Format(time.RFC3339Nano), now.Add(time.Hour).Format(time.RFC3339Nano), now.Add(time.Hour).UnixMilli(), pad)
	}
	client.HSet(ctx, "pingmcp:revocations", field, padded(strings.Repeat("s3cr3t", maxRevocationBytes/6+1)))
	size := int64(0)
	for _, f := range []string{field, RevocationKey("iss", "bob")} {
		size += int64(len(f)) + client.HStrLen(ctx, "pingmcp:revocations", f).Val()
	}
	_, err = r.All(ctx)
	tooLarge(t, err, "revocations", "pingmcp:revocations", size, maxRevocationBytes, "bytes", "s3cr3t")
	cache.Refresh(ctx)
	cache.Refresh(ctx)
	if !cache.Revoked("iss", "bob", now.Add(-time.Minute)) || cache.Revoked("iss", "alice", now.Add(-time.Minute)) {
		t.Error("the cache did not keep the revocations it read last")
	}
	if n := strings.Count(logs.String(), "revocations in the store are refused"); n != 1 || !strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("the refusal was logged %d times (want once, as an error, without the value):\n%.500s", n, logs)
	}
	client.HDel(ctx, "pingmcp:revocations", field)
	cache.Refresh(ctx)
	client.HSet(ctx, "pingmcp:revocations", field, padded(strings.Repeat("x", maxRevocationBytes)))
	cache.Refresh(ctx)
	if n := strings.Count(logs.String(), "revocations in the store are refused"); n != 2 {
		t.Errorf("a refusal after the revocations were read again was logged %d times in all, want 2", n)
	}
}

// Revoke refuses what the nodes would not read back: a new user once
// maxRevocations are revoked and in force (those that ended make room), and
// a key over MaxRevocationKey. Recorded, either would make every node
// refuse the whole list, and stop learning of revocations.
func TestRedisRevokeWithinReadBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	r := NewRedisRevocations(client, "")
	now := time.Now()
	in := Revocation{At: now, Until: now.Add(time.Hour)}
	inForce, _ := json.Marshal(redisRevocation{Revocation: in, UntilMS: in.Until.UnixMilli()})
	ended, _ := json.Marshal(redisRevocation{Revocation: Revocation{At: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour)}, UntilMS: now.Add(-time.Hour).UnixMilli()})
	fields := map[string]any{}
	for i := range maxRevocations {
		v := inForce
		if i < 3 {
			v = ended
		}
		fields[RevocationKey("iss", "u"+strconv.Itoa(i))] = string(v)
	}
	if err := client.HSet(ctx, "pingmcp:revocations", fields).Err(); err != nil {
		t.Fatal(err)
	}
	// Three ended: room for three new users, then none.
	for i := range 3 {
		if err := r.Revoke(ctx, RevocationKey("iss", "new"+strconv.Itoa(i)), in); err != nil {
			t.Fatalf("revocation %d, with ended ones to drop: %v", i, err)
		}
	}
	if n := client.HLen(ctx, "pingmcp:revocations").Val(); n != maxRevocations {
		t.Fatalf("%d revocations kept, want %d", n, maxRevocations)
	}
	err := r.Revoke(ctx, RevocationKey("iss", "one-too-many"), in)
	if !errors.Is(err, ErrRevocationsFull) || client.HExists(ctx, "pingmcp:revocations", RevocationKey("iss", "one-too-many")).Val() {
		t.Fatalf("a new user past the bound: %v", err)
	}
	// A user revoked already is revoked again, longer.
	longer := Revocation{At: now, Until: now.Add(2 * time.Hour)}
	if err := r.Revoke(ctx, RevocationKey("iss", "u5"), longer); err != nil {
		t.Fatalf("a user revoked again at the bound: %v", err)
	}
	all, err := r.All(ctx)
	if err != nil || len(all) != maxRevocations || !all[RevocationKey("iss", "u5")].Until.Equal(longer.Until) {
		t.Fatalf("the revocations read back: %d, %v", len(all), err)
	}
	// A key over MaxRevocationKey, in either store.
	long := RevocationKey("iss", strings.Repeat("s", MaxRevocationKey))
	for name, s := range map[string]Revocations{"redis": r, "memory": &MemoryRevocations{}} {
		if err := s.Revoke(ctx, long, in); err == nil || !strings.Contains(err.Error(), "over 512") {
			t.Errorf("%s: a key of %d bytes: %v", name, len(long), err)
		}
	}
}

// A snapshot key holding another type than a string (a hash: not written
// by pingmcp) is unreadable as an oversize one is: Get fails with a
// *WrongType (ErrUnreadable) naming its key and type, never its content,
// and List lists it, with the *WrongType, among the others. Before, Get
// failed as a store out of reach would, and List failed whole: one such
// key hid every session from the admin API.
func TestRedisSnapshotsWrongType(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisSnapshots(client, "")
	for _, id := range []string{"hashed", "other"} {
		epoch, _, err := s.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, id, epoch, []byte(`{"v":1}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	key := "pingmcp:session:{hashed}:snap"
	client.Del(ctx, key)
	client.HSet(ctx, key, "s3cr3t", "s3cr3t")
	wrongType := func(what string, err error) {
		t.Helper()
		var wrong *WrongType
		if !errors.As(err, &wrong) || !errors.Is(err, ErrUnreadable) || errors.Is(err, ErrTooLarge) ||
			wrong.Key != key || wrong.Type != "hash" || wrong.What != "session snapshot" {
			t.Fatalf("%s: %v, want a *WrongType of a hash at %s", what, err, key)
		}
		if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, "hash") || strings.Contains(msg, "s3cr3t") {
			t.Errorf("%s: %q, want the key and type named, not the content", what, msg)
		}
	}
	_, err := s.Get(ctx, "hashed")
	wrongType("Get", err)
	page, _, err := s.List(ctx, "", 100)
	if err != nil || len(page) != 2 {
		t.Fatalf("List with a hash for a snapshot: %v, %v; want both sessions", page, err)
	}
	for _, st := range page {
		if st.Session == "hashed" {
			wrongType("List", st.Unreadable)
		} else if st.Unreadable != nil || string(st.Snapshot) != `{"v":1}` {
			t.Errorf("List of %s: %q, %v", st.Session, st.Snapshot, st.Unreadable)
		}
	}
	if err := s.End(ctx, "hashed"); err != nil {
		t.Fatalf("End of a session whose snapshot is a hash: %v", err)
	}
	if n := client.Exists(ctx, key).Val(); n != 0 {
		t.Error("End left the hash")
	}
}
