//go:build linux

package forward

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpBackend is a UDP server on loopback that answers each datagram with
// reply(datagram) and records who sent what.
type udpBackend struct {
	conn *net.UDPConn
	addr netip.AddrPort

	mu      sync.Mutex
	sources map[netip.AddrPort]int // datagrams per source
}

// startUDPBackend starts a backend of family fam; a nil reply makes it
// silent.
func startUDPBackend(tb testing.TB, fam string, reply func([]byte) []byte) *udpBackend {
	tb.Helper()
	return startUDPBackendOn(tb, netip.AddrPortFrom(loopback(fam), 0), reply)
}

func startUDPBackendOn(tb testing.TB, addr netip.AddrPort, reply func([]byte) []byte) *udpBackend {
	tb.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		tb.Fatalf("listen udp %v: %v", addr, err)
	}
	b := &udpBackend{
		conn:    conn,
		addr:    conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		sources: make(map[netip.AddrPort]int),
	}
	done := make(chan struct{})
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, udpBufSize)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b.mu.Lock()
			b.sources[from]++
			b.mu.Unlock()
			if reply != nil {
				conn.WriteToUDPAddrPort(reply(buf[:n]), from)
			}
		}
	}()
	return b
}

func (b *udpBackend) sourceCount() map[netip.AddrPort]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[netip.AddrPort]int, len(b.sources))
	for k, v := range b.sources {
		m[k] = v
	}
	return m
}

func echo(p []byte) []byte { return p }

// udpClient is a client socket bound to a loopback address of family fam.
func udpClient(tb testing.TB, local netip.Addr) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		tb.Fatalf("listen udp: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg to addr and returns the reply and where it came from.
func exchange(tb testing.TB, c *net.UDPConn, addr netip.AddrPort, msg []byte) ([]byte, netip.AddrPort) {
	tb.Helper()
	if _, err := c.WriteToUDPAddrPort(msg, addr); err != nil {
		tb.Fatalf("send to %v: %v", addr, err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, udpBufSize)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		tb.Fatalf("receive from %v: %v", addr, err)
	}
	return buf[:n], from
}

func TestUDPFamilies(t *testing.T) {
	tests := []struct {
		name        string
		front, back string
		dual        bool // a dual-stack [::] socket handed over, reached over IPv4
	}{
		{name: "v4 to v4", front: "4", back: "4"},
		{name: "v6 to v6", front: "6", back: "6"},
		{name: "v6 to v4", front: "6", back: "4"},
		{name: "v4 to v6", front: "4", back: "6"},
		{name: "dual-stack reached over v4", front: "6", back: "4", dual: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startUDPBackend(t, tt.back, echo)
			cfg := Config{Proto: "udp", Frontend: ep(frontend(tt.front)), Backend: ep(b.addr)}
			if tt.dual {
				front := netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
				cfg.Frontend = ep(front)
				cfg.Listener = listenerFile(t, unix.SOCK_DGRAM, front, false)
			}
			f, _ := serve(t, cfg)

			dst, clientFam := addrOf(f), tt.front
			if tt.dual {
				dst, clientFam = netip.AddrPortFrom(loopback("4"), dst.Port()), "4"
			}
			c := udpClient(t, loopback(clientFam))
			msg := []byte("hello " + tt.name)
			got, from := exchange(t, c, dst, msg)
			if !bytes.Equal(got, msg) {
				t.Errorf("reply = %q; want %q", got, msg)
			}
			if from.Addr().Unmap() != dst.Addr().Unmap() || from.Port() != dst.Port() {
				t.Errorf("reply from %v; want %v", from, dst)
			}
		})
	}
}

// TestUDPReplySource checks that replies leave from the address the
// client sent to, on a socket bound to every address.
func TestUDPReplySource(t *testing.T) {
	tests := []struct {
		name      string
		handOver  bool
		wildcard  netip.Addr
		v6only    bool
		clientDst netip.Addr
	}{
		{name: "bound by the proxy", wildcard: netip.IPv4Unspecified(),
			clientDst: netip.MustParseAddr("127.0.0.2")},
		{name: "handed over", handOver: true, wildcard: netip.IPv4Unspecified(),
			clientDst: netip.MustParseAddr("127.0.0.2")},
		{name: "handed over dual-stack", handOver: true, wildcard: netip.IPv6Unspecified(),
			clientDst: netip.MustParseAddr("127.0.0.2")},
		{name: "handed over v6", handOver: true, wildcard: netip.IPv6Unspecified(),
			v6only: true, clientDst: netip.IPv6Loopback()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startUDPBackend(t, "4", echo)
			front := netip.AddrPortFrom(tt.wildcard, 0)
			cfg := Config{Proto: "udp", Frontend: ep(front), Backend: ep(b.addr)}
			if tt.handOver {
				cfg.Listener = listenerFile(t, unix.SOCK_DGRAM, front, tt.v6only)
			}
			f, _ := serve(t, cfg)

			dst := netip.AddrPortFrom(tt.clientDst, addrOf(f).Port())
			local := netip.AddrFrom4([4]byte{127, 0, 0, 1})
			if tt.clientDst.Is6() {
				local = netip.IPv6Loopback()
			}
			c := udpClient(t, local)
			for i := range 3 {
				_, from := exchange(t, c, dst, []byte{byte(i)})
				if from.Addr().Unmap() != dst.Addr() || from.Port() != dst.Port() {
					t.Fatalf("reply %d from %v; want %v", i, from, dst)
				}
			}
		})
	}
}

