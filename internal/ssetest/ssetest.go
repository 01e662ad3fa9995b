// Package ssetest reads an HTTP response's event stream line by line, for
// tests that wait on what a stream carries: the edge's own tests and the
// end-to-end tests against node processes.
package ssetest

import (
	"bufio"
	"io"
	"net/http"
	"testing"
	"time"
)

// Stream is a response body read line by line on a goroutine of its own.
type Stream struct {
	Opened time.Time
	Lines  chan string // closed at the end of the body
}

// Read fails the test unless resp is a 200 event stream, and reads its
// lines from then on; the body is closed at its end or the test's.
func Read(t testing.TB, what string, resp *http.Response) *Stream {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.Fatalf("%s: %d %v %s", what, resp.StatusCode, resp.Header, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &Stream{Opened: time.Now(), Lines: make(chan string, 256)}
	go func() {
		defer close(s.Lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.Lines <- sc.Text()
		}
	}()
	return s
}

// Await returns the lines up to the first that match accepts, failing the
// test if the stream ends or d passes first.
func (s *Stream) Await(t testing.TB, d time.Duration, what string, match func(string) bool) []string {
	t.Helper()
	var got []string
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.Lines:
			if !ok {
				t.Fatalf("the stream ended before %s; it carried %q", what, got)
			}
			got = append(got, l)
			if match(l) {
				return got
			}
		case <-deadline:
			t.Fatalf("no %s within %s; the stream carried %q", what, d, got)
		}
	}
}

// End waits for the end of the stream and returns what it carried last.
func (s *Stream) End(t testing.TB, d time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.Lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("the stream did not end within %s; it carried %q", d, got)
		}
	}
}

// IsKeepAlive says whether l is pingmcp's keep-alive comment.
func IsKeepAlive(l string) bool { return l == ": keepalive" }
