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
// its two directions is ready (an event came that nobody has consumed),
// awaited (a continuation is parked), or neither. This is the bookkeeping
// of the runtime's own poller, with a function in place of a parked
// goroutine, so that waiting costs no stack.
type sock struct {
	fd int

	mu    sync.Mutex
	ready [2]bool
	wait  [2]func()
}

// handleEvents runs the continuations that the events release, each on a
// goroutine of its own, and remembers readiness nobody awaited.
func (s *sock) handleEvents(events uint32) {
	if events&wakeRead != 0 {
		s.signal(dirRead)
	}
	if events&wakeWrite != 0 {
		s.signal(dirWrite)
	}
}

func (s *sock) signal(dir int) {
	s.mu.Lock()
	fn := s.wait[dir]
	s.wait[dir] = nil
	if fn == nil {
		s.ready[dir] = true
	}
	s.mu.Unlock()

	if fn != nil {
		go fn()
	}
}

// park arranges for fn to run once s is ready in direction dir, and
// reports true. If s became ready since the caller last got EAGAIN, it
// arranges nothing and reports false: the caller should try again at once.
func (s *sock) park(dir int, fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.ready[dir] {
		s.ready[dir] = false
		return false
	}
	s.wait[dir] = fn
	return true
}