// TestUDPFlows checks that each client gets one backend flow, with one
// source port for its whole life, also when the backend never answers.
func TestUDPFlows(t *testing.T) {
	b := startUDPBackend(t, "4", nil) // never answers
	const idle = 300 * time.Millisecond
	f, _ := serve(t, Config{Proto: "udp", Frontend: ep(frontend("4")), Backend: ep(b.addr),
		UDPIdleTimeout: idle})

	c1, c2 := udpClient(t, loopback("4")), udpClient(t, loopback("4"))
	// Keep sending for three idle timeouts, never idle for long.
	deadline := time.Now().Add(3 * idle)
	sent := 0
	for time.Now().Before(deadline) {
		c1.WriteToUDPAddrPort([]byte("a"), addrOf(f))
		c2.WriteToUDPAddrPort([]byte("b"), addrOf(f))
		sent++
		time.Sleep(idle / 10) // the pace of the clients
	}
	eventually(t, "every datagram at the backend", func() bool {
		total := 0
		for _, n := range b.sourceCount() {
			total += n
		}
		return total == 2*sent
	})
	if got := len(b.sourceCount()); got != 2 {
		t.Errorf("backend saw %d sources: %v; want 2, one per client", got, b.sourceCount())
	}
}

// TestUDPIdleExpiry checks that a flow idle past its timeout is closed,
// and that the client then gets a new one.
func TestUDPIdleExpiry(t *testing.T) {
	b := startUDPBackend(t, "4", echo)
	const idle = 100 * time.Millisecond
	f, _ := serve(t, Config{Proto: "udp", Frontend: ep(frontend("4")), Backend: ep(b.addr),
		UDPIdleTimeout: idle})
	u := f.(*udpForwarder)

	c := udpClient(t, loopback("4"))
	exchange(t, c, addrOf(f), []byte("one"))
	eventually(t, "the flow to expire", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.flows) == 0
	})
	exchange(t, c, addrOf(f), []byte("two"))
	if got := len(b.sourceCount()); got != 2 {
		t.Errorf("backend saw %d sources; want 2, one per flow", got)
	}
}

// TestUDPTableFull checks the policy for a flood of new clients: once the
// table is full they are dropped and counted, and the flows already there
// keep working.
func TestUDPTableFull(t *testing.T) {
	b := startUDPBackend(t, "4", echo)
	const max = 4
	f, logs := serve(t, Config{Proto: "udp", Frontend: ep(frontend("4")), Backend: ep(b.addr),
		UDPMaxFlows: max})
	u := f.(*udpForwarder)

	var old []*net.UDPConn
	for range max {
		c := udpClient(t, loopback("4"))
		exchange(t, c, addrOf(f), []byte("in"))
		old = append(old, c)
	}

	const flood = 20
	for range flood {
		udpClient(t, loopback("4")).WriteToUDPAddrPort([]byte("new"), addrOf(f))
	}
	eventually(t, "the flood to be dropped", func() bool { return u.dropped.Load() == flood })

	for i, c := range old {
		msg := []byte(fmt.Sprint("still here ", i))
		if got, _ := exchange(t, c, addrOf(f), msg); !bytes.Equal(got, msg) {
			t.Errorf("old flow %d: reply %q; want %q", i, got, msg)
		}
	}
	eventually(t, "a log line", func() bool { return strings.Contains(logs.String(), "flow table full") })
	if n := strings.Count(logs.String(), "flow table full"); n > 2 {
		t.Errorf("%d log lines for one flood; want them rate-limited:\n%s", n, logs)
	}
}

// TestUDPLargeDatagrams checks that the largest datagrams pass whole both
// ways, and that one too large for the backend's family is dropped and
// counted rather than cut.
func TestUDPLargeDatagrams(t *testing.T) {
	tests := []struct {
		name        string
		front, back string
		size        int
		dropped     bool
	}{
		{name: "v4 max", front: "4", back: "4", size: 65507},
		{name: "v6 max", front: "6", back: "6", size: 65527},
		{name: "v6 max to v4 backend", front: "6", back: "4", size: 65527, dropped: true},
		{name: "60000 bytes v6 to v4", front: "6", back: "4", size: 60000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startUDPBackend(t, tt.back, echo)
			f, _ := serve(t, Config{Proto: "udp", Frontend: ep(frontend(tt.front)), Backend: ep(b.addr)})
			u := f.(*udpForwarder)

			msg := bytes.Repeat([]byte{0xa5}, tt.size)
			msg[tt.size-1] = 0x5a
			c := udpClient(t, loopback(tt.front))
			if tt.dropped {
				c.WriteToUDPAddrPort(msg, addrOf(f))
				eventually(t, "the drop to be counted", func() bool { return u.dropped.Load() == 1 })
				return
			}
			got, _ := exchange(t, c, addrOf(f), msg)
			if !bytes.Equal(got, msg) {
				t.Errorf("reply of %d bytes; want the %d sent, intact", len(got), len(msg))
			}
		})
	}
}

// TestUDPBackendComesBack checks that the first datagram after the
// backend comes back is delivered, although the datagrams before it were
// refused with ICMP port unreachable.
func TestUDPBackendComesBack(t *testing.T) {
	b := startUDPBackend(t, "4", echo)
	addr := b.addr
	b.conn.Close() // down, until started again on the same port

	f, _ := serve(t, Config{Proto: "udp", Frontend: ep(frontend("4")), Backend: ep(addr)})
	c := udpClient(t, loopback("4"))
	for range 3 {
		c.WriteToUDPAddrPort([]byte("anyone?"), addrOf(f))
	}
	u := f.(*udpForwarder)
	eventually(t, "the flow", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.flows) == 1
	})
	time.Sleep(50 * time.Millisecond) // let the refusals come back; no signal for that

	startUDPBackendOn(t, addr, echo)
	if got, _ := exchange(t, c, addrOf(f), []byte("back")); string(got) != "back" {
		t.Errorf("reply = %q; want back", got)
	}
}
