package redistest

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Cut is a go-redis hook (redis.Client.AddHook; on a cluster, each node's
// through ClusterClient.OnNewNode) that loses answers: armed by Lose, it
// lets a command whose bytes contain the marker through, lets Redis run it
// and answer, then reads the answer and breaks the connection instead of
// handing it on. The client sees a network error (io.EOF) after the
// command ran, as when a connection dies between Redis's answer and the
// client, and go-redis retries the command on a new connection. An error
// answer (NOSCRIPT, say: nothing ran) goes through untouched.
type Cut struct {
	mu   sync.Mutex
	left map[string]int // marker → answers still to lose
	lost atomic.Int64
}

var _ redis.Hook = (*Cut)(nil)

// Lose arms c: the answers to the next n commands (or pipelines) containing
// marker that Redis runs without error are lost. Markers armed together
// each count their own.
func (c *Cut) Lose(n int, marker []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == nil {
		c.left = map[string]int{}
	}
	c.left[string(marker)] += n
}

// Lost is how many answers c lost so far.
func (c *Cut) Lost() int { return int(c.lost.Load()) }

// matches returns the armed marker a command written, p, contains, or "".
func (c *Cut) matches(p []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, n := range c.left {
		if n > 0 && bytes.Contains(p, []byte(m)) {
			return m
		}
	}
	return ""
}

// take counts one answer to a command containing marker lost, if c is still
// armed for it.
func (c *Cut) take(marker string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left[marker] <= 0 {
		return false
	}
	c.left[marker]--
	c.lost.Add(1)
	return true
}

func (c *Cut) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: conn, cut: c}, nil
	}
}

func (c *Cut) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (c *Cut) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// cutConn is a connection of a client with a Cut hook.
type cutConn struct {
	net.Conn
	cut    *Cut
	mu     sync.Mutex
	armed  string // the marker of the last command written, if armed
	broken atomic.Bool
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.broken.Load() {
		return 0, io.ErrClosedPipe
	}
	if m := c.cut.matches(p); m != "" {
		c.mu.Lock()
		c.armed = m
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.broken.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	c.mu.Lock()
	m := c.armed
	c.armed = ""
	c.mu.Unlock()
	// Redis answers a command once it ran: the answer is here, so the
	// command ran. An error answer says it did not (or not all of it).
	if m == "" || p[0] == '-' || !c.cut.take(m) {
		return n, err
	}
	c.broken.Store(true)
	c.Conn.Close()
	return 0, io.EOF
}
