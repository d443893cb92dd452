//go:build linux

package forward

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// States of a tcpConn.
const (
	connConnecting  int32 = iota // waiting for the backend
	connEstablished              // forwarding
	connFailed                   // never got the backend
)

const errConnectTimeout = textError("connect timed out")

// tcpConn is one client connection and its backend connection. It has no
// goroutine of its own: its pumps run when their sockets have work, and
// park as continuations in the poller otherwise.
type tcpConn struct {
	f               *tcpForwarder
	client, backend sock
	up, down        pump         // client to backend, backend to client
	live            atomic.Int32 // pumps not finished
	state           atomic.Int32
	timer           *time.Timer // the connect timeout, while connecting

	mu     sync.Mutex // orders shut against the closing of the sockets
	closed bool
}

// inlineFills is how many reads a pump makes on the poller's goroutine,
// where a ready socket wakes it, before it goes on on a goroutine of its
// own. Two reads carry a request and find the socket empty; a direction
// with more to move leaves the poller free for the other connections.
const inlineFills = 2

// pump moves one direction of a connection, from src to dst.
type pump struct {
	c        *tcpConn
	src, dst *sock
	car      carrier // held only while data moves
	resume   func()  // continues on the poller's goroutine when a socket is ready
	goOn     func()  // continues on a goroutine of its own
}

// start forwards the accepted client cfd through the backend socket bfd.
func (f *tcpForwarder) start(cfd, bfd int) {
	c := &tcpConn{f: f}
	c.client.fd, c.backend.fd = cfd, bfd
	c.up = pump{c: c, src: &c.client, dst: &c.backend, resume: c.resumeUp, goOn: c.runUp}
	c.down = pump{c: c, src: &c.backend, dst: &c.client, resume: c.resumeDown,
		goOn: c.runDown}
	c.live.Store(2)

	if !c.dial() {
		return
	}
	if !f.track(c) {
		c.shut()
	}
}

// runUp and runDown run the two directions on goroutines of their own,
// named so that a goroutine dump tells them apart; resumeUp and resumeDown
// run them on the poller's goroutine, for a little while.
func (c *tcpConn) runUp()      { c.up.run(0) }
func (c *tcpConn) runDown()    { c.down.run(0) }
func (c *tcpConn) resumeUp()   { c.up.run(inlineFills) }
func (c *tcpConn) resumeDown() { c.down.run(inlineFills) }

// dial starts connecting to the backend. A backend on the same host has
// usually accepted by the time connect returns, and then the connection
// is set up at once; otherwise the poller calls connected when the outcome
// is known, unless the connect timeout fires first. It reports false if
// the connection is already over.
func (c *tcpConn) dial() bool {
	err := unix.Connect(c.backend.fd, c.f.bsa)
	if err == unix.EINPROGRESS && writable(c.backend.fd) {
		err = nil
	}
	switch {
	case err == nil:
		c.state.Store(connEstablished)
		return c.establish(false)
	case err != unix.EINPROGRESS:
		c.state.Store(connFailed)
		c.dialFailed(err)
		return false
	}

	c.backend.wait[dirWrite] = c.connected
	c.timer = time.AfterFunc(c.f.timeout, c.timedOut)
	if err := c.backend.register(&c.f.poller); err != nil {
		if c.state.CompareAndSwap(connConnecting, connFailed) {
			c.timer.Stop()
			c.dialFailed(err)
		}
		return false
	}
	return true
}

// writable reports whether fd is writable, or failed, right now.
func writable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0
}

// connected runs when the backend socket is writable or failed.
func (c *tcpConn) connected() {
	if !c.state.CompareAndSwap(connConnecting, connEstablished) {
		return
	}
	c.timer.Stop()
	c.timer = nil
	c.establish(true)
}

// establish starts the pumps once the backend's connect has an outcome:
// the client's bytes move at once, in case the client spoke first, and
// the backend's when it speaks. It reports false if the connection is
// over.
func (c *tcpConn) establish(backendRegistered bool) bool {
	if err := soError(c.backend.fd); err != nil {
		c.dialFailed(err)
		return false
	}

	if backendRegistered {
		c.backend.park(dirRead, c.resumeDown)
	} else {
		c.backend.wait[dirRead] = c.resumeDown
		if err := c.backend.register(&c.f.poller); err != nil {
			c.f.log.log(evConn, "forward client: "+err.Error())
			c.close()
			return false
		}
	}
	if err := c.client.register(&c.f.poller); err != nil {
		c.f.log.log(evConn, "forward client: "+err.Error())
		c.shutBoth()
		c.pumpDone() // the client's pump, which never ran
		return false
	}
	c.resumeUp()
	return true
}

