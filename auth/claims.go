package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// decodeClaims fills dst, a pointer to a struct whose fields carry json
// tags, from a token's claims claim by claim, so that a malformed claim (an
// "exp" that is a string, a "sub" that is an object) is refused by name
// rather than taken for something else, such as a bad signature. The error
// describes the claim's JSON type, never its value.
func decodeClaims(raw map[string]json.RawMessage, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		msg, ok := raw[name]
		if name == "" || name == "-" || !ok {
			continue
		}
		if err := json.Unmarshal(msg, v.Field(i).Addr().Interface()); err != nil {
			return fmt.Errorf("malformed claim %q: %s is not a valid value for it", name, jsonKind(msg))
		}
	}
	return nil
}

// claimsObject decodes a claims set, which must be a JSON object.
func claimsObject(payload []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, errors.New("the claims are not a JSON object")
	}
	return raw, nil
}

// jsonKind names the JSON type of a value ("a string", "an object").
func jsonKind(v json.RawMessage) string {
	switch s := strings.TrimSpace(string(v)); {
	case s == "":
		return "nothing"
	case s[0] == '"':
		return "a string"
	case s[0] == '{':
		return "an object"
	case s[0] == '[':
		return "an array"
	case s == "true" || s == "false":
		return "a boolean"
	case s == "null":
		return "null"
	}
	return "a number"
}
