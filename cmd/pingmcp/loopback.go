package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/telemetry"
)

// listenEdge listens on the MCP edge's --addr and, while the resource's
// loopback aliases are derived from it, on its loopback twins too
// (config.LoopbackTwins: [::1] beside 127.0.0.1, or the reverse), so that
// no other local process can answer a client pointed at localhost. A twin
// the host lacks (no IPv6) is no longer a resource (config.Unheld); a twin
// in use is refused, but with port 0 another port is tried.
func listenEdge(cfg *config.Config) (net.Listener, error) {
	return listenHolding(cfg.Addr, cfg.LoopbackTwins, cfg.Unheld)
}

// listenHolding listens on addr and on the loopback twins that twins
// names for the address bound (none: addr alone). A twin the host lacks is
// passed to unheld (if not nil); a twin in use is refused, but with port 0
// another port is tried. The authorization server and the Todo API, run
// alone, hold the twins their URL needs (config.LocalhostTwins): none when
// it is the IP literal they are bound to.
func listenHolding(addr string, twins func(bound string) []string, unheld func(string)) (net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		ln, err := listen(addr)
		if err != nil {
			return nil, err
		}
		all, err := holdTwins(ln, twins(ln.Addr().String()), unheld)
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

// listenTold is listenHolding for a server whose clients are told urls:
// the twins they need (config.LocalhostTwins).
func listenTold(addr string, urls ...string) (net.Listener, error) {
	return listenHolding(addr, func(bound string) []string { return config.LocalhostTwins(bound, urls...) }, nil)
}

// holdTwins listens on each of twins, beside ln; it returns the listeners
// it holds, ln first, with the error that stopped it.
func holdTwins(ln net.Listener, twins []string, unheld func(string)) ([]net.Listener, error) {
	all := []net.Listener{ln}
	for _, twin := range twins {
		l, err := net.Listen("tcp", twin)
		switch {
		case err == nil:
			all = append(all, l)
		case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
			// This host has no such address: nobody can take it.
			if unheld != nil {
				unheld(twin)
			}
		case errors.Is(err, syscall.EADDRINUSE):
			_, port, _ := net.SplitHostPort(twin)
			return all, fmt.Errorf("%w. Another process holds %s, beside this server's %s: a client pointed at localhost:%s "+
				"could reach that process instead and hand it a token. Stop that process, or point clients at this server's "+
				"IP literal, http://%s (for the MCP edge --public-url http://%s: only that URL is then served)", err, twin, ln.Addr(), port, ln.Addr(), ln.Addr())
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

// loopbackHostsOnly guards h, served on ln, against DNS rebinding when ln
// is a loopback listener: a web page whose own name its DNS server made
// resolve to 127.0.0.1 sends that name as Host, and the browser lets it
// read every answer as its own origin's (the development authorization
// server's login form and codes, with the development users' known
// passwords; the Todo API with the tokens so obtained). Such a request is
// refused, 403 with an OAuth error (invalid_request), unless its Host is a
// loopback name (127.0.0.1, [::1], localhost, on any port: a tunnel or a
// port forward keeps one) or the host of one of urls, the URLs its clients
// are told (an issuer given as a name that a proxy on this host serves).
// A listener beyond loopback is left as it is. The MCP edge makes this
// check itself (transport's checkHost, with --allowed-hosts).
func loopbackHostsOnly(ln net.Listener, h http.Handler, urls ...string) http.Handler {
	if !loopback.Is(ln.Addr().String()) {
		return h
	}
	told := map[string]bool{}
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			told[strings.ToLower(u.Host)] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loopback.Is(r.Host) || told[strings.ToLower(r.Host)] {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := json.Marshal(map[string]string{"error": "invalid_request",
			"error_description": fmt.Sprintf("Host %q is not allowed: this server answers on loopback to loopback names only (DNS-rebinding protection)", telemetry.Clip(r.Host))})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		// Its body is not read: the connection goes with the answer.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusForbidden)
		w.Write(append(body, '\n'))
	})
}
