//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes and bounds of the TCP clients and backends.
const (
	bulkChunk    = 1 << 20 // bytes per write and read in bulk transfers
	shortWorkers = 4       // concurrent clients opening short connections
	shortMessage = 32      // bytes each short connection sends and gets back
	ioTimeout    = 5 * time.Second
	drainTimeout = 10 * time.Second // after the send window, for the tail
)

// sendBuf is what bulk clients send; it is only ever read.
var sendBuf = make([]byte, bulkChunk)

// tcpServer is a backend on loopback that serves each connection with
// handle until closed.
type tcpServer struct {
	ln     *net.TCPListener
	handle func(*net.TCPConn)
	mu     sync.Mutex
	conns  map[*net.TCPConn]struct{}
	wg     sync.WaitGroup
}

func serveTCP(handle func(*net.TCPConn)) (*tcpServer, error) {
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		return nil, fmt.Errorf("starting a TCP backend: %w", err)
	}
	s := &tcpServer{ln: ln, handle: handle, conns: make(map[*net.TCPConn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *tcpServer) addr() netip.AddrPort {
	return s.ln.Addr().(*net.TCPAddr).AddrPort()
}

func (s *tcpServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *tcpServer) serve(c *net.TCPConn) {
	defer s.wg.Done()
	s.handle(c)
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// close stops accepting, closes every connection and waits for handlers.
func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo sends back what it reads until EOF.
func echo(c *net.TCPConn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sinkTo returns a handler that reads to EOF and reports how many bytes
// came. Connections that carried nothing are not reported.
func sinkTo(done chan<- int64) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		buf := make([]byte, bulkChunk)
		var total int64
		for {
			n, err := c.Read(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		if total > 0 {
			select {
			case done <- total:
			default:
			}
		}
	}
}

// bulk measures the throughput of streams parallel uploads through p,
// from the first dial to the backend's last EOF, in Gbit/s.
func bulk(streams int) measure {
	return func(ctx context.Context, e *env, p *peer) (sample, error) {
		done := make(chan int64, streams)
		srv, err := serveTCP(sinkTo(done))
		if err != nil {
			return nil, err
		}
		defer srv.close()
		in, err := p.start("tcp", srv.addr())
		if err != nil {
			return nil, err
		}
		defer in.close()

		t0 := time.Now()
		until := t0.Add(e.cfg.bulkFor)
		sent := make(chan error, streams)
		for range streams {
			go func() { sent <- upload(in.addr, until) }()
		}
		total, err := collect(done, sent, streams, until.Add(drainTimeout))
		if err != nil {
			return nil, err
		}
		secs := time.Since(t0).Seconds()
		return sample{"gbps": float64(total) * 8 / secs / 1e9}, nil
	}
}

// upload writes to addr until the time is up, then closes.
func upload(addr netip.AddrPort, until time.Time) error {
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(until.Add(ioTimeout))
	for time.Now().Before(until) {
		if _, err := c.Write(sendBuf); err != nil {
			return err
		}
	}
	return nil
}

// collect sums what the backend received over n streams, failing on the
// first client error or when the deadline passes.
func collect(done <-chan int64, sent <-chan error, n int, deadline time.Time) (int64, error) {
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	var total int64
	for got, clients := 0, 0; got < n || clients < n; {
		select {
		case b := <-done:
			total += b
			got++
		case err := <-sent:
			if err != nil {
				return 0, fmt.Errorf("sending: %w", err)
			}
			clients++
		case <-timeout.C:
			return 0, fmt.Errorf("%d of %d streams reached the backend in time", got, n)
		}
	}
	return total, nil
}

// shortConns counts connections per second that each send a short message
// through p, read the backend's echo of it and close.
func shortConns(ctx context.Context, e *env, p *peer) (sample, error) {
	srv, err := serveTCP(echo)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	in, err := p.start("tcp", srv.addr())
	if err != nil {
		return nil, err
	}
	defer in.close()

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	until := t0.Add(e.cfg.shortFor)
	var wg sync.WaitGroup
	for range shortWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, shortMessage)
			for time.Now().Before(until) && ctx.Err() == nil {
				if err := exchange(in.addr, msg); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	if err, _ := firstErr.Load().(error); err != nil && failed.Load()*100 > ok.Load() {
		return nil, fmt.Errorf("%d of %d connections failed: %w",
			failed.Load(), failed.Load()+ok.Load(), err)
	}
	return sample{"per_s": float64(ok.Load()) / secs, "failed": float64(failed.Load())}, nil
}

// exchange opens one connection, sends msg, reads it back and closes.
func exchange(addr netip.AddrPort, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err = io.ReadFull(c, msg)
	return err
}

// idleConns opens cfg.idleConns connections through p, each carrying one
// byte each way so that the backend side exists, lets them settle, and
// divides the growth of the proxy's fds and PSS by their number.
func idleConns(ctx context.Context, e *env, p *peer) (sample, error) {
	srv, err := serveTCP(echo)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	in, err := p.start("tcp", srv.addr())
	if err != nil {
		return nil, err
	}
	defer in.close()
	pid, err := in.pid()
	if err != nil {
		return nil, err
	}

	if err := sleep(ctx, e.cfg.settle); err != nil {
		return nil, err
	}
	before, err := footprintOf(pid)
	if err != nil {
		return nil, err
	}
	conns, err := openIdle(ctx, in.addr, e.cfg.idleConns)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, e.cfg.settle); err != nil {
		return nil, err
	}
	after, err := footprintOf(pid)
	if err != nil {
		return nil, err
	}

	n := float64(len(conns))
	return sample{
		"fds_per_conn":     float64(after.fds-before.fds) / n,
		"pss_kib_per_conn": float64(after.pss-before.pss) / kib / n,
	}, nil
}

// openIdle opens n connections to addr and makes one round trip on each.
func openIdle(ctx context.Context, addr netip.AddrPort, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	b := []byte{'x'}
	for range n {
		if err := ctx.Err(); err != nil {
			return conns, err
		}
		c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
		if err != nil {
			return conns, fmt.Errorf("connection %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(b); err != nil {
			return conns, fmt.Errorf("connection %d: %w", len(conns), err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return conns, fmt.Errorf("connection %d: %w", len(conns), err)
		}
		c.SetDeadline(time.Time{})
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
