//go:build linux

package forward

import (
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const errFlowClosed = textError("flow closed")

// BUG(udp): The source of a flow's replies is the destination of the
// client's first datagram. A client that sends from one port to two
// addresses of a socket bound to every address gets all its replies from
// the first; keying flows by client and local address would fix it, at the
// cost of one more socket for such a client.

// flow is one client's path to the backend: a UDP socket connected to the
// backend, and where replies go. It holds no buffer and no goroutine; its
// socket waits in the poller, which hands it the replies.
type flow struct {
	u      *udpForwarder
	key    Endpoint     // the client
	client rawAddr      // the client, as replies are sent to it
	oob    []byte       // the replies' source address; nil lets the kernel choose
	last   atomic.Int64 // flow clock of the latest datagram, either way

	mu sync.Mutex // held around every use of fd, so that close waits for it
	fd int        // -1 once closed
}

// newFlow connects a socket to the backend for the client in from. The
// socket keeps its port, and the backend sees one client, for the flow's
// life.
func (u *udpForwarder) newFlow(key Endpoint, oob []byte, from *rawAddr) (*flow, error) {
	typ := unix.SOCK_DGRAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fd, err := unix.Socket(family(u.backend.IP), typ, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, u.bsa); err != nil {
		unix.Close(fd)
		return nil, err
	}

	fl := &flow{u: u, key: key, client: *from, oob: oob, fd: fd}
	fl.touch()
	if err := u.poller.add(fd, evDatagram, fl); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return fl, nil
}

// touch restarts the flow's idle timeout.
func (fl *flow) touch() { fl.last.Store(fl.u.now()) }

// send forwards p to the backend. A refusal left by an earlier datagram
// (ICMP port unreachable) is consumed by the first attempt, so the send is
// tried once more: the backend may be back.
func (fl *flow) send(p []byte) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.fd < 0 {
		return errFlowClosed
	}

	fl.touch()
	_, err := send(fl.fd, p)
	if err == unix.ECONNREFUSED || err == unix.EINTR {
		_, err = send(fl.fd, p)
	}
	if err != nil && err != unix.ECONNREFUSED {
		fl.u.drop("send " + strconv.Itoa(len(p)) + "-byte datagram from " +
			fl.key.String() + " to backend: " + err.Error())
	}
	return nil
}

// handleEvents passes the backend's replies to the client. It runs on the
// poller's goroutine and reads until the socket is drained, as the
// edge-triggered poller requires.
func (fl *flow) handleEvents(uint32) {
	buf := fl.u.buffer()
	for {
		n, err := fl.receive(buf)
		switch {
		case err == unix.EAGAIN, err == errFlowClosed:
			return
		case err == unix.ECONNREFUSED, err == unix.EINTR:
			// A refusal of an earlier datagram; the socket stays usable.
			continue
		case err != nil:
			fl.u.drop("receive from backend for " + fl.key.String() + ": " + err.Error())
			return
		case n > len(buf):
			fl.u.drop("reply of " + strconv.Itoa(n) + " bytes for " + fl.key.String())
			continue
		}
		fl.touch()
		fl.u.reply(fl, buf[:n])
	}
}

func (fl *flow) receive(buf []byte) (int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.fd < 0 {
		return 0, errFlowClosed
	}
	return recvTrunc(fl.fd, buf)
}

// close closes the flow's socket, once no send or receive uses it.
func (fl *flow) close() {
	fl.mu.Lock()
	fd := fl.fd
	fl.fd = -1
	fl.mu.Unlock()

	if fd >= 0 {
		fl.u.poller.forget(fd)
		unix.Close(fd)
	}
}
