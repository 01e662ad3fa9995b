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
	mu     sync.Mutex
	marker []byte
	left   int
	lost   atomic.Int64
}

var _ redis.Hook = (*Cut)(nil)

// Lose arms c: the answers to the next n commands (or pipelines) containing
// marker that Redis runs without error are lost.
func (c *Cut) Lose(n int, marker []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marker, c.left = bytes.Clone(marker), n
}

// Lost is how many answers c lost so far.
func (c *Cut) Lost() int { return int(c.lost.Load()) }

// matches says whether a command written, p, is one to lose the answer of.
func (c *Cut) matches(p []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left > 0 && len(c.marker) > 0 && bytes.Contains(p, c.marker)
}

// take counts one answer lost, if c is still armed.
func (c *Cut) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left <= 0 {
		return false
	}
	c.left--
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
	armed  atomic.Bool // the last command written is one to lose the answer of
	broken atomic.Bool
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.broken.Load() {
		return 0, io.ErrClosedPipe
	}
	if c.cut.matches(p) {
		c.armed.Store(true)
	}
	return c.Conn.Write(p)
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.broken.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if n == 0 || !c.armed.Swap(false) {
		return n, err
	}
	// Redis answers a command once it ran: the answer is here, so the
	// command ran. An error answer says it did not (or not all of it).
	if p[0] == '-' || !c.cut.take() {
		return n, err
	}
	c.broken.Store(true)
	c.Conn.Close()
	return 0, io.EOF
}
