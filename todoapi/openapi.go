package todoapi

import (
	_ "embed"
	"net/http"
)

// Document is the API's OpenAPI 3.1 description, written by hand to match
// its routes, scopes and bodies: what pingmcp's --apis turns into tools.
//
//go:embed openapi.yaml
var Document []byte

// DocumentPath is where the API serves Document, without a token: it tells
// how to call the API, nothing of anyone's todos.
const DocumentPath = "/openapi.yaml"

func serveDocument(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(Document)
	}
}
