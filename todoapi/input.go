package todoapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// idBytes is the randomness of an id: 128 bits from crypto/rand, so ids
// never collide (the demo's millisecond timestamps did).
const idBytes = 16

// idLen is the length of an id: idBytes in unpadded base64url.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

// idempotentID is the id of a todo created with an Idempotency-Key: the
// same for the same user and key, so that a retried create finds the todo
// its first attempt made; 128 bits of a SHA-256, like a random id in form.
func idempotentID(user, key string) string {
	sum := sha256.Sum256([]byte("pingmcp-todo-idempotency\x00" + user + "\x00" + key))
	return base64.RawURLEncoding.EncodeToString(sum[:idBytes])
}

// maxIdempotencyKey bounds an Idempotency-Key.
const maxIdempotencyKey = 128

// validIdempotencyKey accepts 1 to 128 visible ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, idBytes)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validID reports whether s is exactly what newID mints: idLen characters of
// the base64url alphabet, canonically encoded (so one id has one spelling).
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == idBytes
}

// checkID answers 400 for a malformed id, before any store is touched.
func checkID(w http.ResponseWriter, id string) bool {
	if validID(id) {
		return true
	}
	writeError(w, http.StatusBadRequest, "invalid_request",
		fmt.Sprintf("malformed todo id: want the %d-character id the API returned", idLen))
	return false
}

// readJSON reads a request body that must be JSON in UTF-8 and at most
// MaxBodyBytes. It reports false when it has answered the request.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		return nil, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be UTF-8")
		return nil, false
	}
	limit := a.opts.MaxBodyBytes
	if r.ContentLength > limit {
		tooLarge(w, limit)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge(w, limit)
		} else {
			writeError(w, http.StatusBadRequest, "invalid_request", "could not read the body")
		}
		return nil, false
	}
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body is not valid UTF-8")
		return nil, false
	}
	return body, true
}

func tooLarge(w http.ResponseWriter, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
		fmt.Sprintf("the body must be at most %d bytes", limit))
}

// parseCreate reads the body of POST /api/todos: {"todoText": "..."}, the
// demo's field, or {"text": "..."}; exactly one of them.
func parseCreate(body []byte, maxRunes int) (string, error) {
	members, err := decodeObject(body, "todoText", "text")
	if err != nil {
		return "", err
	}
	raw, name := members["todoText"], "todoText"
	if _, ok := members["text"]; ok {
		if raw != nil {
			return "", errors.New(`give either "todoText" or "text", not both`)
		}
		raw, name = members["text"], "text"
	}
	if raw == nil {
		return "", errors.New(`missing "todoText": the text of the new todo`)
	}
	var text string
	if raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
		return "", fmt.Errorf("%q must be a string", name)
	}
	return validText(text, maxRunes)
}

// parseUpdate reads the body of PATCH /api/todos/{id}: {"completed": bool}.
func parseUpdate(body []byte) (bool, error) {
	members, err := decodeObject(body, "completed")
	if err != nil {
		return false, err
	}
	switch string(members["completed"]) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "":
		return false, errors.New(`missing "completed": true or false`)
	}
	return false, errors.New(`"completed" must be true or false`)
}

// validText trims text and checks it: 1..maxRunes characters, none of them a
// control, line or paragraph separator, or bidirectional formatting character
// (which can make the text display as something else).
func validText(text string, maxRunes int) (string, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return "", errors.New("the text must not be empty")
	}
	if n := utf8.RuneCountInString(text); n > maxRunes {
		return "", fmt.Errorf("the text must be at most %d characters, not %d", maxRunes, n)
	}
	for _, r := range text {
		if unicode.In(r, unicode.Cc, unicode.Zl, unicode.Zp) || isBidiControl(r) {
			return "", fmt.Errorf("the text must not contain control characters (found U+%04X)", r)
		}
	}
	return text, nil
}

func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// decodeObject reads body as exactly one JSON object whose member names are
// all among allowed (compared exactly, unlike encoding/json's field
// matching) and appear at most once; it returns each member's raw value.
func decodeObject(body []byte, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("the body must be a JSON object")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("the body is not valid JSON")
		}
		name, _ := tok.(string)
		if !slices.Contains(allowed, name) {
			return nil, fmt.Errorf("unknown field %q (allowed: %s)", truncate(name, 40), strings.Join(allowed, ", "))
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("field %q appears twice", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errors.New("the body is not valid JSON")
		}
		members[name] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("the body must hold one JSON object and nothing after it")
	}
	return members, nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
