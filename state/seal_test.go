package state

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func key() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestSealRoundTripAndRotation(t *testing.T) {
	k1, k2 := key(), key()
	old, err := ParseKeys("k1:" + k1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := []byte("session-1/subject-token")
	sealed := old.Seal([]byte("secret token"), ctx)
	if strings.Contains(sealed, "secret") || !strings.HasPrefix(sealed, "k1.") {
		t.Fatalf("sealed = %q", sealed)
	}
	// After rotation: new values under k2, old ones still open.
	rotated, err := ParseKeys("k2:" + k2 + ", k1:" + k1)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rotated.Open(sealed, ctx); err != nil || string(pt) != "secret token" {
		t.Fatalf("open after rotation: %q %v", pt, err)
	}
	if s := rotated.Seal([]byte("x"), ctx); !strings.HasPrefix(s, "k2.") {
		t.Errorf("new values sealed under %q, want k2", s)
	}
	// Once k1 is dropped, its values are gone.
	if _, err := ParseKeys("k2:" + k2); err != nil {
		t.Fatal(err)
	}
	only2, _ := ParseKeys("k2:" + k2)
	if _, err := only2.Open(sealed, ctx); !errors.Is(err, ErrUnsealable) {
		t.Errorf("open under a dropped key: %v", err)
	}
}

// Tampered, truncated, moved or garbage values fail closed.
func TestSealFailsClosed(t *testing.T) {
	s, _ := ParseKeys("k1:" + key())
	ctx := []byte("session-1/subject-token")
	sealed := s.Seal([]byte("secret token"), ctx)
	id, body, _ := strings.Cut(sealed, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	cases := map[string]struct {
		sealed string
		ctx    []byte
	}{
		"other session":  {sealed, []byte("session-2/subject-token")},
		"flipped bit":    {id + "." + base64.RawURLEncoding.EncodeToString(flipped), ctx},
		"truncated":      {id + "." + base64.RawURLEncoding.EncodeToString(raw[:10]), ctx},
		"empty body":     {id + ".", ctx},
		"no separator":   {"k1", ctx},
		"not base64":     {id + ".!!!", ctx},
		"unknown key id": {"k9." + body, ctx},
		"other key id":   {"k2." + body, ctx},
		"empty":          {"", ctx},
	}
	for name, c := range cases {
		if pt, err := s.Open(c.sealed, c.ctx); !errors.Is(err, ErrUnsealable) || pt != nil {
			t.Errorf("%s: %q, %v", name, pt, err)
		}
	}
	// A vast key id, as a writer of the store may put, is not quoted whole.
	if _, err := s.Open(strings.Repeat("k", 1<<20)+"."+body, ctx); err == nil || len(err.Error()) > 200 {
		t.Errorf("a vast key id: an error of %d bytes", len(fmt.Sprint(err)))
	}
}

// SealBytes: what it seals opens under the same context and any key of
// the sealer, and nothing else does: another context, a bit changed, a
// cut, an unknown key, or a value never sealed (JSON as it was stored
// before events were sealed).
func TestSealBytes(t *testing.T) {
	k1, k2 := key(), key()
	old, _ := ParseKeys("k1:" + k1)
	ctx := []byte("event\x00session-1\x00stream-1")
	data := []byte(`{"jsonrpc":"2.0","id":1,"result":{"secret":"user data"}}`)
	sealed := old.SealBytes(data, ctx)
	if bytes.Contains(sealed, []byte("user data")) || sealed[0] != 0 || string(sealed[2:2+sealed[1]]) != "k1" {
		t.Fatalf("sealed = %q", sealed)
	}
	if len(sealed) != 2+2+12+len(data)+16 {
		t.Errorf("sealed %d bytes into %d", len(data), len(sealed))
	}
	rotated, _ := ParseKeys("k2:" + k2 + ",k1:" + k1)
	if pt, err := rotated.OpenBytes(sealed, ctx); err != nil || !bytes.Equal(pt, data) {
		t.Fatalf("open after rotation: %q %v", pt, err)
	}
	if s := rotated.SealBytes(nil, ctx); string(s[2:2+s[1]]) != "k2" {
		t.Errorf("new values sealed under %q, want k2", s[2:2+s[1]])
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	otherID := bytes.Clone(sealed)
	otherID[3] = '9'
	for name, c := range map[string]struct{ sealed, ctx []byte }{
		"other stream":   {sealed, []byte("event\x00session-1\x00stream-2")},
		"flipped bit":    {flipped, ctx},
		"truncated":      {sealed[:20], ctx},
		"key id cut":     {sealed[:3], ctx},
		"header only":    {sealed[:4], ctx},
		"unknown key id": {otherID, ctx},
		"not sealed":     {data, ctx},
		"empty":          {nil, ctx},
	} {
		if pt, err := rotated.OpenBytes(c.sealed, c.ctx); !errors.Is(err, ErrUnsealable) || pt != nil {
			t.Errorf("%s: %q, %v", name, pt, err)
		}
	}
	// The Seal and SealBytes forms do not open as each other.
	if _, err := old.Open(string(sealed), ctx); err == nil {
		t.Error("a SealBytes value opened with Open")
	}
	if _, err := old.OpenBytes([]byte(old.Seal(data, ctx)), ctx); err == nil {
		t.Error("a Seal value opened with OpenBytes")
	}
}

func TestParseKeysRefusals(t *testing.T) {
	k := key()
	for spec, want := range map[string]string{
		"":                                "no state keys",
		"nokey":                           "keyid:base64",
		"k1:" + k + ",k1:" + k:            "twice",
		"k1:c2hvcnQ=":                     "32 bytes",
		"k.1:" + k:                        "keyid:base64",
		strings.Repeat("k", 40) + ":" + k: "keyid:base64",
	} {
		_, err := ParseKeys(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKeys(%q) = %v, want mention of %q", spec, err, want)
		}
		if err != nil && strings.Contains(err.Error(), k) {
			t.Errorf("error reveals key material: %v", err)
		}
	}
}

func TestProcessSealer(t *testing.T) {
	a, b := NewProcessSealer(), NewProcessSealer()
	sealed := a.Seal([]byte("x"), nil)
	if _, err := b.Open(sealed, nil); err == nil {
		t.Error("another process's key opened the value")
	}
	if pt, err := a.Open(sealed, nil); err != nil || string(pt) != "x" {
		t.Errorf("own value: %q %v", pt, err)
	}
}

// FuzzOpen: whatever the input, Open returns the original plaintext for the
// original sealed value and fails closed for anything else; it never panics.
func FuzzOpen(f *testing.F) {
	s, _ := ParseKeys("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	// Sealed once under that all-zero key: a constant, since Seal draws a
	// fresh nonce and every fuzz worker must agree on the original.
	const sealed = "k1.1e3JQ3gT9bhYXNclxGXzC7mhi9ydgh4KtLkKlpTdxcAh8g"
	if pt, err := s.Open(sealed, []byte("ctx")); err != nil || string(pt) != "secret" {
		f.Fatalf("the seed does not open: %v", err)
	}
	f.Add(sealed)
	f.Add("k1.")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		pt, err := s.Open(in, []byte("ctx"))
		if err == nil && (in != sealed || string(pt) != "secret") {
			// A different encoding of the same bytes would be a forgery.
			id, body, _ := strings.Cut(in, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(body)
			_, origBody, _ := strings.Cut(sealed, ".")
			origRaw, _ := base64.RawURLEncoding.DecodeString(origBody)
			if id != "k1" || !bytes.Equal(raw, origRaw) {
				t.Fatalf("Open(%q) = %q: a value that was never sealed opened", in, pt)
			}
		}
	})
}

// What sealing an event costs, by its size: BENCHMARKS.md, "Events sealed".
func BenchmarkSealBytes(b *testing.B) {
	s, _ := ParseKeys("k1:" + key())
	ctx := []byte("event\x00session-0000000000\x00stream-00000000000000000000")
	for _, size := range []int{200, 4 << 10, 64 << 10} {
		data := bytes.Repeat([]byte("x"), size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				s.OpenBytes(s.SealBytes(data, ctx), ctx)
			}
		})
	}
}
