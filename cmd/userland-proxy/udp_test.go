//go:build linux

package main

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var lo4b = netip.MustParseAddr("127.0.0.2")

// TestUDPReplySource checks that replies leave from the address the
// client sent to, 127.0.0.2 here, on a socket bound to every address.
func TestUDPReplySource(t *testing.T) {
	backend := serveUDP(t, netip.AddrPortFrom(lo4, 0))
	for _, listenFD := range []bool{false, true} {
		t.Run("listen fd "+strconv.FormatBool(listenFD), func(t *testing.T) {
			var host netip.AddrPort
			if listenFD {
				f, addr := socketFile(t, unix.SOCK_DGRAM, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), true)
				host = addr
				mustRun(t, args("udp", host, backend.addr(), "-use-listen-fd"), f)
			} else {
				host = freePort(t, "udp", netip.IPv4Unspecified())
				mustRun(t, args("udp", host, backend.addr()), nil)
			}

			dst := netip.AddrPortFrom(lo4b, host.Port())
			c := udpClient(t, lo4)
			got, from, err := exchange(c, dst, []byte("where from?"), waitLimit)
			if err != nil || string(got) != "where from?" {
				t.Fatalf("reply %q, %v", got, err)
			}
			if from != dst {
				t.Errorf("reply from %v; want %v", from, dst)
			}
		})
	}
}

// TestUDPFlows checks that 2,000 clients are all answered, each through a
// flow of its own.
func TestUDPFlows(t *testing.T) {
	backend := serveUDP(t, netip.AddrPortFrom(lo4, 0))
	host := freePort(t, "udp", lo4)
	mustRun(t, args("udp", host, backend.addr()), nil)

	const flows = 2000
	var answered atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // clients in flight at once
	for i := range flows {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := udpClient(t, lo4)
			msg := []byte("flow " + strconv.Itoa(i))
			for range 3 { // UDP: a lost datagram is sent again
				got, _, err := exchange(c, host, msg, time.Second)
				if err == nil && bytes.Equal(got, msg) {
					answered.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := answered.Load(); n != flows {
		t.Errorf("%d of %d flows answered", n, flows)
	}
	backend.mu.Lock()
	sources := len(backend.sources)
	backend.mu.Unlock()
	if sources != flows {
		t.Errorf("backend saw %d sources; want %d, one per flow", sources, flows)
	}
}

// TestUDPLargeDatagrams sends 60,000 bytes both ways, and the largest
// datagram of each family.
func TestUDPLargeDatagrams(t *testing.T) {
	tests := []struct {
		name          string
		host, backend netip.Addr
		size          int
	}{
		{"60000 bytes v4", lo4, lo4, 60000},
		{"65507 bytes v4", lo4, lo4, 65507},
		{"65527 bytes v6", lo6, lo6, 65527},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := serveUDP(t, netip.AddrPortFrom(tt.backend, 0))
			host := freePort(t, "udp", tt.host)
			mustRun(t, args("udp", host, backend.addr()), nil)

			msg := bytes.Repeat([]byte("0123456789"), tt.size/10+1)[:tt.size]
			c := udpClient(t, tt.host)
			got, _, err := exchange(c, host, msg, waitLimit)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("reply of %d bytes, %v; want the %d sent, intact", len(got), err, len(msg))
			}
		})
	}
}

// TestUDPBackendDownThenUp checks that datagrams refused by a backend that
// is down do not keep the first one after it comes back from arriving.
func TestUDPBackendDownThenUp(t *testing.T) {
	backendAddr := freePort(t, "udp", lo4)
	host := freePort(t, "udp", lo4)
	mustRun(t, args("udp", host, backendAddr), nil)

	c := udpClient(t, lo4)
	for range 3 {
		if _, _, err := exchange(c, host, []byte("anyone?"), 100*time.Millisecond); err == nil {
			t.Fatal("an answer from a backend that is down")
		}
	}

	serveUDP(t, backendAddr)
	got, _, err := exchange(c, host, []byte("back"), waitLimit)
	if err != nil || string(got) != "back" {
		t.Errorf("first datagram after the backend came up: %q, %v", got, err)
	}
}

