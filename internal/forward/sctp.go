//go:build linux

package forward

import (
	"cmp"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sctpMaxMessage bounds the SCTP messages carried whole. A larger one is
// passed on in pieces of this size.
const sctpMaxMessage = 1 << 20

// BUG(sctp): An SCTP message larger than 1 MiB reaches the backend as
// several messages. Carrying it whole would need SCTP_EXPLICIT_EOR on the
// sending socket, and is left undone.

// sctpForwarder forwards one-to-one SCTP associations, message by message,
// keeping each message's stream number, payload protocol identifier and
// unordered flag. Unlike TCP, each association has two goroutines, one per
// direction, which wait in the runtime's poller.
type sctpForwarder struct {
	acceptor
	log     logger
	ln      *os.File
	addr    Endpoint
	backend Endpoint
	bsa     unix.Sockaddr
	timeout time.Duration

	mu     sync.Mutex
	assocs map[*sctpAssoc]struct{}
	wg     sync.WaitGroup // association goroutines
	closed bool
}

// newSCTPForwarder serves the listening socket fd, which it owns from the
// call on.
func newSCTPForwarder(cfg *Config, fd int) (*sctpForwarder, error) {
	if err := setSCTPOptions(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	ln := os.NewFile(uintptr(fd), "sctp-listener")
	raw, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, wrap("wrap listener", err)
	}
	f := &sctpForwarder{
		acceptor: acceptor{lnRaw: raw, closing: make(chan struct{})},
		ln:       ln,
		addr:     localAddr(fd),
		backend:  cfg.Backend,
		bsa:      sockaddr(cfg.Backend),
		timeout:  cfg.connectTimeout(),
		assocs:   make(map[*sctpAssoc]struct{}),
	}
	f.acceptor.log = &f.log
	f.log.init(cfg.Log, logPrefix("sctp", f.addr, f.backend))
	return f, nil
}

func (f *sctpForwarder) Addr() Endpoint { return f.addr }

// Serve accepts associations until Close.
func (f *sctpForwarder) Serve() error {
	for {
		fd, ok := f.next()
		if !ok {
			return nil
		}
		f.start(fd)
	}
}

// start forwards the accepted client fd on goroutines of its own.
func (f *sctpForwarder) start(fd int) {
	a := &sctpAssoc{f: f, client: newSCTPEnd(fd)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		a.client.file.Close()
		return
	}
	f.assocs[a] = struct{}{}
	f.wg.Add(1)
	f.mu.Unlock()

	go a.serve()
}

// Close stops accepting, closes every association and waits up to
// closeWait for their goroutines.
func (f *sctpForwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.closing)
	assocs := make([]*sctpAssoc, 0, len(f.assocs))
	for a := range f.assocs {
		assocs = append(assocs, a)
	}
	f.mu.Unlock()

	err := f.ln.Close()
	for _, a := range assocs {
		a.close()
	}

	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	f.log.close()
	return err
}

// sctpEnd is one socket of an association, waiting in the runtime's
// poller.
type sctpEnd struct {
	file *os.File
	raw  syscall.RawConn
	fd   int // valid until file is closed
}

func newSCTPEnd(fd int) *sctpEnd {
	file := os.NewFile(uintptr(fd), "sctp")
	raw, _ := file.SyscallConn() // cannot fail for a file just made
	return &sctpEnd{file: file, raw: raw, fd: fd}
}

// sctpAssoc is a client association and its backend association.
type sctpAssoc struct {
	f       *sctpForwarder
	client  *sctpEnd
	backend *sctpEnd // nil until connected

	mu     sync.Mutex
	closed bool
}

// serve connects to the backend, then relays both ways.
func (a *sctpAssoc) serve() {
	defer a.f.wg.Done()
	defer a.untrack()

	var err error
	cerr := a.client.raw.Control(func(fd uintptr) { err = setSCTPOptions(int(fd)) })
	if err = cmp.Or(cerr, err); err != nil {
		a.f.log.log(evConn, "set up client: "+err.Error())
		a.close()
		return
	}
	b, err := a.dial()
	if err != nil {
		a.f.log.log(evDial, "connect to backend "+a.f.backend.String()+": "+err.Error()+
			"; closing the client")
		a.close()
		return
	}
	if !a.setBackend(b) {
		return
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.relayDown()
	}()
	a.relayUp()
	wg.Wait()
	a.close()
}

func (a *sctpAssoc) relayUp()   { a.relay(a.backend, a.client) }
func (a *sctpAssoc) relayDown() { a.relay(a.client, a.backend) }

