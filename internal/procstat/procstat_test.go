package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMemory: this process's anonymous memory is part of its resident set,
// and grows by what it touches.
func TestMemory(t *testing.T) {
	pid := os.Getpid()
	rss, err := RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	anon0, err := Anon(pid)
	if err != nil {
		t.Fatal(err)
	}
	if anon0 <= 0 || anon0 > rss {
		t.Fatalf("RssAnon %d, VmRSS %d: want 0 < anon ≤ rss", anon0, rss)
	}
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	anon1, err := Anon(pid)
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(b)
	if anon1-anon0 < size*3/4 {
		t.Errorf("RssAnon grew by %d bytes with %d touched", anon1-anon0, size)
	}
	if _, err := Anon(1 << 30); err == nil {
		t.Error("a process that does not exist: no error")
	}
}

// TestCPU: this process's CPU time grows as it computes.
func TestCPU(t *testing.T) {
	c0, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x, deadline := 0, time.Now().Add(10*time.Second)
	for {
		c1, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if c1 >= c0+50*time.Millisecond { // five ticks
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time %v after computing for 10 s, from %v", c1, c0)
		}
		for i := range 1 << 20 {
			x += i
		}
	}
	_ = x
}

// TestIOCalls: each write to a pipe, and each read of it, counts one.
func TestIOCalls(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pid := os.Getpid()
	reads0, writes0, err := IOCalls(pid)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	buf := make([]byte, 1)
	for range n {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	reads1, writes1, err := IOCalls(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Other goroutines of the test binary may read or write meanwhile, but
	// not fewer than these.
	if reads1-reads0 < n || writes1-writes0 < n {
		t.Errorf("after %d writes and reads of a pipe: %d reads, %d writes counted", n, reads1-reads0, writes1-writes0)
	}
	if _, _, err := IOCalls(1 << 30); err == nil {
		t.Error("a process that does not exist: no error")
	}
}
