package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// procLine is a line of /proc/net/tcp(6) as the kernel writes it: each
// 32-bit word of an address in hex as this machine holds it, the port in
// hex, the state, the uid.
func procLine(local, remote string, state int, uid uint32) string {
	addr := func(s string) string {
		ap := netip.MustParseAddrPort(s)
		b := ap.Addr().AsSlice()
		var h strings.Builder
		for i := 0; i < len(b); i += 4 {
			fmt.Fprintf(&h, "%08X", binary.NativeEndian.Uint32(b[i:]))
		}
		return fmt.Sprintf("%s:%04X", h.String(), ap.Port())
	}
	return fmt.Sprintf("   0: %s %s %02X 00000000:00000000 00:00000000 00000000 %5d        0 12345 1 0000000000000000 100 0 0 10 0",
		addr(local), addr(remote), state, uid)
}

// peerOwners reads the kernel's tables: the socket connected to the
// caller's end, else every listener that could have taken the connection
// (on its address or on all, IPv4 or IPv6), never what a closed socket
// left (TIME_WAIT, shown as root's); none, or no table: an error.
func TestPeerOwnersFromTables(t *testing.T) {
	dir := t.TempDir()
	v4, v6 := filepath.Join(dir, "tcp"), filepath.Join(dir, "tcp6")
	saved := procNetTCP
	procNetTCP = []string{v4, v6}
	defer func() { procNetTCP = saved }()
	write := func(path string, lines ...string) {
		header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		if err := os.WriteFile(path, []byte(header+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	local, remote := netip.MustParseAddrPort("127.0.0.1:50000"), netip.MustParseAddrPort("127.0.0.1:9090")
	check := func(name string, want []uint32) {
		t.Helper()
		got, err := peerOwners(local, remote)
		if want == nil {
			if err == nil {
				t.Errorf("%s: uids %v, want an error", name, got)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", name, got, err, want)
		}
	}

	write(v4, procLine("127.0.0.1:9090", "127.0.0.1:50000", tcpTimeWait, 0), procLine("127.0.0.1:9091", "0.0.0.0:0", tcpListen, 1001))
	check("no table for IPv6, no socket of the connection's nor listener on its port", nil)
	write(v4, procLine("127.0.0.1:9090", "127.0.0.1:50000", tcpTimeWait, 0), procLine("0.0.0.0:9090", "0.0.0.0:0", tcpListen, 1000))
	check("a listener on every IPv4 address", []uint32{1000})
	write(v6, procLine("[::]:9090", "[::]:0", tcpListen, 1002), procLine("[::1]:9090", "[::]:0", tcpListen, 1003))
	check("and one on every IPv6 address (not the one on ::1)", []uint32{1000, 1002})
	write(v6, procLine("[::ffff:127.0.0.1]:9090", "[::ffff:127.0.0.1]:50000", 0x01, 1004), procLine("[::]:9090", "[::]:0", tcpListen, 1002))
	check("the socket connected to the caller, IPv4-mapped", []uint32{1004})
	write(v4, procLine("127.0.0.1:50000", "127.0.0.1:9090", 0x01, 1005), procLine("127.0.0.1:9090", "127.0.0.1:50000", 0x01, 1006))
	check("the socket connected to the caller, not the caller's own", []uint32{1006})
	os.Remove(v4)
	check("no IPv4 table", nil)
}

// foreignListener runs serveForeignListener as uid 65534 (a process of
// another local user; it takes root, as CI has), from a link to this test
// binary in a folder that user may enter; it returns the address it
// listens on and its output's following lines.
func foreignListener(t *testing.T) (string, <-chan string) {
	t.Helper()
	return foreignListenerAt(t, "")
}

// foreignListenerAt is foreignListener listening on addr ("":
// 127.0.0.1:0).
func foreignListenerAt(t *testing.T, addr string) (string, <-chan string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a process as another user takes root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "pingmcp.test")
	if err := os.Link(self, bin); err != nil {
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = append(os.Environ(), foreignListenerEnv+"=1", foreignListenAddrEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	first := nextLine(t, lines)
	addr, ok := strings.CutPrefix(first, "listening ")
	if !ok {
		t.Fatalf("the other user's listener: %q", first)
	}
	return addr, lines
}

// nextLine is the next line of a foreignListener's output.
func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the other user's listener exited")
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("the other user's listener said nothing in 30 s")
	}
	return ""
}

// The admin CLI does not send its token to a loopback address held by
// another local user's process (a port no node holds, taken by whoever
// came first): it says so, and exits 1, the connection closed with
// nothing sent on it. A token read from a file that user owns is theirs
// to read anyway: it is sent.
func TestAdminCLIRefusesAnotherUsersListener(t *testing.T) {
	addr, lines := foreignListener(t)
	const token = "admin-token-0123456789abcdef"
	cli := func(env map[string]string, args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := adminCLI(context.Background(), "sessions", append([]string{"ls"}, args...), func(k string) string { return env[k] }, &out, &errOut)
		return out.String() + errOut.String(), code
	}

	out, code := cli(map[string]string{"PINGMCP_ADMIN_URL": "http://" + addr, "PINGMCP_ADMIN_TOKEN": token})
	if code != 1 || !strings.Contains(out, "the admin token was not sent to "+addr) || !strings.Contains(out, "another local user's (uid 65534)") ||
		strings.Contains(out, token) {
		t.Errorf("sessions ls against another user's listener: exit %d\n%s", code, out)
	}
	if l := nextLine(t, lines); l != "closed" {
		t.Fatalf("the other user's listener, after the refusal: %q, want the connection closed with no request", l)
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	out, code = cli(map[string]string{"PINGMCP_ADMIN_URL": "http://" + addr}, "--admin-token-file", file)
	if code != 0 {
		t.Errorf("sessions ls against the listener of the token file's owner: exit %d\n%s", code, out)
	}
	if l := nextLine(t, lines); l != "request authorization=true" {
		t.Errorf("the token file owner's listener: %q, want the request with its token", l)
	}
}

// hostAddress is an address of one of this host's interfaces other than
// loopback, IPv4; the test is skipped without one.
func hostAddress(t *testing.T) netip.Addr {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip.Unmap()
			}
		}
	}
	t.Skip("no IPv4 address of this host's but loopback")
	return netip.Addr{}
}

// With an HTTP proxy in its environment, the admin CLI still checks who
// holds an address of this host before it sends the token there: it dials
// it directly, never through the proxy, which would hand the token on to
// whoever holds the address (here another local user's process) while the
// check saw only the proxy. Before, Go's rule kept loopback addresses from
// the proxy, not the host's others: the token went through the proxy
// unchecked.
func TestAdminCLIBypassesTheProxyForThisHost(t *testing.T) {
	host := hostAddress(t)
	addr, lines := foreignListenerAt(t, netip.AddrPortFrom(host, 0).String())
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy: it would pass the request on, token and all.
		proxied.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"sessions":[],"next":""}`)
	}))
	defer proxy.Close()
	const token = "admin-token-0123456789abcdef"
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), self, "sessions", "ls")
	cmd.Env = append(os.Environ(), adminCLIEnv+"=1", "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=",
		"PINGMCP_ADMIN_URL=http://"+addr, "PINGMCP_ADMIN_TOKEN="+token, "PINGMCP_ADMIN_TOKEN_FILE=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "the admin token was not sent to "+addr) ||
		!strings.Contains(string(out), "(uid 65534)") || strings.Contains(string(out), token) {
		t.Errorf("sessions ls, through a proxy, against another user's listener on %s: %v\n%s", addr, err, out)
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("the proxy got %d requests bearing the token for an address of this host", n)
	}
	if l := nextLine(t, lines); l != "closed" {
		t.Errorf("the other user's listener: %q, want the connection closed with no request", l)
	}
}