// dial connects a new socket to the backend, within the connect timeout.
func (a *sctpAssoc) dial() (*sctpEnd, error) {
	typ := unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fd, err := unix.Socket(family(a.f.backend.IP), typ, unix.IPPROTO_SCTP)
	if err != nil {
		return nil, err
	}
	if err := setSCTPOptions(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	err = unix.Connect(fd, a.f.bsa)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, err
	}

	e := newSCTPEnd(fd)
	if err := e.waitConnected(a.f.timeout); err != nil {
		e.file.Close()
		return nil, err
	}
	return e, nil
}

// waitConnected waits until the socket's connect has an outcome.
func (e *sctpEnd) waitConnected(timeout time.Duration) error {
	e.file.SetWriteDeadline(time.Now().Add(timeout))
	defer e.file.SetWriteDeadline(time.Time{})

	err := e.raw.Write(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, _ := unix.Poll(pfd, 0)
		return n > 0
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errConnectTimeout
	}
	if err != nil {
		return err
	}
	return soError(e.fd)
}

// shutdownWrite passes the end of the other side on. Going through the
// file makes it a no-op once the association is closed.
func (e *sctpEnd) shutdownWrite() {
	e.raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
}

// setBackend records the backend, unless the association was closed
// meanwhile.
func (a *sctpAssoc) setBackend(b *sctpEnd) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		b.file.Close()
		return false
	}
	a.backend = b
	return true
}

// relay passes messages from src to dst until src ends, then passes the
// end on; on failure it closes the association.
func (a *sctpAssoc) relay(dst, src *sctpEnd) {
	var m sctpMessage
	defer m.release()

	for {
		err := src.read(&m)
		if err == io.EOF {
			dst.shutdownWrite()
			return
		}
		if err == nil {
			err = dst.write(&m)
		}
		if err != nil {
			a.fail(err)
			return
		}
	}
}

func (a *sctpAssoc) fail(err error) {
	if !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.EPIPE) && !a.isClosed() {
		a.f.log.log(evConn, "forward to "+a.f.backend.String()+": "+err.Error())
	}
	a.close()
}

func (a *sctpAssoc) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// close closes both sockets, which ends both relays.
func (a *sctpAssoc) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	a.client.file.Close()
	if a.backend != nil {
		a.backend.file.Close()
	}
}

func (a *sctpAssoc) untrack() {
	a.f.mu.Lock()
	delete(a.f.assocs, a)
	a.f.mu.Unlock()
}

// sctpMessage is one message and its send/receive info.
type sctpMessage struct {
	buf  []byte // borrowed while a message is being carried
	n    int
	info sndRcvInfo
	oob  [64]byte
	cmsg [64]byte // the info to send, marshalled
}

func (m *sctpMessage) release() {
	if m.buf != nil && len(m.buf) == copyBufSize {
		copyBufs.Put((*[copyBufSize]byte)(m.buf))
	}
	m.buf, m.n = nil, 0
}

// read reads one whole message, up to sctpMaxMessage bytes, into m. It
// returns io.EOF when the peer has shut the association down.
func (e *sctpEnd) read(m *sctpMessage) error {
	m.n = 0
	for {
		n, flags, err := e.readPart(m)
		switch {
		case err != nil:
			return err
		case n == 0 && m.n == 0:
			return io.EOF
		case flags&msgNotification != 0:
			m.n = 0 // not data: skip it
			continue
		}
		m.n += n
		if flags&unix.MSG_EOR != 0 || m.n == sctpMaxMessage {
			return nil
		}
		m.grow()
	}
}

// readPart reads what comes of the current message.
func (e *sctpEnd) readPart(m *sctpMessage) (n, flags int, err error) {
	var oobn int
	rerr := e.raw.Read(func(fd uintptr) bool {
		if m.buf == nil {
			m.buf = copyBufs.Get().(*[copyBufSize]byte)[:]
		}
		n, oobn, flags, _, err = unix.Recvmsg(int(fd), m.buf[m.n:], m.oob[:], 0)
		if err == unix.EAGAIN && m.n == 0 {
			m.release() // nothing is moving: hold no buffer while waiting
		}
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return 0, 0, rerr
	}
	if err == nil && m.n == 0 {
		m.info = parseSndRcvInfo(m.oob[:oobn])
	}
	return n, flags, err
}

// grow makes room for more of a message, up to sctpMaxMessage.
func (m *sctpMessage) grow() {
	if m.n < len(m.buf) {
		return
	}
	bigger := make([]byte, min(2*len(m.buf), sctpMaxMessage))
	copy(bigger, m.buf[:m.n])
	m.release()
	m.buf = bigger
}

// write sends the message in m with its stream, payload protocol and
// unordered flag.
func (e *sctpEnd) write(m *sctpMessage) error {
	cmsg := m.info.marshal(m.cmsg[:])
	var err error
	rerr := e.raw.Write(func(fd uintptr) bool {
		_, err = unix.SendmsgN(int(fd), m.buf[:m.n], cmsg, nil, unix.MSG_NOSIGNAL)
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return rerr
	}
	return err
}
