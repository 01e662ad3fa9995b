package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/pingmcp/pingmcp/config"
)

// listenEdge listens on the MCP edge's --addr and, while the resource's
// loopback aliases are derived from it, on its loopback twins too
// (config.LoopbackTwins: [::1] beside 127.0.0.1, or the reverse), so that
// no other local process can answer a client pointed at localhost. A twin
// the host lacks (no IPv6) is no longer a resource (config.Unheld); a twin
// in use is refused, but with port 0 another port is tried.
//
// Only the edge: the authorization server, the Todo API and the admin API
// are reached by the IP literal of the address they are bound to (their
// derived URLs and the issuer name it), never through localhost.
func listenEdge(cfg *config.Config) (net.Listener, error) {
	_, port, _ := net.SplitHostPort(cfg.Addr)
	for attempt := 0; ; attempt++ {
		ln, err := listen(cfg.Addr)
		if err != nil {
			return nil, err
		}
		all, err := holdTwins(cfg, ln)
		if err == nil {
			if len(all) == 1 {
				return ln, nil
			}
			return newListeners(all), nil
		}
		for _, l := range all {
			l.Close()
		}
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == 9 {
			return nil, err
		}
	}
}

// holdTwins listens on each loopback twin of ln's address; it returns the
// listeners it holds, ln first, with the error that stopped it.
func holdTwins(cfg *config.Config, ln net.Listener) ([]net.Listener, error) {
	all := []net.Listener{ln}
	for _, twin := range cfg.LoopbackTwins(ln.Addr().String()) {
		l, err := net.Listen("tcp", twin)
		switch {
		case err == nil:
			all = append(all, l)
		case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
			// This host has no such address: nobody can take it.
			cfg.Unheld(twin)
		case errors.Is(err, syscall.EADDRINUSE):
			_, port, _ := net.SplitHostPort(twin)
			return all, fmt.Errorf("%w. Another process holds %s, beside this server's %s: a client pointed at http://localhost:%s/mcp "+
				"could reach that process instead and hand it a token. Stop that process, or set --public-url to the one URL "+
				"clients use (only that one is then served)", err, twin, ln.Addr(), port)
		default:
			return all, fmt.Errorf("listen on %s (the loopback twin of %s): %w", twin, ln.Addr(), err)
		}
	}
	return all, nil
}

// listeners accepts on several listeners as one; its address is the
// first's.
type listeners struct {
	all       []net.Listener
	conns     chan net.Conn
	errs      chan error
	done      chan struct{}
	closeOnce sync.Once
}

func newListeners(all []net.Listener) *listeners {
	ls := &listeners{all: all, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	for _, l := range all {
		go ls.acceptFrom(l)
	}
	return ls
}

func (ls *listeners) acceptFrom(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case ls.errs <- err: // http.Server retries what is temporary
				continue
			case <-ls.done:
				return
			}
		}
		select {
		case ls.conns <- c:
		case <-ls.done:
			c.Close()
			return
		}
	}
}

func (ls *listeners) Accept() (net.Conn, error) {
	select {
	case c := <-ls.conns:
		return c, nil
	case err := <-ls.errs:
		return nil, err
	case <-ls.done:
		return nil, net.ErrClosed
	}
}

func (ls *listeners) Close() error {
	var errs []error
	ls.closeOnce.Do(func() {
		close(ls.done)
		for _, l := range ls.all {
			errs = append(errs, l.Close())
		}
	})
	return errors.Join(errs...)
}

func (ls *listeners) Addr() net.Addr { return ls.all[0].Addr() }
