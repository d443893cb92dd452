//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/userland-proxy/portmapper/internal/testbin"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 15 * time.Second

// The binaries under test, built once by TestMain into one directory, so
// that portmap finds the proxy beside itself.
var (
	portmapBin string
	proxyBin   string
)

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) {
		portmapBin = filepath.Join(dir, "portmap")
		proxyBin = filepath.Join(dir, "userland-proxy")
	}, ".", "../userland-proxy")
}

// portmapRun is one portmap process.
type portmapRun struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stdout *lineWriter
	stderr *watchedBuffer
	done   chan struct{} // closed once the process is reaped
}

// startPortmap runs portmap with args; it is killed when the test ends
// if it still runs.
func startPortmap(tb testing.TB, args ...string) *portmapRun {
	tb.Helper()
	return startPortmapAt(tb, portmapBin, nil, args...)
}

// startPortmapAt runs the portmap binary at path with args, and env as
// its whole environment if not nil.
func startPortmapAt(tb testing.TB, path string, env []string, args ...string) *portmapRun {
	tb.Helper()
	r := &portmapRun{
		tb:     tb,
		cmd:    exec.Command(path, args...),
		stdout: &lineWriter{lines: make(chan string, 100)},
		stderr: newWatchedBuffer(),
		done:   make(chan struct{}),
	}
	r.cmd.Env = env
	r.cmd.Stdout = r.stdout
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		tb.Fatalf("starting portmap: %v", err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()
	tb.Cleanup(r.kill)
	return r
}

func (r *portmapRun) kill() {
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// wait waits for portmap to exit and returns its exit status.
func (r *portmapRun) wait() int {
	r.tb.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-timer.C:
		r.kill()
		r.tb.Fatalf("portmap still running after %v; stderr:\n%s", waitLimit, r.stderr)
		return -1
	}
}

// interrupt sends SIGINT and returns the exit status.
func (r *portmapRun) interrupt() int {
	r.tb.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		r.tb.Fatalf("signalling portmap: %v", err)
	}
	return r.wait()
}

// bindings waits for n binding lines on stdout and parses them.
func (r *portmapRun) bindings(n int) []printed {
	r.tb.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()

	var out []printed
	for len(out) < n {
		select {
		case line := <-r.stdout.lines:
			out = append(out, parsePrinted(r.tb, line))
		case <-r.done:
			r.tb.Fatalf("portmap exited (%v) after %d of %d bindings; stderr:\n%s",
				r.cmd.ProcessState, len(out), n, r.stderr)
		case <-timer.C:
			r.tb.Fatalf("%d of %d bindings printed within %v; stderr:\n%s",
				len(out), n, waitLimit, r.stderr)
		}
	}
	return out
}

// printed is a binding line as portmap prints it.
type printed struct {
	proto         string
	host, backend netip.AddrPort
}

var printedLine = regexp.MustCompile(`^(tcp|udp|sctp) (\S+) -> (\S+)$`)

func parsePrinted(tb testing.TB, line string) printed {
	tb.Helper()
	m := printedLine.FindStringSubmatch(line)
	if m == nil {
		tb.Fatalf("binding line %q does not read PROTO HOST -> BACKEND", line)
	}
	host, err1 := netip.ParseAddrPort(m[2])
	backend, err2 := netip.ParseAddrPort(m[3])
	if err1 != nil || err2 != nil {
		tb.Fatalf("binding line %q: addresses do not parse", line)
	}
	return printed{proto: m[1], host: host, backend: backend}
}

// lineWriter passes each complete line written to it to a channel.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	lines   chan string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		line, rest, found := bytes.Cut(w.partial, []byte{'\n'})
		if !found {
			return len(b), nil
		}
		w.lines <- string(line)
		w.partial = rest
	}
}

// watchedBuffer keeps what is written and lets a test wait for a text.
type watchedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newWatchedBuffer() *watchedBuffer {
	return &watchedBuffer{changed: make(chan struct{})}
}

func (w *watchedBuffer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
	return w.buf.Write(b)
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the buffer holds text n times.
func (w *watchedBuffer) waitFor(tb testing.TB, text string, n int) {
	tb.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		w.mu.Lock()
		count, changed := strings.Count(w.buf.String(), text), w.changed
		w.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("%q not written %d times within %v:\n%s", text, n, waitLimit, w)
		}
	}
}

// processesOf lists the running processes whose argv[0] is argv0.
func processesOf(argv0 string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if first, _, _ := strings.Cut(string(cmdline), "\x00"); first == argv0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kid, _ := strconv.Atoi(e.Name())
			kids = append(kids, kid)
		}
	}
	return kids
}

// socket is a line of /proc/net/{tcp,udp}{,6}.
type socket struct {
	table, local, inode string
}

// socketsOn lists the sockets of this network namespace bound to port
// for proto, from /proc/net: listening TCP sockets, or any UDP socket.
func socketsOn(tb testing.TB, proto string, port uint16) []socket {
	tb.Helper()
	const tcpListen = "0A"
	var found []socket
	for _, name := range []string{proto, proto + "6"} {
		data, err := os.ReadFile("/proc/net/" + name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				continue
			}
			if proto == "udp" || f[3] == tcpListen {
				found = append(found, socket{table: name, local: f[1], inode: f[9]})
			}
		}
	}
	return found
}

// tcpEcho serves ln, echoing each connection until its client closes.
func tcpEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// udpEcho echoes every datagram on pc back to its sender.
func udpEcho(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// echoBackends starts a TCP and a UDP echo server on 127.0.0.1, closed
// when the test ends.
func echoBackends(tb testing.TB) (tcp, udp netip.AddrPort) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ln.Close()
		pc.Close()
	})
	go tcpEcho(ln)
	go udpEcho(pc)
	return ln.Addr().(*net.TCPAddr).AddrPort(), pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// echoRange starts n TCP echo servers on consecutive ports of 127.0.0.1
// and returns the first port.
func echoRange(tb testing.TB, n int) uint16 {
	tb.Helper()
	for base := 20000 + os.Getpid()%5000; base < 32000; base += n {
		lns := listenAll(base, n)
		if lns == nil {
			continue
		}
		for _, ln := range lns {
			tb.Cleanup(func() { ln.Close() })
			go tcpEcho(ln)
		}
		return uint16(base)
	}
	tb.Fatalf("no %d consecutive free ports", n)
	return 0
}

// freeRange finds n consecutive ports free on 127.0.0.1 and returns the
// first.
func freeRange(tb testing.TB, n int) uint16 {
	tb.Helper()
	for base := 25000 + os.Getpid()%5000; base < 32000; base += n {
		if lns := listenAll(base, n); lns != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return uint16(base)
		}
	}
	tb.Fatalf("no %d consecutive free ports", n)
	return 0
}

// listenAll listens on ports base to base+n-1 of 127.0.0.1, or on none.
func listenAll(base, n int) []net.Listener {
	var lns []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil
		}
		lns = append(lns, ln)
	}
	return lns
}

// hasIPv6 tells whether [::1] can be bound here.
func hasIPv6() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
