//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes and bounds of the UDP clients and backend.
const (
	rrWorkers    = 4                      // concurrent request/response clients
	rrTimeout    = 100 * time.Millisecond // a request unanswered by then is lost
	datagramSize = 32
	backendRcv   = 16 << 20 // receive buffer of the echo backend, bytes
	answerWait   = 3 * time.Second
	pacedTick    = 10 * time.Millisecond
)

// udpEcho is a backend on loopback that sends every datagram back to where
// it came from. Its receive buffer is large, so that the backend is never
// what drops a burst.
type udpEcho struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
}

func serveUDP() (*udpEcho, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		return nil, fmt.Errorf("starting a UDP backend: %w", err)
	}
	growReceiveBuffer(conn, backendRcv)
	s := &udpEcho{conn: conn}
	for range 2 {
		s.wg.Add(1)
		go s.serve()
	}
	return s, nil
}

// growReceiveBuffer sets the socket's receive buffer past the system cap
// when the bench may (root), else up to the cap.
func growReceiveBuffer(conn *net.UDPConn, size int) {
	raw, err := conn.SyscallConn()
	if err == nil {
		raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		})
	}
	if err != nil {
		conn.SetReadBuffer(size)
	}
}

func (s *udpEcho) addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (s *udpEcho) serve() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			s.conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}
}

func (s *udpEcho) close() {
	s.conn.Close()
	s.wg.Wait()
}

// udpRR counts answered requests per second from rrWorkers clients that
// each send a datagram and wait for its echo before sending the next. A
// request unanswered after rrTimeout is counted as lost.
func udpRR(ctx context.Context, e *env, p *peer) (sample, error) {
	srv, in, err := startUDP(p)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	defer in.close()

	var ok, lost atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	until := t0.Add(e.cfg.rrFor)
	var wg sync.WaitGroup
	for range rrWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := requests(ctx, in.addr, until, &ok, &lost); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	if lost.Load()*100 > ok.Load() {
		return nil, fmt.Errorf("%d of %d requests lost", lost.Load(), lost.Load()+ok.Load())
	}
	return sample{"per_s": float64(ok.Load()) / secs, "lost": float64(lost.Load())}, nil
}

func startUDP(p *peer) (*udpEcho, *instance, error) {
	srv, err := serveUDP()
	if err != nil {
		return nil, nil, err
	}
	in, err := p.start("udp", srv.addr())
	if err != nil {
		srv.close()
		return nil, nil, err
	}
	return srv, in, nil
}

// requests runs one request/response client until the time is up. Each
// request carries a sequence number, so that a late answer to a lost
// request is not taken for the current one.
func requests(ctx context.Context, addr netip.AddrPort, until time.Time,
	ok, lost *atomic.Int64) error {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	defer c.Close()
	out := make([]byte, datagramSize)
	in := make([]byte, 2048)
	for seq := uint64(1); time.Now().Before(until) && ctx.Err() == nil; seq++ {
		binary.BigEndian.PutUint64(out, seq)
		if _, err := c.Write(out); err != nil && !refused(err) {
			return err
		}
		if awaitSeq(c, in, seq) {
			ok.Add(1)
		} else {
			lost.Add(1)
		}
	}
	return nil
}

// awaitSeq reads until the echo of seq arrives or rrTimeout passes.
func awaitSeq(c *net.UDPConn, buf []byte, seq uint64) bool {
	c.SetReadDeadline(time.Now().Add(rrTimeout))
	for {
		n, err := c.Read(buf)
		if err != nil && !refused(err) {
			return false
		}
		if n >= 8 && binary.BigEndian.Uint64(buf) == seq {
			return true
		}
	}
}

// refused reports an ICMP port unreachable surfacing on a connected
// socket, which a later datagram may still get past.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// flows is a set of UDP clients, each its own flow through a proxy,
// waiting for one answer each.
type flows struct {
	conns    []*net.UDPConn
	answered []atomic.Bool
	count    atomic.Int64
	wg       sync.WaitGroup
}

