//go:build linux

package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper/internal/testbin"
)

// proxyBin is the binary under test, built once by TestMain.
var proxyBin string

// waitLimit bounds every wait in these tests.
const waitLimit = 10 * time.Second

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) {
		proxyBin = filepath.Join(dir, "userland-proxy")
	}, ".")
}

// syncBuffer collects a proxy's stderr while it runs.
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

// proxy is one running userland-proxy.
type proxy struct {
	cmd    *exec.Cmd
	status string      // what it wrote on fd 3, up to EOF
	stderr *syncBuffer // what it wrote on fd 2
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// start starts the proxy with args, and listen as fd 4 if not nil, and
// reads its status pipe to the end. The proxy is killed when the test
// ends; its stderr is shown if the test failed.
func start(tb testing.TB, args []string, listen *os.File) *proxy {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()

	p := &proxy{cmd: exec.Command(proxyBin, args...), stderr: &syncBuffer{},
		exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.ExtraFiles = []*os.File{w}
	if listen != nil {
		p.cmd.ExtraFiles = append(p.cmd.ExtraFiles, listen)
	}
	if err := p.cmd.Start(); err != nil {
		w.Close()
		tb.Fatalf("start proxy: %v", err)
	}
	w.Close()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if tb.Failed() {
			tb.Logf("proxy %v stderr:\n%s", args, p.stderr)
		}
	})

	r.SetReadDeadline(time.Now().Add(waitLimit))
	status, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("read status pipe: %v (got %q)", err, status)
	}
	p.status = string(status)
	return p
}

// mustRun is start for a proxy that must report ready.
func mustRun(tb testing.TB, args []string, listen *os.File) *proxy {
	tb.Helper()
	p := start(tb, args, listen)
	if p.status != "0\n" {
		tb.Fatalf("status = %q; want %q", p.status, "0\n")
	}
	return p
}

// wait waits for the proxy to exit and returns its exit code.
func (p *proxy) wait(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		tb.Fatal("proxy did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		tb.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *proxy) pid() int { return p.cmd.Process.Pid }

// fds counts the proxy's open descriptors.
func (p *proxy) fds(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.pid()) + "/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// args builds a proxy command line.
func args(proto string, host netip.AddrPort, backend netip.AddrPort, extra ...string) []string {
	a := []string{
		"-proto", proto,
		"-host-ip", host.Addr().String(), "-host-port", strconv.Itoa(int(host.Port())),
		"-container-ip", backend.Addr().String(),
		"-container-port", strconv.Itoa(int(backend.Port())),
	}
	return append(a, extra...)
}

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.IPv6Loopback()
)

// socketFile makes a socket as a launcher would hand it over: bound to
// addr (port 0 picks one), listening if it is a stream socket. For IPv6,
// v6only says whether it refuses IPv4.
func socketFile(tb testing.TB, sotype int, addr netip.AddrPort, v6only bool) (*os.File, netip.AddrPort) {
	tb.Helper()
	fam := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	if addr.Addr().Is4() {
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	}
	fd, err := unix.Socket(fam, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "socket")
	tb.Cleanup(func() { f.Close() })
	if fam == unix.AF_INET6 {
		on := 0
		if v6only {
			on = 1
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on)
	}
	if sotype == unix.SOCK_STREAM {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		tb.Fatalf("bind %v: %v", addr, err)
	}
	if sotype == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 1024); err != nil {
			tb.Fatal(err)
		}
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	switch got := got.(type) {
	case *unix.SockaddrInet4:
		return f, netip.AddrPortFrom(addr.Addr(), uint16(got.Port))
	case *unix.SockaddrInet6:
		return f, netip.AddrPortFrom(addr.Addr(), uint16(got.Port))
	}
	tb.Fatalf("unexpected address %v", got)
	return nil, netip.AddrPort{}
}

// freePort returns a port that was free on addr a moment ago.
func freePort(tb testing.TB, network string, addr netip.Addr) netip.AddrPort {
	tb.Helper()
	var ap netip.AddrPort
	switch network {
	case "tcp":
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			tb.Fatal(err)
		}
		ap = ln.Addr().(*net.TCPAddr).AddrPort()
		ln.Close()
	default:
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			tb.Fatal(err)
		}
		ap = c.LocalAddr().(*net.UDPAddr).AddrPort()
		c.Close()
	}
	return netip.AddrPortFrom(addr, ap.Port())
}

// signalName is for test names.
func signalName(s syscall.Signal) string {
	return strings.ToUpper(unix.SignalName(s))
}
