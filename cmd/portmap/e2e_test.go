//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// udpTries is how often a UDP echo is sent before the test gives up; a
// datagram may be lost.
const udpTries = 5

func TestPublishEndToEnd(t *testing.T) {
	tcpBackend, udpBackend := echoBackends(t)
	rangeBackend := echoRange(t, 3)
	rangeHost := freeRange(t, 3)
	lo := netip.MustParseAddr("127.0.0.1")

	args := []string{"-log-format", "json",
		"-p", "127.0.0.1:0:" + tcpBackend.String(),
		"-p", "127.0.0.1::" + udpBackend.String() + "/udp",
		"-p", fmt.Sprintf("127.0.0.1:%d-%d:127.0.0.1:%d-%d",
			rangeHost, rangeHost+2, rangeBackend, rangeBackend+2),
	}
	want := []printed{
		{"tcp", netip.AddrPortFrom(lo, 0), tcpBackend},
		{"udp", netip.AddrPortFrom(lo, 0), udpBackend},
		{"tcp", netip.AddrPortFrom(lo, rangeHost), netip.AddrPortFrom(lo, rangeBackend)},
		{"tcp", netip.AddrPortFrom(lo, rangeHost+1), netip.AddrPortFrom(lo, rangeBackend+1)},
		{"tcp", netip.AddrPortFrom(lo, rangeHost+2), netip.AddrPortFrom(lo, rangeBackend+2)},
	}
	if hasIPv6() {
		args = append(args, "-p", "[::1]:0:"+tcpBackend.String())
		want = append(want, printed{"tcp", netip.AddrPortFrom(netip.IPv6Loopback(), 0),
			tcpBackend})
	}

	run := startPortmap(t, args...)
	got := run.bindings(len(want))
	checkPrinted(t, got, want)
	proxies := childrenOf(run.cmd.Process.Pid)
	if len(proxies) != len(want) {
		t.Errorf("portmap has %d children; want one proxy per binding, %d", len(proxies),
			len(want))
	}

	for _, b := range got {
		roundTrip(t, b, "through "+b.host.String())
	}
	published := publishedSockets(t, got)

	if code := run.interrupt(); code != 0 {
		t.Fatalf("portmap exited %d after SIGINT; want 0; stderr:\n%s", code, run.stderr)
	}
	checkEvents(t, run.stderr.String(), len(want))
	checkNothingLeft(t, got, published)
}

// checkPrinted compares the printed bindings with want, where a host
// port of 0 stands for any port but 0.
func checkPrinted(t *testing.T, got, want []printed) {
	t.Helper()
	for i, w := range want {
		g := got[i]
		if w.host.Port() == 0 && g.host.Port() != 0 {
			w.host = netip.AddrPortFrom(w.host.Addr(), g.host.Port())
		}
		if g != w {
			t.Errorf("binding %d printed as %v; want %v", i, g, w)
		}
	}
}

// checkEvents checks that the JSON logs tell of every proxy's start and
// stop.
func checkEvents(t *testing.T, logs string, n int) {
	t.Helper()
	counts := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec struct{ Msg string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		counts[rec.Msg]++
	}
	if counts["proxy started"] != n || counts["proxy stopped"] != n || counts["stopped"] != 1 {
		t.Errorf("log events %v; want %d proxies started and stopped, then stopped",
			counts, n)
	}
}

// publishedSockets returns the sockets that serve bindings, by inode,
// checking that each binding has one.
func publishedSockets(t *testing.T, bindings []printed) map[string]printed {
	t.Helper()
	inodes := map[string]printed{}
	for _, b := range bindings {
		found := false
		for _, s := range socketsOn(t, b.proto, b.host.Port()) {
			inodes[s.inode] = b
			found = true
		}
		if !found {
			t.Errorf("no socket found in /proc/net for %s %s", b.proto, b.host)
		}
	}
	return inodes
}

// checkNothingLeft checks that no proxy runs and that the sockets that
// served bindings are closed. Their ports may already serve others.
func checkNothingLeft(t *testing.T, bindings []printed, published map[string]printed) {
	t.Helper()
	if pids := processesOf(proxyBin); len(pids) > 0 {
		t.Errorf("proxies still running: %v", pids)
	}
	for _, b := range bindings {
		for _, s := range socketsOn(t, b.proto, b.host.Port()) {
			if p, ok := published[s.inode]; ok {
				t.Errorf("the socket of %s %s is still open after portmap exited: %+v",
					p.proto, p.host, s)
			}
		}
	}
}

// roundTrip sends msg through b and checks that the echo comes back.
func roundTrip(tb testing.TB, b printed, msg string) {
	tb.Helper()
	var got string
	var err error
	if b.proto == "udp" {
		got, err = udpRoundTrip(b.host, msg)
	} else {
		got, err = tcpRoundTrip(b.host, msg)
	}
	if err != nil || got != msg {
		tb.Errorf("echo through %s %s: got %q, %v; want %q", b.proto, b.host, got, err, msg)
	}
}

func tcpRoundTrip(addr netip.AddrPort, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr.String(), waitLimit)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))

	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	got, err := io.ReadAll(c)
	return string(got), err
}

func udpRoundTrip(addr netip.AddrPort, msg string) (string, error) {
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()

	buf := make([]byte, 2048)
	for range udpTries {
		if _, err := io.WriteString(c, msg); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(waitLimit / udpTries))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return string(buf[:n]), err
	}
	return "", fmt.Errorf("no echo after %d datagrams", udpTries)
}

func TestRestartKeepsThePort(t *testing.T) {
	tcpBackend, udpBackend := echoBackends(t)
	run := startPortmap(t,
		"-p", "127.0.0.1:0:"+tcpBackend.String(),
		"-p", "127.0.0.1:0:"+udpBackend.String()+"/udp")
	bindings := run.bindings(2)
	before := childrenOf(run.cmd.Process.Pid)
	if len(before) != 2 {
		t.Fatalf("portmap has children %v; want 2 proxies", before)
	}

	for _, pid := range before {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	run.stderr.waitFor(t, `msg="proxy restarted"`, 2)
	after := childrenOf(run.cmd.Process.Pid)
	if len(after) != 2 || slices.ContainsFunc(after, func(p int) bool {
		return slices.Contains(before, p)
	}) {
		t.Errorf("proxies %v after restart; want 2 new ones, not %v", after, before)
	}
	for _, b := range bindings {
		roundTrip(t, b, "after the restart")
	}
	published := publishedSockets(t, bindings)

	if code := run.interrupt(); code != 0 {
		t.Fatalf("portmap exited %d after SIGINT; want 0; stderr:\n%s", code, run.stderr)
	}
	checkNothingLeft(t, bindings, published)
}
