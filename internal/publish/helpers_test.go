//go:build linux

package publish

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/userland-proxy/portmapper/internal/portspec"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logRecorder is a slog handler that passes each record's message and
// attributes, as one line, to a channel.
type logRecorder struct {
	lines chan string
}

func newLogRecorder() *logRecorder {
	return &logRecorder{lines: make(chan string, 1000)}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	select {
	case r.lines <- b.String():
	default:
	}
	return nil
}

// waitFor returns the next line that starts with msg, failing the test if
// none comes in time.
func (r *logRecorder) waitFor(tb testing.TB, msg string) string {
	tb.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case line := <-r.lines:
			if strings.HasPrefix(line, msg) {
				return line
			}
		case <-timer.C:
			tb.Fatalf("no log line %q within %v", msg, waitLimit)
			return ""
		}
	}
}

// specs parses texts, failing the test on an error.
func specs(tb testing.TB, texts ...string) []portspec.Spec {
	tb.Helper()
	s, err := portspec.ParseAll(texts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// testConfig is a config for proxyPath that logs to rec, with short
// restart delays.
func testConfig(proxyPath string, rec *logRecorder) Config {
	return Config{
		ProxyPath:       proxyPath,
		Restart:         true,
		RestartDelay:    10 * time.Millisecond,
		MaxRestartDelay: 50 * time.Millisecond,
		Logger:          slog.New(rec),
	}
}

// publishLoopback publishes specs with every address meaning loopback,
// and stops the publisher when the test ends.
func publishLoopback(tb testing.TB, cfg Config, texts ...string) (*Publisher, error) {
	tb.Helper()
	p := newPublisher(cfg)
	p.everyAddr = [2]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	got, err := p.publish(context.Background(), specs(tb, texts...))
	if got != nil {
		tb.Cleanup(func() { _ = got.Stop() })
	}
	return got, err
}

// needIPv6 skips the test on a host without IPv6.
func needIPv6(tb testing.TB) {
	tb.Helper()
	if !hostHasIPv6() {
		tb.Skip("this host has no IPv6")
	}
}

// portFree tells whether addr can be bound again for proto.
func portFree(proto string, addr netip.AddrPort) bool {
	switch proto {
	case "udp":
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err == nil {
			c.Close()
		}
		return err == nil
	default:
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err == nil {
			l.Close()
		}
		return err == nil
	}
}

// consecutivePorts finds n consecutive ports that are free for TCP on
// 127.0.0.1, below the kernel's ephemeral range.
func consecutivePorts(tb testing.TB, n int) uint16 {
	tb.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	for base := 20000 + os.Getpid()%5000; base < 32000; base += n {
		free := true
		for i := range n {
			free = free && portFree("tcp", netip.AddrPortFrom(lo, uint16(base+i)))
		}
		if free {
			return uint16(base)
		}
	}
	tb.Fatalf("no %d consecutive free ports", n)
	return 0
}

// openFDs counts this process's open descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(entries)
}
