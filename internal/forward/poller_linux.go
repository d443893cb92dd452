//go:build linux

package forward

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// pollBatch is how many readiness events the loop takes per epoll_wait.
const pollBatch = 128

// evDatagram is the event mask of a UDP socket, edge-triggered and for
// reading only: a datagram socket signals write space each time one of
// its datagrams is freed, which nobody here waits for. Stream sockets are
// armed one-shot; see sock.
const evDatagram = unix.EPOLLIN | unix.EPOLLET

// eventHandler is told about the readiness of one descriptor. It runs on
// the poller's goroutine, so it must not block: it does a little
// non-blocking work, or starts a goroutine.
type eventHandler interface {
	handleEvents(events uint32)
}

// poller waits for readiness of many non-blocking descriptors with one
// edge-triggered epoll instance, whose own descriptor waits in the Go
// runtime's poller. A descriptor registered here costs no goroutine while
// it waits: at rest, a forwarded TCP connection is two registrations and
// nothing else. The epoll instance and the loop goroutine are made with
// the first registration, so that a proxy without traffic has neither.
type poller struct {
	mu       sync.Mutex
	ep       *os.File // the epoll instance, pollable by the runtime; nil until needed
	raw      syscall.RawConn
	done     chan struct{} // closed when the loop has returned
	closed   bool
	handlers []eventHandler // indexed by descriptor
}

// start makes the epoll instance and starts the loop. p.mu must be held.
func (p *poller) start() error {
	if p.closed {
		return errPollerClosed
	}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return wrap("create epoll instance", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return wrap("make epoll instance non-blocking", err)
	}

	ep := os.NewFile(uintptr(fd), "epoll")
	raw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return wrap("wrap epoll instance", err)
	}
	p.ep, p.raw, p.done = ep, raw, make(chan struct{})
	go p.loop(raw, p.done)
	return nil
}

const errPollerClosed = textError("poller closed")

// add registers fd for the events in mask, to be handled by h. Readiness
// that fd already has is reported at once.
func (p *poller) add(fd int, mask uint32, h eventHandler) error {
	p.mu.Lock()
	if p.ep == nil {
		if err := p.start(); err != nil {
			p.mu.Unlock()
			return err
		}
	}
	for fd >= len(p.handlers) {
		p.handlers = append(p.handlers, nil)
	}
	p.handlers[fd] = h
	raw := p.raw
	p.mu.Unlock()

	if err := ctl(raw, unix.EPOLL_CTL_ADD, fd, mask); err != nil {
		p.forget(fd)
		return wrap("register socket with epoll", err)
	}
	return nil
}

// modify changes the events fd is armed for.
func (p *poller) modify(fd int, mask uint32) error {
	p.mu.Lock()
	raw := p.raw
	p.mu.Unlock()
	if raw == nil {
		return errPollerClosed
	}
	return ctl(raw, unix.EPOLL_CTL_MOD, fd, mask)
}

// ctl runs epoll_ctl on the epoll instance behind raw.
func ctl(raw syscall.RawConn, op, fd int, mask uint32) error {
	var err error
	ev := unix.EpollEvent{Events: mask, Fd: int32(fd)}
	rerr := raw.Control(func(ep uintptr) {
		err = unix.EpollCtl(int(ep), op, fd, &ev)
	})
	if rerr != nil {
		return rerr
	}
	return err
}

// forget drops the handler of fd; call it before closing fd. Closing
// removes fd from the epoll instance; an event for it that was already
// fetched finds no handler, or the handler of a descriptor that reuses the
// number, which then sees one spurious wake-up and nothing worse.
func (p *poller) forget(fd int) {
	p.mu.Lock()
	if fd < len(p.handlers) {
		p.handlers[fd] = nil
	}
	p.mu.Unlock()
}

func (p *poller) handler(fd int32) eventHandler {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(fd) < len(p.handlers) {
		return p.handlers[fd]
	}
	return nil
}

// loop hands out events until the poller is closed.
func (p *poller) loop(raw syscall.RawConn, done chan struct{}) {
	defer close(done)

	w := waiter{events: make([]unix.EpollEvent, pollBatch)}
	fetch := w.fetch // one closure for the whole loop
	for {
		if err := raw.Read(fetch); err != nil || w.err != nil {
			return
		}
		for _, ev := range w.events[:w.n] {
			if h := p.handler(ev.Fd); h != nil {
				h.handleEvents(ev.Events)
			}
		}
	}
}

// waiter fetches ready events without blocking the thread: when there
// are none, the callback reports so, and the runtime's poller parks the
// loop until the epoll instance is readable.
type waiter struct {
	events []unix.EpollEvent
	n      int
	err    error
}

// fetch is the callback of the epoll instance's RawConn.Read. It must look
// for events every time it is called, even right after a batch that left
// the ready list empty: RawConn.Read forgets readiness the runtime noted
// while the loop was busy handling that batch, so only epoll_wait can
// tell.
func (w *waiter) fetch(ep uintptr) bool {
	for {
		w.n, w.err = unix.EpollWait(int(ep), w.events, 0)
		if w.err != unix.EINTR {
			return w.err != nil || w.n > 0
		}
	}
}

// close stops the loop and waits for it. Registered descriptors are left
// to their owners.
func (p *poller) close() {
	p.mu.Lock()
	p.closed = true
	ep, done := p.ep, p.done
	p.mu.Unlock()

	if ep != nil {
		ep.Close()
		<-done
	}
}
