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
