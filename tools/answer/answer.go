// Package answer shows what an API answered in a tool's result: never the
// token pingmcp sent it (an API that echoes its request would show it),
// never more of the API's own text than a bounded excerpt.
package answer

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"

	"github.com/pingmcp/pingmcp/telemetry"
)

// MaxExcerpt bounds what an error shows of the API's answer.
const MaxExcerpt = 512

// Echoed stands for an answer shown in no part, because it holds the
// token pingmcp sent the API in a form not blanked out of it.
const Echoed = "(the answer held the token sent to the API, escaped; it is not shown)"

// Echoes reports whether s holds the token once JSON's string escapes
// (\uXXXX, \/ and the others) are undone.
func Echoes(s, token string) bool {
	if token == "" || !strings.Contains(s, `\`) {
		return token != "" && strings.Contains(s, token)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch e := s[i+1]; e {
		case 'u':
			if i+5 < len(s) {
				if n, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
					b.WriteRune(rune(n)) // a surrogate stays unmatched: tokens are ASCII
					i += 5
					continue
				}
			}
			b.WriteByte(c)
		case '"', '\\', '/':
			b.WriteByte(e)
			i++
		case 'b', 'f', 'n', 'r', 't':
			b.WriteByte(' ') // a control character: never part of a token
			i++
		default:
			b.WriteByte(c)
		}
	}
	return strings.Contains(b.String(), token)
}

// Cleaned is b, an answer, with the token blanked out of it (BlankJSON),
// and whether it may be shown: not when it still holds the token once
// JSON's escapes are undone.
func Cleaned(b []byte, token string) ([]byte, bool) {
	clean, _ := BlankJSON(b, token)
	return clean, !Echoes(Blank(string(clean), token), token)
}

// ErrorExcerpt is what an error answer b may show of itself: its Excerpt,
// cleaned, or Echoed when it holds the token in a form not blanked.
func ErrorExcerpt(b []byte, token string) string {
	clean, ok := Cleaned(b, token)
	if !ok {
		return Echoed
	}
	return Excerpt(clean, token)
}

// Blank replaces the token in s.
func Blank(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}

// BlankJSON is a JSON answer with the token blanked out of its decoded
// strings (an escaped token, \u0074ok…, is found too), re-marshalled, when
// there was one.
func BlankJSON(b []byte, token string) ([]byte, bool) {
	var v any
	if token == "" || json.Unmarshal(b, &v) != nil {
		return b, false
	}
	v, changed := BlankValue(v, token)
	if !changed {
		return b, false
	}
	clean, err := json.Marshal(v)
	if err != nil {
		return []byte("[an answer holding the token]"), true
	}
	return clean, true
}

// BlankValue blanks the token out of every string (keys too) of a decoded
// JSON value, and reports whether there was one.
func BlankValue(v any, token string) (any, bool) {
	if token == "" {
		return v, false
	}
	switch v := v.(type) {
	case string:
		if strings.Contains(v, token) {
			return Blank(v, token), true
		}
		return v, false
	case []any:
		changed := false
		for i, e := range v {
			var c bool
			v[i], c = BlankValue(e, token)
			changed = changed || c
		}
		return v, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(v))
		for k, e := range v {
			e, c := BlankValue(e, token)
			if strings.Contains(k, token) {
				k, c = Blank(k, token), true
			}
			out[k] = e
			changed = changed || c
		}
		return out, changed
	}
	return v, false
}

// TrimTokenPrefix drops the end of a cut text when it is the start of the
// token (4 bytes of it or more): the cut fell within it.
func TrimTokenPrefix(s, token string) string {
	for n := min(len(token)-1, len(s)); n >= 4; n-- {
		if strings.HasSuffix(s, token[:n]) {
			return s[:len(s)-n]
		}
	}
	return s
}

// Excerpt is the start of an error answer as one line of text, never with
// the token in it (an API that echoes the request would show it).
func Excerpt(b []byte, token string) string {
	s := Blank(strings.ToValidUTF8(string(b), "\uFFFD"), token)
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	return telemetry.ClipTo(s, MaxExcerpt)
}