// TestUDPQueuedBeforeStart checks that datagrams queued on the handed-over
// socket before the proxy started are forwarded.
func TestUDPQueuedBeforeStart(t *testing.T) {
	backend := serveUDP(t, netip.AddrPortFrom(lo4, 0))
	f, host := socketFile(t, unix.SOCK_DGRAM, netip.AddrPortFrom(lo4, 0), true)

	c := udpClient(t, lo4)
	for i := range 5 {
		c.WriteToUDPAddrPort([]byte("early "+strconv.Itoa(i)), host)
	}
	mustRun(t, args("udp", host, backend.addr(), "-use-listen-fd"), f)

	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(waitLimit))
	for i := range 5 {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if want := "early " + strconv.Itoa(i); err != nil || string(buf[:n]) != want {
			t.Errorf("reply %d: %q, %v; want %q", i, buf[:n], err, want)
		}
	}
}

// TestUDPBindsAlone checks how the proxy binds a UDP port itself: without
// SO_REUSEADDR, so that no one else can bind it, and for an IPv6 address,
// IPv6 only.
func TestUDPBindsAlone(t *testing.T) {
	backend := netip.MustParseAddrPort("127.0.0.1:9")

	t.Run("no SO_REUSEADDR", func(t *testing.T) {
		host := freePort(t, "udp", lo4)
		mustRun(t, args("udp", host, backend), nil)
		err := bindUDP(unix.AF_INET, &unix.SockaddrInet4{Port: int(host.Port()), Addr: lo4.As4()})
		if !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("second bind with SO_REUSEADDR: %v; want EADDRINUSE", err)
		}
	})
	t.Run("IPv6 only", func(t *testing.T) {
		host := freePort(t, "udp", netip.IPv6Unspecified())
		mustRun(t, args("udp", host, backend), nil)
		err := bindUDP(unix.AF_INET, &unix.SockaddrInet4{Port: int(host.Port())})
		if err != nil {
			t.Errorf("IPv4 bind of the port the proxy holds on [::]: %v; want it free", err)
		}
	})
}

// bindUDP binds a UDP socket with SO_REUSEADDR to sa, and closes it.
func bindUDP(family int, sa unix.Sockaddr) error {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	return unix.Bind(fd, sa)
}

// TestUDPFlowLimit checks the flood policy of a full flow table: new
// clients are dropped, those already served keep working, and the log
// says so in a few lines.
func TestUDPFlowLimit(t *testing.T) {
	backend := serveUDP(t, netip.AddrPortFrom(lo4, 0))
	host := freePort(t, "udp", lo4)
	p := mustRun(t, args("udp", host, backend.addr(), "-udp-max-flows", "10"), nil)
	defer func() {
		if n := strings.Count(p.stderr.String(), "flow table full"); n < 1 || n > 3 {
			t.Errorf("%d log lines about the full table; want 1 to 3:\n%s", n, p.stderr)
		}
	}()

	var old []*net.UDPConn
	for range 10 {
		c := udpClient(t, lo4)
		if _, _, err := exchange(c, host, []byte("in"), waitLimit); err != nil {
			t.Fatal(err)
		}
		old = append(old, c)
	}
	for range 200 {
		udpClient(t, lo4).WriteToUDPAddrPort([]byte("flood"), host)
	}
	for i, c := range old {
		if got, _, err := exchange(c, host, []byte("still"), waitLimit); err != nil || string(got) != "still" {
			t.Errorf("old flow %d during the flood: %q, %v", i, got, err)
		}
	}
	c := udpClient(t, lo4)
	if _, _, err := exchange(c, host, []byte("new"), 200*time.Millisecond); err == nil {
		t.Error("a new client got a flow beyond the limit")
	}
}

// TestUDPIdleTimeout checks that a flow idle past -udp-idle-timeout is
// gone, and that a flow kept busy keeps its backend source port.
func TestUDPIdleTimeout(t *testing.T) {
	backend := serveUDP(t, netip.AddrPortFrom(lo4, 0))
	host := freePort(t, "udp", lo4)
	mustRun(t, args("udp", host, backend.addr(), "-udp-idle-timeout", "200ms"), nil)

	busy, idle := udpClient(t, lo4), udpClient(t, lo4)
	exchange(idle, host, []byte("once"), waitLimit)
	deadline := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, _, err := exchange(busy, host, []byte("busy"), waitLimit); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the client's pace
	}
	exchange(idle, host, []byte("again"), waitLimit)

	backend.mu.Lock()
	defer backend.mu.Unlock()
	if n := len(backend.sources); n != 3 {
		t.Errorf("backend saw %d sources; want 3: one for the busy client, two for the idle one", n)
	}
}
