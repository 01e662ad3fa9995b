// Package logtest is what tests use to read logs that concurrent goroutines
// (HTTP handlers, a child process's copier) write.
package logtest

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for one writer and readers at once.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Awaiting is a Buffer that tells when a text has been written (a server's
// "ready" line): Seen is closed then.
type Awaiting struct {
	Buffer
	text string
	seen chan struct{}
	once sync.Once
}

// NewAwaiting returns an Awaiting for text.
func NewAwaiting(text string) *Awaiting {
	return &Awaiting{text: text, seen: make(chan struct{})}
}

func (a *Awaiting) Write(p []byte) (int, error) {
	n, err := a.Buffer.Write(p)
	if strings.Contains(a.String(), a.text) {
		a.once.Do(func() { close(a.seen) })
	}
	return n, err
}

// Seen is closed once the text has been written.
func (a *Awaiting) Seen() <-chan struct{} { return a.seen }
