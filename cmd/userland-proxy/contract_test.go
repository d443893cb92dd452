//go:build linux

package main

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestVersion(t *testing.T) {
	for _, flag := range []string{"-v", "-version", "--version"} {
		t.Run(flag, func(t *testing.T) {
			out, err := exec.Command(proxyBin, flag).Output()
			if err != nil {
				t.Fatalf("%s: %v", flag, err)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "userland-proxy version ") {
				t.Errorf("%s printed %q; want one version line", flag, out)
			}
		})
	}
}

// TestCommandLineErrors checks that a command line the proxy cannot serve
// gets "1\n" and a reason on fd 3, and a non-zero exit.
func TestCommandLineErrors(t *testing.T) {
	good := map[string]string{
		"-proto": "tcp", "-host-ip": "127.0.0.1", "-host-port": "0",
		"-container-ip": "127.0.0.1", "-container-port": "9",
	}
	port := strconv.Itoa(int(freePort(t, "tcp", lo4).Port()))
	good["-host-port"] = port

	tests := []struct {
		name   string
		change []string // flag, value; a value of "" drops the flag
		extra  []string
		want   string
	}{
		{name: "bad host ip", change: []string{"-host-ip", "300.1.1.1"},
			want: `invalid value "300.1.1.1" for flag -host-ip`},
		{name: "bad container ip", change: []string{"-container-ip", "localhost"}, want: "not an IP address"},
		{name: "port 0", change: []string{"-host-port", "0"}, want: "from 1 to 65535"},
		{name: "port too big", change: []string{"-container-port", "65536"}, want: "from 1 to 65535"},
		{name: "negative port", change: []string{"-host-port", "-1"}, want: "from 1 to 65535"},
		{name: "unknown protocol", change: []string{"-proto", "icmp"}, want: "unsupported protocol"},
		{name: "unknown flag", extra: []string{"-frobnicate"}, want: "not defined: -frobnicate"},
		{name: "missing container ip", change: []string{"-container-ip", ""}, want: "missing -container-ip"},
		{name: "missing host port", change: []string{"-host-port", ""}, want: "missing -host-port"},
		{name: "unspecified container ip", change: []string{"-container-ip", "0.0.0.0"}, want: "cannot be reached"},
		{name: "flag without value", extra: []string{"-udp-idle-timeout"}, want: "needs an argument"},
		{name: "stray argument", extra: []string{"extra"}, want: `unexpected argument "extra"`},
		{name: "listen fd missing", extra: []string{"-use-listen-fd"}, want: "handed-over socket"},
		{name: "host address in use", change: []string{"-host-port", heldPort(t)}, want: "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := map[string]string{}
			for k, v := range good {
				flags[k] = v
			}
			if tt.change != nil {
				flags[tt.change[0]] = tt.change[1]
			}
			var argv []string
			for _, k := range []string{"-proto", "-host-ip", "-host-port", "-container-ip", "-container-port"} {
				if flags[k] != "" {
					argv = append(argv, k, flags[k])
				}
			}
			argv = append(argv, tt.extra...)

			p := start(t, argv, nil)
			if !strings.HasPrefix(p.status, "1\n") || !strings.Contains(p.status, tt.want) {
				t.Errorf("status = %q; want 1\\n and a reason with %q", p.status, tt.want)
			}
			if code := p.wait(t); code == 0 {
				t.Errorf("exit status 0; want non-zero")
			}
		})
	}
}

// heldPort returns a TCP port that a listener holds until the test ends.
func heldPort(t *testing.T) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestHandedOverSocketErrors checks that fd 4 of the wrong kind is
// refused with a reason, never served half-working.
func TestHandedOverSocketErrors(t *testing.T) {
	backend := netip.MustParseAddrPort("127.0.0.1:9")
	tests := []struct {
		name  string
		proto string
		host  netip.Addr
		sock  func(t *testing.T) *os.File
		want  string
	}{
		{"udp socket for tcp", "tcp", lo4, func(t *testing.T) *os.File {
			f, _ := socketFile(t, unix.SOCK_DGRAM, netip.AddrPortFrom(lo4, 0), true)
			return f
		}, "socket is udp, want tcp"},
		{"tcp socket for udp", "udp", lo4, func(t *testing.T) *os.File {
			f, _ := socketFile(t, unix.SOCK_STREAM, netip.AddrPortFrom(lo4, 0), true)
			return f
		}, "socket is tcp, want udp"},
		{"v6 socket for a v4 host ip", "tcp", lo4, func(t *testing.T) *os.File {
			f, _ := socketFile(t, unix.SOCK_STREAM, netip.AddrPortFrom(lo6, 0), true)
			return f
		}, "family is IPv6, want IPv4"},
		{"tcp bound, not listening", "tcp", lo4, boundNotListening, "not listening"},
		{"not a socket", "tcp", lo4, func(t *testing.T) *os.File {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}, "not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := args(tt.proto, netip.AddrPortFrom(tt.host, 1), backend, "-use-listen-fd")
			p := start(t, argv, tt.sock(t))
			if !strings.HasPrefix(p.status, "1\n") || !strings.Contains(p.status, tt.want) {
				t.Errorf("status = %q; want 1\\n and a reason with %q", p.status, tt.want)
			}
			if code := p.wait(t); code == 0 {
				t.Error("exit status 0; want non-zero")
			}
		})
	}
}

