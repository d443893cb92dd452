//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper/portmappertest"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // lines stderr must hold
	}{
		{"no spec", nil,
			[]string{"portmap: nothing to publish: give at least one -p SPEC"}},
		{"letters in a port", []string{"-p", "127.0.0.1:80x:127.0.0.1:80"},
			[]string{`portmap: invalid spec "127.0.0.1:80x:127.0.0.1:80": invalid host port "80x"`}},
		{"unequal ranges", []string{"-p", "127.0.0.1:8000-8002:127.0.0.1:9000-9001"},
			[]string{`portmap: invalid spec "127.0.0.1:8000-8002:127.0.0.1:9000-9001": ` +
				"host ports 8000-8002 and backend ports 9000-9001 differ in length (3 and 2)"}},
		{"port 0", []string{"-p", "127.0.0.1:0"},
			[]string{`portmap: invalid spec "127.0.0.1:0": backend port 0 is out of range`}},
		{"port 65536", []string{"-p", "65536:127.0.0.1:80"},
			[]string{`portmap: invalid spec "65536:127.0.0.1:80": host port 65536 is out of range`}},
		{"ipv6 without brackets", []string{"-p", "::1:8080:127.0.0.1:80"},
			[]string{`portmap: invalid spec "::1:8080:127.0.0.1:80": `,
				"IPv6 addresses go in brackets"}},
		{"unknown protocol", []string{"-p", "127.0.0.1:80/icmp"},
			[]string{`portmap: invalid spec "127.0.0.1:80/icmp": unknown protocol "icmp"`}},
		{"every bad spec named", []string{"-p", "a:1", "-p", "127.0.0.1:80", "-p", "b:2"},
			[]string{`invalid spec "a:1"`, `invalid spec "b:2"`}},
		{"unknown flag", []string{"-q"},
			[]string{"flag provided but not defined: -q", "Usage: portmap"}},
		{"stray argument", []string{"-p", "127.0.0.1:80", "127.0.0.1:81"},
			[]string{`portmap: unexpected argument "127.0.0.1:81"; each SPEC follows -p`}},
		{"bad log format", []string{"-log-format", "xml", "-p", "127.0.0.1:80"},
			[]string{`portmap: invalid -log-format "xml", want text or json`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := startPortmap(t, tt.args...)
			checkExit(t, run, 2, tt.want...)
		})
	}
}

func TestHelp(t *testing.T) {
	run := startPortmap(t, "-h")
	checkExit(t, run, 0, "Usage: portmap [flags] -p SPEC [-p SPEC ...]", "-log-format")
}

func TestPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	first := freeRange(t, 1)
	bad := fmt.Sprintf("127.0.0.1:%d:127.0.0.1:80", taken.Addr().(*net.TCPAddr).Port)

	run := startPortmap(t, "-p", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:80", first), "-p", bad)
	checkExit(t, run, 1, fmt.Sprintf("portmap: publishing %q: binding tcp %s: address already in use",
		bad, taken.Addr()))
	if pids := processesOf(proxyBin); len(pids) > 0 {
		t.Errorf("proxies running after a failed start: %v", pids)
	}
	if s := socketsOn(t, "tcp", first); len(s) > 0 {
		t.Errorf("the first spec's port %d is still bound: %v", first, s)
	}
}

func TestProxyFails(t *testing.T) {
	const words = "cannot reach the backend from here"
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Fail, Message: words,
	})
	spec := "127.0.0.1:0:127.0.0.1:80"

	run := startPortmap(t, "-proxy", fake.Path(), "-p", spec)
	checkExit(t, run, 1, fmt.Sprintf("portmap: publishing %q: starting the proxy for tcp 127.0.0.1:", spec),
		"error starting userland proxy: "+words)
}

func TestProxyDiesWithoutRestart(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Dies, Message: "out of luck", ExitCode: 7,
		Delay: 50 * time.Millisecond,
	})
	spec := "127.0.0.1:0:127.0.0.1:80"

	run := startPortmap(t, "-restart=false", "-proxy", fake.Path(), "-p", spec)
	run.bindings(1)
	checkExit(t, run, 1, fmt.Sprintf("portmap: proxy for %q", spec),
		"exited with status 7; stderr: out of luck")
}

func TestNoProxyFound(t *testing.T) {
	dir := t.TempDir()
	lonely := filepath.Join(dir, "portmap")
	data, err := os.ReadFile(portmapBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lonely, data, 0o755); err != nil {
		t.Fatal(err)
	}

	run := startPortmapAt(t, lonely, []string{"PATH=" + dir + "/nowhere"}, "-p", "127.0.0.1:80")
	checkExit(t, run, 1, "portmap: no userland-proxy found: looked at "+
		filepath.Join(dir, "userland-proxy")+" and in $PATH ("+dir+"/nowhere)")
}

func TestProxyFlagNotExecutable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-proxy")
	run := startPortmap(t, "-proxy", missing, "-p", "127.0.0.1:80")
	checkExit(t, run, 1, "portmap: using -proxy "+missing+": stat "+missing+
		": no such file or directory")
}

func TestSCTPWithoutKernelSupport(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err == nil {
		unix.Close(fd)
		t.Skip("this host has SCTP")
	}
	spec := "127.0.0.1:0:127.0.0.1:80/sctp"
	run := startPortmap(t, "-p", spec)
	checkExit(t, run, 1, fmt.Sprintf("portmap: publishing %q: binding sctp 127.0.0.1:0: "+
		"creating the socket: protocol not supported", spec))
}

// checkExit waits for run to exit and checks its status and that stderr
// holds each of want.
func checkExit(t *testing.T, run *portmapRun, code int, want ...string) {
	t.Helper()
	if got := run.wait(); got != code {
		t.Errorf("exit status %d; want %d; stderr:\n%s", got, code, run.stderr)
	}
	stderr := run.stderr.String()
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}
