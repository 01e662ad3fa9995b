// Package enum parses the values of pingmcp's enumerated settings (--auth,
// --role, --cluster-provider) into the types their packages own, with one
// wording for an unknown value. Which values exist stays with those packages.
package enum

import (
	"fmt"
	"strings"
)

// Parse returns s as one of allowed, or an error `"s": want one of a, b, c`
// (config puts the flag's name before it).
func Parse[T ~string](s string, allowed []T) (T, error) {
	for _, a := range allowed {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("%q: want one of %s", s, Names(allowed))
}

// Names joins allowed with ", ", in their order (for help and errors).
func Names[T ~string](allowed []T) string {
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
