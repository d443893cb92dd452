//go:build linux

package forward

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pauses of the accept loop after a failure such as running out of
// descriptors: the first, and the longest, reached by doubling. The
// longest also bounds how late the proxy notices that descriptors freed up.
const (
	acceptPauseMin = 5 * time.Millisecond
	acceptPauseMax = 500 * time.Millisecond
)

// closeWait bounds how long Close waits for connections to wind down
// after shutting their sockets.
const closeWait = 500 * time.Millisecond

// tcpForwarder accepts TCP connections and forwards each to the backend.
type tcpForwarder struct {
	log     logger
	ln      *os.File // the listening socket
	lnRaw   syscall.RawConn
	addr    Endpoint
	backend Endpoint
	bsa     unix.Sockaddr // backend, converted once
	timeout time.Duration

	poller poller
	pipes  pipePool

	spare   int // a backend socket made ready before the next accept, or -1
	pause   time.Duration
	failed  int       // accept failures in the current burst
	failing time.Time // start of the current burst

	mu      sync.Mutex
	conns   map[*tcpConn]struct{} // made with the first
	drained sync.Cond             // signalled when conns becomes empty
	closing chan struct{}
	closed  bool
}

// newTCPForwarder serves the listening socket lnFD, which it owns from
// the call on.
func newTCPForwarder(cfg *Config, lnFD int) (*tcpForwarder, error) {
	// Accepted sockets inherit these, which saves syscalls per client.
	// A kernel that does not take them on a Multipath TCP listener
	// leaves clients with its defaults, which still work.
	_ = setKeepAlive(lnFD)
	_ = unix.SetsockoptInt(lnFD, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)

	ln := os.NewFile(uintptr(lnFD), "tcp-listener")
	raw, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, wrap("wrap listener", err)
	}

	f := &tcpForwarder{
		ln:      ln,
		lnRaw:   raw,
		addr:    localAddr(lnFD),
		backend: cfg.Backend,
		bsa:     sockaddr(cfg.Backend),
		timeout: cfg.connectTimeout(),
		spare:   -1,
		closing: make(chan struct{}),
	}
	f.drained.L = &f.mu
	f.log.init(cfg.Log, logPrefix("tcp", f.addr, f.backend))
	return f, nil
}

func (f *tcpForwarder) Addr() Endpoint { return f.addr }

// Serve accepts connections until Close. Each accepted client already has
// its backend socket, made before the accept, so that running out of
// descriptors leaves clients waiting in the listen queue rather than
// accepted and dropped.
func (f *tcpForwarder) Serve() error {
	defer f.closeSpare()

	for {
		if f.spare < 0 {
			fd, err := f.backendSocket()
			if err != nil {
				if !f.wait(err) {
					return nil
				}
				continue
			}
			f.spare = fd
		}

		cfd, err := f.accept()
		switch {
		case f.isClosing():
			if err == nil {
				unix.Close(cfd)
			}
			return nil
		case errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			if !f.wait(err) {
				return nil
			}
			continue
		}

		f.recovered()
		bfd := f.spare
		f.spare = -1
		f.start(cfd, bfd)
	}
}

func (f *tcpForwarder) isClosing() bool {
	select {
	case <-f.closing:
		return true
	default:
		return false
	}
}

func (f *tcpForwarder) closeSpare() {
	if f.spare >= 0 {
		unix.Close(f.spare)
		f.spare = -1
	}
}

// accept waits for a client and accepts it. It fails with the error of
// the listener once Close has closed it.
func (f *tcpForwarder) accept() (fd int, err error) {
	rerr := f.lnRaw.Read(func(s uintptr) bool {
		fd, err = accept(int(s))
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return -1, rerr
	}
	return fd, err
}

// backendSocket makes a socket for the next backend connection.
func (f *tcpForwarder) backendSocket() (int, error) {
	typ := unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fd, err := unix.Socket(family(f.backend.IP), typ, 0)
	if err != nil {
		return -1, wrap("create backend socket", err)
	}
	if err := setKeepAlive(fd); err != nil {
		unix.Close(fd)
		return -1, wrap("set keep-alive on backend socket", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return fd, nil
}

// wait pauses the accept loop after err, doubling the pause up to
// acceptPauseMax; the first failure of a burst is logged. It reports false
// if the forwarder was closed meanwhile.
func (f *tcpForwarder) wait(err error) bool {
	if f.failed == 0 {
		f.failing = time.Now()
		f.log.log(evAccept, "accept: "+err.Error()+"; pausing until it clears")
	}
	f.failed++
	f.pause = min(max(2*f.pause, acceptPauseMin), acceptPauseMax)

	t := time.NewTimer(f.pause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.closing:
		return false
	}
}

// recovered ends a burst of accept failures.
func (f *tcpForwarder) recovered() {
	if f.failed == 0 {
		return
	}
	f.log.log(evAccept, "accepting again after "+strconv.Itoa(f.failed)+
		" failed attempts in "+time.Since(f.failing).Round(time.Millisecond).String())
	f.failed, f.pause = 0, 0
}

// track records c so that Close can reach it; it reports false if the
// forwarder is closing.
func (f *tcpForwarder) track(c *tcpConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if f.conns == nil {
		f.conns = make(map[*tcpConn]struct{})
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *tcpForwarder) untrack(c *tcpConn) {
	f.mu.Lock()
	delete(f.conns, c)
	if len(f.conns) == 0 {
		f.drained.Broadcast()
	}
	f.mu.Unlock()
}

// Close stops accepting, shuts every connection down and waits up to
// closeWait for them to finish.
func (f *tcpForwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.closing)
	conns := make([]*tcpConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()

	err := f.ln.Close()
	for _, c := range conns {
		c.shut()
	}
	f.waitDrained(closeWait)

	f.poller.close()
	f.pipes.close()
	f.log.close()
	return err
}

// waitDrained waits until no connection is left, or d has passed.
func (f *tcpForwarder) waitDrained(d time.Duration) {
	t := time.AfterFunc(d, func() {
		f.mu.Lock()
		f.drained.Broadcast()
		f.mu.Unlock()
	})
	defer t.Stop()

	deadline := time.Now().Add(d)
	f.mu.Lock()
	for len(f.conns) > 0 && time.Now().Before(deadline) {
		f.drained.Wait()
	}
	f.mu.Unlock()
}
