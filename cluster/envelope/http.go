package envelope

import "net/http"

// FromHTTP copies an HTTP header into envelope headers.
func FromHTTP(h http.Header) []*Header {
	out := make([]*Header, 0, len(h))
	all := make([]Header, len(h)) // one allocation for them all
	for name, values := range h {
		e := &all[len(out)]
		e.Name, e.Values = name, values
		out = append(out, e)
	}
	return out
}

// ToHTTP copies envelope headers into h.
// A name h lacks takes e's values as they are, capped, so that an Add to h
// copies them rather than write into the envelope's.
func ToHTTP(hs []*Header, h http.Header) {
	for _, e := range hs {
		name := http.CanonicalHeaderKey(e.Name)
		if have, ok := h[name]; ok {
			h[name] = append(have, e.Values...)
		} else {
			h[name] = e.Values[:len(e.Values):len(e.Values)]
		}
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
