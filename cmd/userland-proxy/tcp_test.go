//go:build linux

package main

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startTCP runs a proxy for backend on a socket handed over on fd 4, and
// returns where clients connect.
func startTCP(tb testing.TB, backend netip.AddrPort, extra ...string) (*proxy, netip.AddrPort) {
	tb.Helper()
	f, addr := socketFile(tb, unix.SOCK_STREAM, netip.AddrPortFrom(lo4, 0), true)
	p := mustRun(tb, args("tcp", addr, backend, append(extra, "-use-listen-fd")...), f)
	return p, addr
}

func TestTCPFamilies(t *testing.T) {
	tests := []struct {
		name          string
		host, backend netip.Addr
		listenFD      bool
		dialV4        bool // reach an IPv6 host address over IPv4 (dual-stack)
	}{
		{name: "v4 bound by the proxy", host: lo4, backend: lo4},
		{name: "v6 bound by the proxy", host: lo6, backend: lo6},
		{name: "v6 to v4", host: lo6, backend: lo4, listenFD: true},
		{name: "v4 to v6", host: lo4, backend: lo6, listenFD: true},
		{name: "dual-stack reached over v4", host: netip.IPv6Unspecified(), backend: lo4,
			listenFD: true, dialV4: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := serveTCP(t, netip.AddrPortFrom(tt.backend, 0), echo)
			var host netip.AddrPort
			if tt.listenFD {
				var f *os.File
				f, host = socketFile(t, unix.SOCK_STREAM, netip.AddrPortFrom(tt.host, 0), !tt.dialV4)
				mustRun(t, args("tcp", host, backend.addr(), "-use-listen-fd"), f)
			} else {
				host = freePort(t, "tcp", tt.host)
				mustRun(t, args("tcp", host, backend.addr()), nil)
			}
			if tt.dialV4 {
				host = netip.AddrPortFrom(lo4, host.Port())
			}
			if err := ping(dial(t, host), "hello "+tt.name); err != nil {
				t.Errorf("echo: %v", err)
			}
		})
	}
}

