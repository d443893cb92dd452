//go:build linux

package forward

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// closeWait bounds how long Close waits for connections to wind down
// after shutting their sockets.
const closeWait = 500 * time.Millisecond

// tcpForwarder accepts TCP connections and forwards each to the backend.
type tcpForwarder struct {
	acceptor
	log     logger
	ln      *os.File // the listening socket
	addr    Endpoint
	backend Endpoint
	bsa     unix.Sockaddr // backend, converted once
	timeout time.Duration

	poller poller
	pipes  pipePool

	spare int // a backend socket made ready before the next accept, or -1

	mu      sync.Mutex
	conns   map[*tcpConn]struct{} // made with the first
	drained sync.Cond             // signalled when conns becomes empty
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
		acceptor: acceptor{lnRaw: raw, closing: make(chan struct{})},
		ln:       ln,
		addr:     localAddr(lnFD),
		backend:  cfg.Backend,
		bsa:      sockaddr(cfg.Backend),
		timeout:  cfg.connectTimeout(),
		spare:    -1,
	}
	f.acceptor.log = &f.log
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
				if !f.backOff(err) {
					return nil
				}
				continue
			}
			f.spare = fd
		}

		cfd, ok := f.next()
		if !ok {
			return nil
		}
		bfd := f.spare
		f.spare = -1
		f.start(cfd, bfd)
	}
}

func (f *tcpForwarder) closeSpare() {
	if f.spare >= 0 {
		unix.Close(f.spare)
		f.spare = -1
	}
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
