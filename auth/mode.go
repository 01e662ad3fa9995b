package auth

import "github.com/pingmcp/pingmcp/internal/enum"

// Mode is how /mcp authenticates callers (--auth).
type Mode string

// Modes of authentication, in the order help and errors list them.
const (
	// ModeNone verifies no token; config allows it only when every listen
	// address is loopback.
	ModeNone Mode = "none"
	// ModeJWT verifies bearer JWTs by the issuer's discovered JWKS ([JWTVerifier]).
	ModeJWT Mode = "jwt"
	// ModeIntrospection asks the issuer about each token (RFC 7662,
	// [IntrospectionVerifier]).
	ModeIntrospection Mode = "introspection"
)

// Modes lists every Mode.
var Modes = []Mode{ModeNone, ModeJWT, ModeIntrospection}

func (m Mode) String() string { return string(m) }

// ParseMode returns the Mode named s, or an error of the form
// `"s": want one of none, jwt, introspection`.
func ParseMode(s string) (Mode, error) { return enum.Parse(s, Modes) }
