package envelope

import "net/http"

// FromHTTP copies an HTTP header into envelope headers.
func FromHTTP(h http.Header) []*Header {
	out := make([]*Header, 0, len(h))
	for name, values := range h {
		out = append(out, &Header{Name: name, Values: values})
	}
	return out
}

// ToHTTP copies envelope headers into h.
func ToHTTP(hs []*Header, h http.Header) {
	for _, e := range hs {
		h[http.CanonicalHeaderKey(e.Name)] = append(h[http.CanonicalHeaderKey(e.Name)], e.Values...)
	}
}

// NotServedHeader marks a response part by which an actor refuses a request
// it did not serve (it was stopping): the forwarding edge may send the
// request again. It never reaches a client.
const NotServedHeader = "Pingmcp-Not-Served"

// NotServedMoved is NotServedHeader's value when the refusing activation
// was handed over (its session moved: actors/follow.go): the cluster's
// placement has forgotten it, so the request may be sent again at once.
const NotServedMoved = "moved"
