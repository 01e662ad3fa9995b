// Package state keeps what outlives one activation of a session's actor, in
// Redis (shared by every node) or in memory (one process): the stores bundle
// (Stores); snapshots, fenced by activation epochs (Snapshots, ErrFenced),
// with their schema (Snapshot, its sealed principal and delegations) and
// what operators may read of them (SessionInfo); the event logs that SSE
// resumption replays, with the journal of requests in flight (Events); each
// user's count of sessions (UserSessions); and the operators' revocations
// (Revocations). It bounds the event logs (events per stream, bytes per
// session, in-memory bytes of all sessions) and provides the Sealer, which
// encrypts under rotating keys. When a snapshot is written and how large it
// may grow is the actors' business. What the Redis stores read is bounded
// (readbound.go): a value larger than pingmcp writes is refused in Redis,
// unsent, with a *TooLarge (ErrTooLarge), and treated as unreadable
// (ErrUnreadable, as a key of another type, *WrongType, and a snapshot that
// does not decode, *SnapshotError). A session whose snapshot is unreadable
// is still listed (Stored.Unreadable) and can be ended (Stores.End), and
// WhyUnreadable says why for an operator.
package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts state with AES-256-GCM under the newest of its keys and
// opens what any of them sealed, so that keys rotate without losing state:
// add a new key first in the list, keep the old ones until what they sealed
// has expired.
type Sealer struct {
	keys []sealKey // newest first
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// ErrUnsealable is returned for sealed data that is truncated, tampered
// with, sealed for another purpose, or sealed under an unknown key.
var ErrUnsealable = errors.New("sealed state cannot be opened")

// maxKeyIDLen bounds a key id, which travels in every sealed value.
const maxKeyIDLen = 32

// ParseKeys reads the --state-keys format: comma-separated
// "keyid:base64-of-32-bytes", newest first.
func ParseKeys(spec string) (*Sealer, error) {
	s := &Sealer{}
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || id == "" || len(id) > maxKeyIDLen || strings.ContainsAny(id, ". \t") {
			return nil, fmt.Errorf("state key %q: want keyid:base64-of-32-bytes (key ids up to %d characters, no dots or spaces)", redact(item), maxKeyIDLen)
		}
		if seen[id] {
			return nil, fmt.Errorf("state key id %q appears twice", id)
		}
		seen[id] = true
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			key, err = base64.RawURLEncoding.DecodeString(b64)
		}
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("state key %q: the key must be 32 bytes, base64-encoded", id)
		}
		if err := s.add(id, key); err != nil {
			return nil, err
		}
	}
	if len(s.keys) == 0 {
		return nil, errors.New("no state keys given")
	}
	return s, nil
}

// NewProcessSealer makes a sealer with one random key that lives and dies
// with this process: what it seals cannot be opened by any other process.
func NewProcessSealer() *Sealer {
	key := make([]byte, 32)
	rand.Read(key)
	s := &Sealer{}
	if err := s.add("process", key); err != nil {
		panic(err) // a 32-byte key always makes an AES-256-GCM
	}
	return s
}

func (s *Sealer) add(id string, key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	s.keys = append(s.keys, sealKey{id, aead})
	return nil
}

// KeyIDs lists the key ids, newest first (never the keys).
func (s *Sealer) KeyIDs() []string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.id
	}
	return ids
}

// Seal encrypts plaintext under the newest key, bound to context (say, the
// session id and what the value is), which Open must be given again: a
// sealed value moved to another session or field does not open.
// The result is "keyid.nonce+ciphertext" in base64url.
func (s *Sealer) Seal(plaintext, context []byte) string {
	k := s.keys[0]
	return k.id + "." + base64.RawURLEncoding.EncodeToString(k.seal(nil, plaintext, context))
}

// SealBytes is Seal for a value kept as bytes (an event's data): a zero
// byte, the key id's length and the key id, then nonce and ciphertext, a
// quarter shorter than Seal's base64. Its first byte is never one a JSON
// text starts with, so a value not sealed is told from one that is.
func (s *Sealer) SealBytes(plaintext, context []byte) []byte {
	k := s.keys[0]
	out := make([]byte, 0, 2+len(k.id)+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out = append(out, 0, byte(len(k.id)))
	out = append(out, k.id...)
	return k.seal(out, plaintext, context)
}

// seal appends to dst a fresh nonce and plaintext sealed under k, bound to
// context.
func (k sealKey) seal(dst, plaintext, context []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, k.aead.NonceSize())...)
	rand.Read(dst[n:])
	return k.aead.Seal(dst, dst[n:], plaintext, aad(k.id, context))
}

// Open decrypts what Seal produced under any of the sealer's keys.
func (s *Sealer) Open(sealed string, context []byte) ([]byte, error) {
	id, b64, ok := strings.Cut(sealed, ".")
	if !ok {
		return nil, ErrUnsealable
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return nil, ErrUnsealable
	}
	return s.open(id, raw, context)
}

// OpenBytes decrypts what SealBytes produced under any of the sealer's
// keys.
func (s *Sealer) OpenBytes(sealed, context []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != 0 || len(sealed) < 2+int(sealed[1]) {
		return nil, ErrUnsealable
	}
	n := 2 + int(sealed[1])
	return s.open(string(sealed[2:n]), sealed[n:], context)
}

// open decrypts raw, nonce and ciphertext, under the key named id.
func (s *Sealer) open(id string, raw, context []byte) ([]byte, error) {
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		if len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
			return nil, ErrUnsealable
		}
		nonce, ct := raw[:k.aead.NonceSize()], raw[k.aead.NonceSize():]
		pt, err := k.aead.Open(nil, nonce, ct, aad(k.id, context))
		if err != nil {
			return nil, ErrUnsealable
		}
		return pt, nil
	}
	// Key ids have at most maxKeyIDLen characters: a longer one, in a
	// value someone else wrote, is not quoted whole into the logs.
	return nil, fmt.Errorf("%w: unknown key id %.32q", ErrUnsealable, id)
}

// aad binds a sealed value to its key id and context, length-prefixed so
// that no two (id, context) pairs share an encoding.
func aad(id string, context []byte) []byte {
	b := make([]byte, 0, 2+len(id)+len(context))
	b = append(b, byte(len(id)))
	b = append(b, id...)
	return append(b, context...)
}

// redact keeps a key spec's id and hides its key material in errors.
func redact(item string) string {
	id, _, ok := strings.Cut(item, ":")
	if !ok {
		return "…"
	}
	return id + ":…"
}
