//go:build linux

package main

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// tcpServer is a backend that runs handle on each connection.
type tcpServer struct {
	ln *net.TCPListener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// serveTCP starts a TCP backend on addr (port 0 picks one) and stops it,
// closing its connections, when the test ends.
func serveTCP(tb testing.TB, addr netip.AddrPort, handle func(*net.TCPConn)) *tcpServer {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		tb.Fatalf("listen %v: %v", addr, err)
	}
	s := &tcpServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept(handle)
	tb.Cleanup(s.close)
	return s
}

func (s *tcpServer) addr() netip.AddrPort { return s.ln.Addr().(*net.TCPAddr).AddrPort() }

func (s *tcpServer) accept(handle func(*net.TCPConn)) {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.SetDeadline(time.Now().Add(2 * waitLimit))
			handle(c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo sends back what it reads, then closes its side at the client's
// end of stream.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// dial connects to addr, with later operations bounded.
func dial(tb testing.TB, addr netip.AddrPort) *net.TCPConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), waitLimit)
	if err != nil {
		tb.Fatalf("dial %v: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return c.(*net.TCPConn)
}

// ping writes msg on c and reads it back.
func ping(c net.Conn, msg string) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// udpEcho is a UDP backend that answers each datagram with itself and
// counts sources.
type udpEcho struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	sources map[netip.AddrPort]int
}

func serveUDP(tb testing.TB, addr netip.AddrPort) *udpEcho {
	tb.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		tb.Fatalf("listen udp %v: %v", addr, err)
	}
	conn.SetReadBuffer(4 << 20)
	e := &udpEcho{conn: conn, done: make(chan struct{}), sources: make(map[netip.AddrPort]int)}
	go e.serve()
	tb.Cleanup(e.close)
	return e
}

func (e *udpEcho) addr() netip.AddrPort { return e.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (e *udpEcho) serve() {
	defer close(e.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.sources[from]++
		e.mu.Unlock()
		e.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

func (e *udpEcho) close() {
	e.conn.Close()
	<-e.done
}

// udpClient is a client socket on local, closed when the test ends.
func udpClient(tb testing.TB, local netip.Addr) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg to addr and returns the answer and its source.
func exchange(c *net.UDPConn, addr netip.AddrPort, msg []byte, wait time.Duration,
) ([]byte, netip.AddrPort, error) {
	if _, err := c.WriteToUDPAddrPort(msg, addr); err != nil {
		return nil, netip.AddrPort{}, err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return buf[:n], from, err
}
