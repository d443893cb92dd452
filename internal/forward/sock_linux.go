//go:build linux

package forward

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Directions of a socket's readiness.
const (
	dirRead  = 0
	dirWrite = 1
)

// Events that wake each direction. An error or a hang-up wakes both, so
// that whoever waits finds out from its next syscall.
const (
	wakeRead  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	wakeWrite = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
)

// sock is a non-blocking stream socket registered with a poller. Each of
// its two directions may have a continuation parked: a function to run
// once the socket is ready that way. Continuations run on the poller's
// goroutine, so they must not block: they do a little work, or start a
// goroutine.
//
// The socket is registered one-shot, and armed only for the directions
// that have a continuation parked: while data flows, the pumps run
// without the poller hearing of every segment that arrives.
type sock struct {
	fd int
	p  *poller

	mu   sync.Mutex
	wait [2]func()
}

// register adds s to p, armed for the continuations already set in
// s.wait.
func (s *sock) register(p *poller) error {
	s.p = p
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.add(s.fd, s.mask(), s)
}

// mask is what s must be armed for. s.mu must be held.
func (s *sock) mask() uint32 {
	m := uint32(unix.EPOLLONESHOT)
	if s.wait[dirRead] != nil {
		m |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if s.wait[dirWrite] != nil {
		m |= unix.EPOLLOUT
	}
	return m
}

// handleEvents arms s again for the continuations still parked, then runs
// those that the events release.
func (s *sock) handleEvents(events uint32) {
	var run [2]func()
	s.mu.Lock()
	if events&wakeRead != 0 {
		run[dirRead], s.wait[dirRead] = s.wait[dirRead], nil
	}
	if events&wakeWrite != 0 {
		run[dirWrite], s.wait[dirWrite] = s.wait[dirWrite], nil
	}
	if s.wait[dirRead] != nil || s.wait[dirWrite] != nil {
		s.p.modify(s.fd, s.mask())
	}
	s.mu.Unlock()

	for _, fn := range run {
		if fn != nil {
			fn()
		}
	}
}

// park arranges for fn to run once s is ready in direction dir. Arming
// checks the socket's state, so readiness that came after the caller's
// last EAGAIN is not missed.
func (s *sock) park(dir int, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wait[dir] = fn
	if err := s.p.modify(s.fd, s.mask()); err != nil {
		// Only a closed poller refuses, and then nobody is left to wait.
		// TODO: were epoll_ctl to fail otherwise (ENOMEM), the waiter
		// would be dropped and its connection never finished; calling
		// fn with the error would close it instead.
		s.wait[dir] = nil
	}
}
