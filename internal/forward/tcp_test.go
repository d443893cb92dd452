//go:build linux

package forward

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTCPFamilies(t *testing.T) {
	tests := []struct {
		name     string
		front    string // family of the frontend
		back     string // family of the backend
		dualDial bool   // serve a dual-stack [::] socket, reached over IPv4
	}{
		{name: "v4 to v4", front: "4", back: "4"},
		{name: "v6 to v6", front: "6", back: "6"},
		{name: "v6 to v4", front: "6", back: "4"},
		{name: "v4 to v6", front: "4", back: "6"},
		{name: "dual-stack reached over v4", front: "6", back: "4", dualDial: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := echoTCP(t, "tcp"+tt.back)
			cfg := Config{Proto: "tcp", Frontend: ep(frontend(tt.front)), Backend: ep(backend)}
			if tt.dualDial {
				front := netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
				cfg.Frontend = ep(front)
				cfg.Listener = listenerFile(t, unix.SOCK_STREAM, front, false)
			}
			f, _ := serve(t, cfg)

			addr := addrOf(f)
			if tt.dualDial {
				addr = netip.AddrPortFrom(loopback("4"), addr.Port())
			}
			msg := []byte("hello over " + tt.name)
			if got := roundTrip(t, dialTCP(t, addr), msg); !bytes.Equal(got, msg) {
				t.Errorf("echo = %q; want %q", got, msg)
			}
		})
	}
}

// TestTCPMultipathListener serves a Multipath TCP listener, which Go's
// net.Listen makes by default where the kernel has MPTCP: a launcher
// written in Go may well hand one over.
func TestTCPMultipathListener(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		t.Skipf("no Multipath TCP on this kernel: %v", err)
	}
	ln := os.NewFile(uintptr(fd), "mptcp")
	defer ln.Close()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}

	backend := echoTCP(t, "tcp4")
	f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend),
		Listener: ln})
	msg := bytes.Repeat([]byte("multipath "), 10000)
	if got := roundTrip(t, dialTCP(t, addrOf(f)), msg); !bytes.Equal(got, msg) {
		t.Errorf("echoed %d bytes; want the %d sent", len(got), len(msg))
	}
}

// TestTCPHalfClose checks that a FIN from either side reaches the other
// as a FIN while the other direction keeps flowing.
func TestTCPHalfClose(t *testing.T) {
	const delay = 100 * time.Millisecond

	t.Run("client closes first, reply comes later", func(t *testing.T) {
		backend := serveTCP(t, "tcp4", func(c *net.TCPConn) {
			req, err := io.ReadAll(c) // returns at the client's FIN
			if err != nil {
				return
			}
			time.Sleep(delay) // a slow server, not a synchronisation
			c.Write(append([]byte("re: "), req...))
			c.CloseWrite()
		})
		f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})

		got := roundTrip(t, dialTCP(t, addrOf(f)), []byte("question"))
		if want := "re: question"; string(got) != want {
			t.Errorf("reply = %q; want %q", got, want)
		}
	})

	t.Run("backend closes first, client still sends", func(t *testing.T) {
		received := make(chan string, 1)
		backend := serveTCP(t, "tcp4", func(c *net.TCPConn) {
			c.Write([]byte("banner"))
			c.CloseWrite()
			b, _ := io.ReadAll(c)
			received <- string(b)
		})
		f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})

		c := dialTCP(t, addrOf(f))
		banner, err := io.ReadAll(c) // returns at the backend's FIN
		if err != nil || string(banner) != "banner" {
			t.Fatalf("read banner = %q, %v; want banner, EOF", banner, err)
		}
		c.Write([]byte("after the fin"))
		c.CloseWrite()
		select {
		case got := <-received:
			if got != "after the fin" {
				t.Errorf("backend got %q; want %q", got, "after the fin")
			}
		case <-time.After(waitLimit):
			t.Fatal("backend got nothing")
		}
	})
}

func TestTCPBulk(t *testing.T) {
	backend := echoTCP(t, "tcp4")
	f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})

	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	c := dialTCP(t, addrOf(f))
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echoed %d bytes, not the %d sent", len(got), len(msg))
	}
}

