//go:build linux

package forward

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log destination that tests can read while the
// forwarder writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serve starts a forwarder for cfg and stops it when the test ends. Its
// log is shown if the test fails.
func serve(tb testing.TB, cfg Config) (Forwarder, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	cfg.Log = logs
	f, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}

	done := make(chan error, 1)
	go func() { done <- f.Serve() }()
	tb.Cleanup(func() {
		f.Close()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			tb.Errorf("Serve did not return after Close")
		}
		if tb.Failed() {
			tb.Logf("forwarder log:\n%s", logs)
		}
	})
	return f, logs
}

// ep and ap convert between the package's Endpoint and net/netip, which
// the tests use for the net package.
func ep(a netip.AddrPort) Endpoint { return Endpoint{IP(a.Addr().As16()), a.Port()} }

func ap(e Endpoint) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.IP).Unmap(), e.Port)
}

// addrOf is where clients of f connect.
func addrOf(f Forwarder) netip.AddrPort { return ap(f.Addr()) }

// loopback returns the loopback address of the family named "4" or "6".
func loopback(fam string) netip.Addr {
	if fam == "6" {
		return netip.IPv6Loopback()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// frontend is a host address on an ephemeral port of family fam.
func frontend(fam string) netip.AddrPort {
	return netip.AddrPortFrom(loopback(fam), 0)
}

// echoTCP starts a TCP echo server that carries half-closes: when the
// client is done sending, it finishes echoing and closes its side.
func echoTCP(tb testing.TB, network string) netip.AddrPort {
	tb.Helper()
	return serveTCP(tb, network, echoHalfClose)
}

// echoHalfClose echoes c until the client's FIN, then sends its own.
func echoHalfClose(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// serveTCP starts a TCP server on loopback that runs handle for each
// connection, then closes it.
func serveTCP(tb testing.TB, network string, handle func(*net.TCPConn)) netip.AddrPort {
	tb.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	return serveTCPAt(tb, network, addr, handle)
}

// serveTCPAt is serveTCP on a given address.
func serveTCPAt(tb testing.TB, network, addr string, handle func(*net.TCPConn)) netip.AddrPort {
	tb.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		tb.Fatalf("listen %s: %v", addr, err)
	}

	var wg sync.WaitGroup
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitLimit))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// dialTCP connects to addr, with every later operation bounded.
func dialTCP(tb testing.TB, addr netip.AddrPort) *net.TCPConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), waitLimit)
	if err != nil {
		tb.Fatalf("dial %v: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return c.(*net.TCPConn)
}

// roundTrip sends msg on c, half-closes, and returns all that comes back.
func roundTrip(tb testing.TB, c *net.TCPConn, msg []byte) []byte {
	tb.Helper()
	if _, err := c.Write(msg); err != nil {
		tb.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		tb.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	return got
}

// listenerFile makes a socket the way a launcher would hand it over on
// fd 4: bound to addr, and listening for stream sockets. v6only applies
// to IPv6 sockets.
func listenerFile(tb testing.TB, sotype int, addr netip.AddrPort, v6only bool) *os.File {
	tb.Helper()
	fam := family(ep(addr).IP)
	proto := 0
	fd, err := unix.Socket(fam, sotype|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		tb.Fatalf("socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	tb.Cleanup(func() { f.Close() })

	if fam == unix.AF_INET6 {
		on := 0
		if v6only {
			on = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on); err != nil {
			tb.Fatalf("set IPV6_V6ONLY: %v", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(ep(addr))); err != nil {
		tb.Fatalf("bind %v: %v", addr, err)
	}
	if sotype == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 128); err != nil {
			tb.Fatalf("listen: %v", err)
		}
	}
	return f
}

// eventually polls cond until it holds, or fails the test after waitLimit.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// isTimeout reports whether err is a deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
