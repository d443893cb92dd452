//go:build linux

package forward

import (
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// pipeSize is the capacity asked of each pipe: the most one splice
	// moves. Measured on loopback bulk transfers, 1 MiB moves the most
	// (64 KiB, the default, a quarter less; 2 MiB and more, less again).
	// The pages are only held while data sits in the pipe. If the kernel
	// refuses (fs.pipe-max-size, per-user limits), the pipe keeps the
	// default size, which works, a little slower.
	//
	// TODO: a peer that stops reading keeps a full pipe per stalled
	// direction, up to 1 MiB of kernel memory a connection (root is not
	// held to pipe-user-pages-soft). Shrinking a pipe that stays full, or
	// falling back to the pooled buffer once a budget of pipe pages is
	// spent, would bound what stalled peers can pin.
	pipeSize = 1 << 20

	// maxIdlePipes bounds the pipes kept for reuse once data stops
	// moving. Each idle pipe holds two descriptors; a connection at rest
	// holds none.
	maxIdlePipes = 4
)

// pipe is a kernel pipe that carries one direction of a connection, from
// one splice to the next.
type pipe struct {
	r, w int
	n    int // bytes in the pipe
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, wrap("create pipe", err)
	}
	// A refusal leaves the default size, which works, a little slower.
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// pipePool keeps up to maxIdlePipes empty pipes.
type pipePool struct {
	mu     sync.Mutex
	idle   []*pipe
	closed bool
}

// get returns an empty pipe, from the pool or new.
func (pp *pipePool) get() (*pipe, error) {
	pp.mu.Lock()
	if n := len(pp.idle); n > 0 {
		p := pp.idle[n-1]
		pp.idle = pp.idle[:n-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	return newPipe()
}

// put takes p back if it is empty and there is room; otherwise it closes
// p, since a pipe with stray bytes would corrupt the next stream.
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	if p.n == 0 && !pp.closed && len(pp.idle) < maxIdlePipes {
		pp.idle = append(pp.idle, p)
		p = nil
	}
	pp.mu.Unlock()

	if p != nil {
		p.close()
	}
}

// close closes the idle pipes, and those put back later.
func (pp *pipePool) close() {
	pp.mu.Lock()
	idle := pp.idle
	pp.idle, pp.closed = nil, true
	pp.mu.Unlock()

	for _, p := range idle {
		p.close()
	}
}
