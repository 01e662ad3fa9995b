package openapi

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
)

// The argument checker (jsonschema-go) quotes the value it refuses, whole,
// in its error (fmt's %v of it): a refused branch of a oneOf or anyOf, each
// of an array's items, once per refusal. An argument of a few megabytes (a
// 200,000-member object) made each such quote cost a sort of its members
// and a string as large, seconds of CPU for one call against a 10-way
// oneOf, and an error of megabytes for its client. shownValues gives the
// values it checks a form that quotes at most maxShown bytes.

// maxShown bounds the bytes a refused value is quoted by, in an error;
// an object of more than maxShownMembers is quoted by its size alone.
const (
	maxShown        = 256
	maxShownMembers = 64
)

// shownValues replaces, in place, the objects, arrays and strings of v (a
// JSON value as encoding/json decodes it into any) with shownObject,
// shownArray and shownString, which are the same to a checker reading them
// by kind, and returns v so changed.
func shownValues(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = shownValues(e)
		}
		return shownObject(v)
	case []any:
		for i, e := range v {
			v[i] = shownValues(e)
		}
		return shownArray(v)
	case string:
		return shownString(v)
	}
	return v
}

type (
	shownObject map[string]any
	shownArray  []any
	shownString string
)

func (o shownObject) Format(f fmt.State, _ rune) { quoteShown(f, o) }
func (a shownArray) Format(f fmt.State, _ rune)  { quoteShown(f, a) }
func (s shownString) Format(f fmt.State, _ rune) { quoteShown(f, s) }

// quoteShown writes v as JSON, at most maxShown bytes of it, then "…" if it was
// cut, reading no more of v than it writes.
func quoteShown(w io.Writer, v any) {
	q := &quoting{w: w, room: maxShown}
	q.value(v)
	if q.room < 0 {
		io.WriteString(w, "…")
	}
}

type quoting struct {
	w    io.Writer
	room int // bytes still to write; negative once cut
}

func (q *quoting) write(s string) bool {
	if q.room < 0 {
		return false
	}
	if len(s) > q.room {
		io.WriteString(q.w, s[:q.room])
		q.room = -1
		return false
	}
	io.WriteString(q.w, s)
	q.room -= len(s)
	return true
}

func (q *quoting) str(s string) bool {
	if len(s) > q.room {
		s = s[:q.room+1] // more than fits: cut by write
	}
	return q.write(strconv.Quote(s))
}

func (q *quoting) value(v any) bool {
	switch v := v.(type) {
	case shownObject:
		if len(v) > maxShownMembers {
			// Not sorted to find the first few.
			return q.write("{… " + strconv.Itoa(len(v)) + " members}")
		}
		if !q.write("{") {
			return false
		}
		keys := slices.Sorted(maps.Keys(v))
		for i, k := range keys {
			if i > 0 && !q.write(",") || !q.str(k) || !q.write(":") || !q.value(v[k]) {
				return false
			}
		}
		return q.write("}")
	case shownArray:
		if !q.write("[") {
			return false
		}
		for i, e := range v {
			if i > 0 && !q.write(",") || !q.value(e) {
				return false
			}
		}
		return q.write("]")
	case shownString:
		return q.str(string(v))
	case nil:
		return q.write("null")
	default:
		return q.write(fmt.Sprint(v))
	}
}