// openFlows opens n connected sockets to addr and starts reading on each
// until deadline or until the flows are closed.
func openFlows(addr netip.AddrPort, n int, deadline time.Time) (*flows, error) {
	f := &flows{answered: make([]atomic.Bool, n)}
	to := net.UDPAddrFromAddrPort(addr)
	for i := range n {
		c, err := net.DialUDP("udp4", nil, to)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("opening flow %d: %w", i+1, err)
		}
		c.SetReadDeadline(deadline)
		f.conns = append(f.conns, c)
		f.wg.Add(1)
		go f.await(i, c)
	}
	return f, nil
}

func (f *flows) await(i int, c *net.UDPConn) {
	defer f.wg.Done()
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			f.answered[i].Store(true)
			f.count.Add(1)
			return
		}
		if !refused(err) {
			return
		}
	}
}

// send sends one datagram on flow i unless it was answered already.
func (f *flows) send(i int, msg []byte) {
	if !f.answered[i].Load() {
		f.conns[i].Write(msg)
	}
}

// wait returns once every flow was answered or at deadline.
func (f *flows) wait(ctx context.Context, deadline time.Time) {
	for int(f.count.Load()) < len(f.conns) && time.Now().Before(deadline) &&
		ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *flows) pct() float64 {
	return 100 * float64(f.count.Load()) / float64(len(f.answered))
}

func (f *flows) close() {
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// udpBurst sends the first datagram of cfg.burstFlows new flows as fast as
// one client can and reports the share that was answered within
// answerWait. Nothing is sent twice.
func udpBurst(ctx context.Context, e *env, p *peer) (sample, error) {
	srv, in, err := startUDP(p)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	defer in.close()

	deadline := time.Now().Add(answerWait + time.Second)
	f, err := openFlows(in.addr, e.cfg.burstFlows, deadline)
	if err != nil {
		return nil, err
	}
	defer f.close()
	msg := make([]byte, datagramSize)
	for i := range f.conns {
		f.send(i, msg)
	}
	f.wait(ctx, time.Now().Add(answerWait))
	return sample{"answered_pct": f.pct()}, nil
}

// udpPaced opens cfg.pacedFlows flows at cfg.pacedRate a second, sends once
// more on any flow left unanswered, and then measures the proxy holding
// them all: its PSS and its fds.
func udpPaced(ctx context.Context, e *env, p *peer) (sample, error) {
	srv, in, err := startUDP(p)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	defer in.close()
	pid, err := in.pid()
	if err != nil {
		return nil, err
	}

	n := e.cfg.pacedFlows
	pace := time.Duration(n) * time.Second / time.Duration(e.cfg.pacedRate)
	deadline := time.Now().Add(pace + 2*answerWait + e.cfg.settle + 5*time.Second)
	f, err := openFlows(in.addr, n, deadline)
	if err != nil {
		return nil, err
	}
	defer f.close()

	msg := make([]byte, datagramSize)
	if err := paced(ctx, n, e.cfg.pacedRate, func(i int) { f.send(i, msg) }); err != nil {
		return nil, err
	}
	f.wait(ctx, time.Now().Add(answerWait))
	for i := range f.conns {
		f.send(i, msg)
	}
	f.wait(ctx, time.Now().Add(answerWait))
	if err := sleep(ctx, e.cfg.settle); err != nil {
		return nil, err
	}

	fp, err := footprintOf(pid)
	if err != nil {
		return nil, err
	}
	return sample{
		"pss_mib":      float64(fp.pss) / mib,
		"fds":          float64(fp.fds),
		"answered_pct": f.pct(),
	}, nil
}

// paced calls send for 0..n-1 at rate calls a second, in ticks.
func paced(ctx context.Context, n, rate int, send func(int)) error {
	t0 := time.Now()
	tick := time.NewTicker(pacedTick)
	defer tick.Stop()
	for next := 0; next < n; {
		due := min(n, int(time.Since(t0).Seconds()*float64(rate))+1)
		for ; next < due; next++ {
			send(next)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