func boundNotListening(t *testing.T) *os.File {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bound")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: lo4.As4()}); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDescriptors checks the contract's rules on descriptors: the status
// pipe is closed once the proxy reported ready (the launcher reads EOF),
// and whatever the proxy holds is close-on-exec.
func TestDescriptors(t *testing.T) {
	backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	for _, withFD := range []bool{true, false} {
		t.Run("listen fd "+strconv.FormatBool(withFD), func(t *testing.T) {
			var p *proxy
			if withFD {
				f, addr := socketFile(t, unix.SOCK_STREAM, netip.AddrPortFrom(lo4, 0), true)
				p = mustRun(t, args("tcp", addr, backend.addr(), "-use-listen-fd"), f)
			} else {
				p = mustRun(t, args("tcp", freePort(t, "tcp", lo4), backend.addr()), nil)
			}
			// start read the status pipe to EOF: fd 3 is closed.

			dir := "/proc/" + strconv.Itoa(p.pid()) + "/fdinfo/"
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				fd, _ := strconv.Atoi(e.Name())
				if fd <= 2 {
					continue
				}
				info, err := os.ReadFile(dir + e.Name())
				if err != nil {
					continue // closed meanwhile
				}
				link, _ := os.Readlink("/proc/" + strconv.Itoa(p.pid()) + "/fd/" + e.Name())
				if !cloexec(string(info)) && !leakedToUs(e.Name(), link) {
					t.Errorf("fd %d (%s) is not close-on-exec", fd, link)
				}
			}
		})
	}
}

// leakedToUs reports whether fd is one that this test process inherited
// without close-on-exec, and so passed on to the proxy: that is the test
// environment's doing, not the proxy's.
func leakedToUs(fd, link string) bool {
	ours, err := os.Readlink("/proc/self/fd/" + fd)
	if err != nil || ours != link {
		return false
	}
	info, err := os.ReadFile("/proc/self/fdinfo/" + fd)
	return err == nil && !cloexec(string(info))
}

// cloexec reads the flags line of /proc/PID/fdinfo/N.
func cloexec(fdinfo string) bool {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&unix.O_CLOEXEC != 0
		}
	}
	return false
}

// TestStopSignals checks that SIGINT and SIGTERM make the proxy exit 0
// within a second, with a transfer in flight, and free its port.
func TestStopSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalName(sig), func(t *testing.T) {
			backend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
			host := freePort(t, "tcp", lo4)
			p := mustRun(t, args("tcp", host, backend.addr()), nil)

			// A connection in flight: an upload the echo keeps returning.
			c := dial(t, host)
			if err := ping(c, "in flight"); err != nil {
				t.Fatal(err)
			}
			go func() {
				chunk := make([]byte, 64<<10)
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			idle := dial(t, host)
			ping(idle, "idle")

			start := time.Now()
			p.cmd.Process.Signal(sig)
			if code := p.wait(t); code != 0 {
				t.Errorf("exit status %d; want 0", code)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("exit took %v; want under 1s", d)
			}

			ln, err := net.Listen("tcp", host.String())
			if err != nil {
				t.Fatalf("port not free after exit: %v", err)
			}
			ln.Close()
			c.Close()
		})
	}
}

// TestLogsRateLimited floods the proxy with clients of an unreachable
// backend: the log says so, in a few lines.
func TestLogsRateLimited(t *testing.T) {
	dead := freePort(t, "tcp", lo4)
	host := freePort(t, "tcp", lo4)
	p := mustRun(t, args("tcp", host, dead), nil)

	for range 50 {
		c := dial(t, host)
		c.Read(make([]byte, 1)) // the proxy closes it
		c.Close()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)

	n := strings.Count(p.stderr.String(), "connect to backend")
	if n == 0 || n > 3 {
		t.Errorf("%d lines about the backend for 50 refusals; want 1 to 3:\n%s", n, p.stderr)
	}
}