func TestTCPBackendDown(t *testing.T) {
	// A port nobody listens on: take one, and give it back.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()

	f, logs := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})

	for i := range 3 {
		c := dialTCP(t, addrOf(f))
		start := time.Now()
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client %d: read = %d, %v; want EOF", i, n, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("client %d closed after %v", i, d)
		}
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not tell of the refusal:\n%s", logs)
	}

	// The backend comes up on the same port: the proxy serves it.
	ln, err = net.Listen("tcp4", backend.String())
	if err != nil {
		t.Skipf("backend port taken meanwhile: %v", err)
	}
	ln.Close()
	serveTCPAt(t, "tcp", backend.String(), echoHalfClose)
	if got := roundTrip(t, dialTCP(t, addrOf(f)), []byte("up")); string(got) != "up" {
		t.Errorf("echo after backend came up = %q", got)
	}
}

// TestTCPConnectTimeout points the proxy at a backend whose accept queue
// is full, so that its SYNs go unanswered.
func TestTCPConnectTimeout(t *testing.T) {
	backend := fullBacklog(t)
	const timeout = 200 * time.Millisecond
	f, logs := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend),
		ConnectTimeout: timeout})

	c := dialTCP(t, addrOf(f))
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d < timeout/2 || d > timeout+time.Second {
		t.Errorf("client closed after %v; want about %v", d, timeout)
	}
	if !strings.Contains(logs.String(), "timed out") {
		t.Errorf("log does not tell of the timeout:\n%s", logs)
	}
}

// fullBacklog returns the address of a listener that drops new SYNs: its
// accept queue, of length 1, is full and never drained.
func fullBacklog(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	addr := ap(localAddr(fd))

	// Fill the queue; the kernel may take one more than asked.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// TestTCPIdleCostsNoGoroutine checks the promise that a connection at
// rest has no goroutine: opening more of them does not add any.
func TestTCPIdleCostsNoGoroutine(t *testing.T) {
	backend := serveTCP(t, "tcp4", func(c *net.TCPConn) {
		io.Copy(c, c) // one goroutine per connection here, in the test
	})
	f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})

	const conns = 50
	base := runtime.NumGoroutine()
	for i := range conns {
		c := dialTCP(t, addrOf(f))
		msg := fmt.Sprintf("ping %d", i)
		c.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %d = %q, %v", i, buf, err)
		}
	}

	// Each connection adds one goroutine: the test's echo handler. The
	// proxy adds none once the data has moved.
	eventually(t, "proxy goroutines to park", func() bool {
		return runtime.NumGoroutine() <= base+conns+2 // poller loop, slack
	})
}

// TestTCPKeepAlive checks that both of the proxy's sockets of a
// connection have a keep-alive timer running, so that a peer that
// vanished is noticed. /proc/net/tcp shows the timer (tr 2) per socket.
func TestTCPKeepAlive(t *testing.T) {
	backend := echoTCP(t, "tcp4")
	f, _ := serve(t, Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})
	c := dialTCP(t, addrOf(f))
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))

	front := addrOf(f).Port()
	eventually(t, "keep-alive timers on both legs", func() bool {
		legs := 0
		for _, s := range tcpSockets(t) {
			proxySide := s.local == front || s.remote == backend.Port() && s.local != front
			if proxySide && s.state == "01" && s.timer == "02" {
				legs++
			}
		}
		return legs == 2
	})
}

// tcpSocket is a line of /proc/net/tcp: ports, state and active timer.
type tcpSocket struct {
	local, remote uint16
	state, timer  string
}

func tcpSockets(t *testing.T) []tcpSocket {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	var out []tcpSocket
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		out = append(out, tcpSocket{local: hexPort(f[1]), remote: hexPort(f[2]),
			state: f[3], timer: strings.SplitN(f[5], ":", 2)[0]})
	}
	return out
}

// hexPort reads the port of an address such as 0100007F:1F90.
func hexPort(addr string) uint16 {
	_, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.ParseUint(port, 16, 16)
	return uint16(n)
}

// TestTCPClose checks that Close ends connections in flight promptly.
func TestTCPClose(t *testing.T) {
	backend := echoTCP(t, "tcp4")
	f, err := New(Config{Proto: "tcp", Frontend: ep(frontend("4")), Backend: ep(backend)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Serve() }()

	c := dialTCP(t, addrOf(f))
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))

	start := time.Now()
	f.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if d := time.Since(start); d > closeWait {
		t.Errorf("Close took %v", d)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after Close = %v; want the connection closed", err)
	}
}
