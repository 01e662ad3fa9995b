package actors

import (
	"context"
	"testing"
)

// A releasable context is the request's until released, then holds
// nothing of it: the go-sdk keeps the initialize's for the session's life.
func TestReleasableLetsGoOfTheRequest(t *testing.T) {
	type key struct{}
	req, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "flight"))
	defer cancel()
	r := releasing(req)
	derived, stop := context.WithCancel(r) // as the SDK derives its own
	defer stop()
	if got := r.Value(key{}); got != "flight" {
		t.Fatalf("before release: value %v, want the request's", got)
	}
	cancel()
	<-derived.Done() // the request's cancellation reaches what derives from it
	if r.Err() == nil {
		t.Fatal("before release: the cancelled request's context has no error")
	}
	r.release()
	if got := r.Value(key{}); got != nil {
		t.Fatalf("after release: value %v, want none", got)
	}
	if r.Done() != nil || r.Err() != nil {
		t.Fatalf("after release: Done %v, Err %v; want a background context's", r.Done(), r.Err())
	}
}