func (c *tcpConn) timedOut() {
	if c.state.CompareAndSwap(connConnecting, connFailed) {
		c.dialFailed(errConnectTimeout)
	}
}

// dialFailed closes the client whose backend could not be reached.
func (c *tcpConn) dialFailed(err error) {
	c.f.log.log(evDial, "connect to backend "+c.f.backend.String()+": "+err.Error()+
		"; closing the client")
	c.close()
}

// shut ends the connection from outside, on Close: a connection still
// connecting is closed at once; an established one has its sockets shut
// down, which wakes its pumps, and they finish it.
func (c *tcpConn) shut() {
	if c.state.CompareAndSwap(connConnecting, connFailed) {
		c.timer.Stop()
		c.close()
		return
	}

	c.mu.Lock()
	if !c.closed {
		c.shutBoth()
	}
	c.mu.Unlock()
}

// shutBoth shuts both sockets down, which wakes whatever waits on them.
func (c *tcpConn) shutBoth() {
	unix.Shutdown(c.client.fd, unix.SHUT_RDWR)
	unix.Shutdown(c.backend.fd, unix.SHUT_RDWR)
}

// close closes both sockets. Only the last pump, or a connection that
// never got its pumps going, calls it.
func (c *tcpConn) close() {
	c.mu.Lock()
	c.closed = true
	c.f.poller.forget(c.client.fd)
	c.f.poller.forget(c.backend.fd)
	unix.Close(c.client.fd)
	unix.Close(c.backend.fd)
	c.mu.Unlock()

	c.f.untrack(c)
}

// pumpDone closes the connection once both pumps are done.
func (c *tcpConn) pumpDone() {
	if c.live.Add(-1) == 0 {
		c.close()
	}
}

// abort ends the connection after p failed with err: both sockets are shut
// down, which wakes the other pump. A reset from one peer is passed on to
// the other as a reset.
func (c *tcpConn) abort(p *pump, err error) {
	switch {
	case errors.Is(err, unix.ECONNRESET):
		linger := unix.Linger{Onoff: 1, Linger: 0}
		_ = unix.SetsockoptLinger(p.dst.fd, unix.SOL_SOCKET, unix.SO_LINGER, &linger)
	case errors.Is(err, unix.EPIPE):
	default:
		c.f.log.log(evConn, "forward to "+c.f.backend.String()+": "+err.Error())
	}
	c.shutBoth()
}

// run moves bytes from src to dst until src would block, then parks; at
// the end of src it passes the half-close on to dst. After maxFills reads,
// unless maxFills is 0, it goes on on a goroutine of its own.
func (p *pump) run(maxFills int) {
	for fills := 0; ; {
		if p.car != nil && p.car.buffered() > 0 {
			if !p.drain() {
				return
			}
			continue
		}

		if fills == maxFills && maxFills > 0 {
			go p.goOn()
			return
		}
		fills++
		if p.car == nil {
			p.car = newCarrier(&p.c.f.pipes)
		}
		n, err := p.car.fill(p.src.fd)
		switch {
		case err == unix.EAGAIN:
			p.releaseCarrier()
			p.src.park(dirRead, p.resume)
			return
		case err == unix.EINTR:
		case err != nil:
			p.fail(err)
			return
		case n == 0:
			p.eof()
			return
		}
	}
}

// drain writes what the carrier holds. It reports false if the pump
// parked or finished.
func (p *pump) drain() bool {
	_, err := p.car.drain(p.dst.fd)
	switch {
	case err == nil, err == unix.EINTR:
		return true
	case err == unix.EAGAIN:
		p.dst.park(dirWrite, p.resume)
		return false
	default:
		p.fail(err)
		return false
	}
}

func (p *pump) releaseCarrier() {
	if p.car != nil {
		p.car.release()
		p.car = nil
	}
}

// eof passes the end of src on to dst as a half-close.
func (p *pump) eof() {
	p.releaseCarrier()
	unix.Shutdown(p.dst.fd, unix.SHUT_WR)
	p.c.pumpDone()
}

func (p *pump) fail(err error) {
	p.releaseCarrier()
	p.c.abort(p, err)
	p.c.pumpDone()
}