// TestTCPHalfClose checks that the client's FIN reaches the backend as a
// FIN, and that the backend's reply, sent later, still reaches the client.
func TestTCPHalfClose(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), func(c *net.TCPConn) {
		req, err := io.ReadAll(c) // ends at the client's FIN
		if err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // a slow server, not a synchronisation
		c.Write([]byte("re: " + string(req)))
		c.CloseWrite()
	})
	_, host := startTCP(t, backend.addr())

	c := dial(t, host)
	c.Write([]byte("question"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "re: question" {
		t.Errorf("reply = %q, %v; want %q", got, err, "re: question")
	}
}

// TestTCPBulk echoes 64 MiB through the proxy and compares checksums.
func TestTCPBulk(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	_, host := startTCP(t, backend.addr())

	const size = 64 << 20
	c := dial(t, host)
	c.SetDeadline(time.Now().Add(4 * waitLimit))

	sent := sha256.New()
	go func() {
		src := rand.NewChaCha8([32]byte{1})
		io.Copy(c, io.TeeReader(io.LimitReader(src, size), sent))
		c.CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil || n != size {
		t.Fatalf("echoed %d bytes, %v; want %d", n, err, size)
	}
	if string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Error("echoed bytes differ from those sent")
	}
}

func TestTCPConcurrent(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	_, host := startTCP(t, backend.addr())

	const clients = 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", host.String(), waitLimit)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			msg := strings.Repeat(strconv.Itoa(i), 1000)
			for range 5 {
				if err := ping(c, msg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTCPIdleConnections holds 500 connections, lets them rest, uses them
// again, and checks that each costs the proxy its two sockets and no more.
func TestTCPIdleConnections(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	p, host := startTCP(t, backend.addr())
	base := p.fds(t)

	const conns = 500
	cs := make([]*net.TCPConn, conns)
	for i := range cs {
		cs[i] = dial(t, host)
		if err := ping(cs[i], "first"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the pause is the point of the test

	if got, max := p.fds(t), base+2*conns+10; got > max {
		t.Errorf("proxy holds %d fds for %d connections; want at most %d", got, conns, max)
	}
	for i, c := range cs {
		c.SetDeadline(time.Now().Add(waitLimit))
		if err := ping(c, "again"); err != nil {
			t.Fatalf("connection %d after the pause: %v", i, err)
		}
	}
}

// TestTCPBackendDownThenUp checks that clients of a backend that refuses
// are closed promptly, and that the proxy serves once the backend is up.
func TestTCPBackendDownThenUp(t *testing.T) {
	backendAddr := freePort(t, "tcp", lo4)
	_, host := startTCP(t, backendAddr)

	for i := range 3 {
		c := dial(t, host)
		start := time.Now()
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client %d: read %d, %v; want EOF", i, n, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("client %d closed after %v", i, d)
		}
	}

	serveTCP(t, backendAddr, echo)
	if err := ping(dial(t, host), "up"); err != nil {
		t.Errorf("after the backend came up: %v", err)
	}
}

// TestTCPConnectTimeout points the proxy at a backend that never answers
// SYNs: the client is closed after the connect timeout.
func TestTCPConnectTimeout(t *testing.T) {
	backend := synDropper(t)
	_, host := startTCP(t, backend, "-connect-timeout", "300ms")

	c := dial(t, host)
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v; want EOF", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("client closed after %v; want about 300ms", d)
	}
}

// synDropper returns the address of a listener whose accept queue is
// full and never drained, so that the kernel drops new SYNs.
func synDropper(t *testing.T) netip.AddrPort {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.Bind(fd, &unix.SockaddrInet4{Addr: lo4.As4()})
	unix.Listen(fd, 0)
	sa, _ := unix.Getsockname(fd)
	addr := netip.AddrPortFrom(lo4, uint16(sa.(*unix.SockaddrInet4).Port))
	for range 2 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// TestTCPQueuedBeforeStart checks that connections queued on the
// handed-over socket before the proxy started are all forwarded.
func TestTCPQueuedBeforeStart(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	f, host := socketFile(t, unix.SOCK_STREAM, netip.AddrPortFrom(lo4, 0), true)

	var cs []*net.TCPConn
	for i := range 5 {
		c := dial(t, host) // queued: nobody accepts yet
		c.Write([]byte("early " + strconv.Itoa(i)))
		cs = append(cs, c)
	}
	mustRun(t, args("tcp", host, backend.addr(), "-use-listen-fd"), f)

	for i, c := range cs {
		want := "early " + strconv.Itoa(i)
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
			t.Errorf("queued client %d: got %q, %v; want %q", i, buf, err, want)
		}
	}
}

// TestTCPOutOfDescriptors lowers the proxy's RLIMIT_NOFILE to 48 and
// opens 80 connections: the proxy keeps the connections it has, waits
// without spinning, logs once, and serves again once they close.
func TestTCPOutOfDescriptors(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	p, host := startTCP(t, backend.addr())
	lim := unix.Rlimit{Cur: 48, Max: 48}
	if err := unix.Prlimit(p.pid(), unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}

	// The kernel queues the connections the proxy cannot take.
	const total = 80
	cs := make([]*net.TCPConn, total)
	for i := range cs {
		cs[i] = dial(t, host)
		cs[i].Write([]byte("x"))
	}
	served := answered(cs, 500*time.Millisecond)
	if len(served) < 10 || len(served) == total {
		t.Fatalf("%d of %d connections served under a limit of 48 fds", len(served), total)
	}

	for i, c := range served {
		c.SetDeadline(time.Now().Add(waitLimit))
		if err := ping(c, "still"); err != nil {
			t.Errorf("established connection %d broke: %v", i, err)
		}
	}
	cpu := cpuTime(t, p.pid())
	time.Sleep(500 * time.Millisecond) // measuring idleness takes time
	if d := cpuTime(t, p.pid()) - cpu; d > 100*time.Millisecond {
		t.Errorf("proxy used %v of CPU in 500ms while out of descriptors; want it to back off", d)
	}

	for _, c := range cs {
		c.Close()
	}
	if err := ping(dial(t, host), "after"); err != nil {
		t.Errorf("after the connections closed: %v", err)
	}
	if n := strings.Count(p.stderr.String(), "pausing until it clears"); n < 1 || n > 2 {
		t.Errorf("%d lines about the accept failure; want one per burst:\n%s", n, p.stderr)
	}
}

// answered returns the connections that echo the byte each sent, within
// wait.
func answered(cs []*net.TCPConn, wait time.Duration) []*net.TCPConn {
	ok := make([]bool, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(wait))
			_, err := io.ReadFull(c, make([]byte, 1))
			ok[i] = err == nil
		}()
	}
	wg.Wait()

	var served []*net.TCPConn
	for i, c := range cs {
		if ok[i] {
			served = append(served, c)
		}
	}
	return served
}

// cpuTime is the user and system time used by process pid so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	// Of another process, only /proc tells: utime and stime in stat.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	stat := string(b)
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+2:])
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// TestTCPRebindInTimeWait checks that a proxy binding its own port can
// rebind it while connections it closed first linger in TIME_WAIT.
func TestTCPRebindInTimeWait(t *testing.T) {
	// A backend that closes first, so the proxy closes the client first.
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), func(c *net.TCPConn) {
		c.Write([]byte("bye"))
	})
	host := freePort(t, "tcp", lo4)
	p := mustRun(t, args("tcp", host, backend.addr()), nil)
	c := dial(t, host)
	io.ReadAll(c) // "bye", then the proxy's FIN
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)

	mustRun(t, args("tcp", host, backend.addr()), nil)
}
