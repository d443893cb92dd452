//go:build linux

package portmapper

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/libnetwork/types"
)

// tcpBinding returns a TCP binding from 127.0.0.1:hostPort to a backend.
func tcpBinding(hostPort uint16) types.PortBinding {
	return types.PortBinding{
		Proto:    types.TCP,
		HostIP:   net.IPv4(127, 0, 0, 1),
		HostPort: hostPort,
		IP:       net.IPv4(127, 0, 0, 1),
		Port:     9,
	}
}

// listenTCP returns a listening socket on a free loopback port as a file,
// as a daemon hands it to the proxy, and the port.
func listenTCP(tb testing.TB) (*os.File, uint16) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening: %v", err)
	}
	defer ln.Close()

	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatalf("getting the listener's file: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return f, uint16(ln.Addr().(*net.TCPAddr).Port)
}

// openFDs counts this process's open descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("listing fds: %v", err)
	}
	return len(entries)
}

// children lists the pids whose parent is this process, zombies included.
func children(tb testing.TB) []int {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatalf("listing /proc: %v", err)
	}

	self := os.Getpid()
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(pid); ppid == self {
			kids = append(kids, pid)
		}
	}
	return kids
}

// procStat returns the parent pid and state letter of pid, or 0 and ""
// when the process is gone.
func procStat(pid int) (ppid int, state string) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ""
	}
	// The command name may hold spaces; the fields after it do not.
	_, rest, _ := strings.Cut(string(data), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0]
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	_, state := procStat(pid)
	return state != "" && state != "Z"
}

// logBuffer is a logger whose output a test can read and wait for.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	b := &logBuffer{written: make(chan struct{})}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.written)
	b.written = make(chan struct{})
	return b.buf.Write(p)
}

// waitFor waits until the log holds s, and reports whether it did within
// d. Records reach the logger from a goroutine of the launcher's.
func (b *logBuffer) waitFor(s string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		b.mu.Lock()
		found, written := strings.Contains(b.buf.String(), s), b.written
		b.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-written:
		case <-deadline:
			return false
		}
	}
}

// blockingHandler is a logger that never returns until release is closed.
type blockingHandler struct {
	release chan struct{}
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h blockingHandler) WithGroup(string) slog.Handler            { return h }

func (h blockingHandler) Handle(context.Context, slog.Record) error {
	<-h.release
	return nil
}

// scriptProxy writes a shell script that plays a proxy and returns its
// path. The script can use $PIDS, a file it may append the pids of its
// children to: they are killed when the test ends.
func scriptProxy(tb testing.TB, body string) string {
	tb.Helper()
	dir := tb.TempDir()
	pids := filepath.Join(dir, "pids")
	path := filepath.Join(dir, "proxy.sh")
	script := "#!/bin/sh\nPIDS=" + pids + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatalf("writing proxy script: %v", err)
	}

	tb.Cleanup(func() {
		data, _ := os.ReadFile(pids)
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return path
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
