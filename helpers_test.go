package portmapper

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

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

// logBuffer is a logger whose output a test can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	b := &logBuffer{}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
