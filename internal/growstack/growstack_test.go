package growstack

import (
	"testing"
	"unsafe"
)

// deep uses about depth KiB of stack.
//
//go:noinline
func deep(depth int) byte {
	var frame [1 << 10]byte
	if depth <= 1 {
		return frame[at%len(frame)]
	}
	return deep(depth-1) + frame[at%len(frame)]
}

// moves reports whether a fresh goroutine's stack moved (was copied to a
// larger one) while it ran a call path of 6 KiB, after Grow if grow is set.
func moves(grow bool) bool {
	done := make(chan bool)
	go func() {
		if grow {
			Grow()
		}
		var here byte
		before := uintptr(unsafe.Pointer(&here))
		deep(6)
		done <- uintptr(unsafe.Pointer(&here)) != before
	}()
	return <-done
}

func TestGrowCopiesTheStackOnce(t *testing.T) {
	// The premise: a fresh goroutine's stack is too small for 6 KiB of
	// calls, so they grow it (the runtime moves a stack to grow it).
	if !moves(false) {
		t.Fatal("a fresh goroutine ran 6 KiB of calls without its stack moving: the runtime now starts goroutines with stacks large enough, and Grow may be no longer worth its call")
	}
	if moves(true) {
		t.Fatalf("after Grow, 6 KiB of calls still moved the stack: Grow left less than its %d bytes of headroom", Headroom)
	}
}

// BenchmarkDeepPath runs a 7 KiB call path (deep(7)) on a fresh goroutine,
// as the go-sdk runs each request: "grown" after Grow, "growing" without.
func BenchmarkDeepPath(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "growing"
		if grow {
			name = "grown"
		}
		b.Run(name, func(b *testing.B) {
			done := make(chan struct{})
			for range b.N {
				go func() {
					if grow {
						Grow()
					}
					deep(7)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
