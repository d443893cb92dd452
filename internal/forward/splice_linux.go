//go:build linux

package forward

import (
	"sync"

	"golang.org/x/sys/unix"
)

// TODO: On loopback, a spliced byte still costs the kernel a second TCP
// transmit and receive, which caps one stream at about 0.6 of a direct
// connection on two cores. Redirecting between the two sockets in the
// kernel (a BPF sockmap with an sk_skb verdict program) would spare the
// proxy's wake-ups and syscalls, though not that TCP work.

// spliceFlags: never block on the pipe (the sockets are non-blocking
// already), and move pages rather than copy them where the kernel can.
const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE

// copyBufSize is the size of the buffers that stand in for a pipe when no
// pipe can be had, typically because descriptors ran out.
const copyBufSize = 32 << 10

// carrier holds the bytes of one direction of a connection between
// reading them from one socket and writing them to the other. A carrier is
// borrowed only while data moves.
type carrier interface {
	// fill reads from src what fits. It returns 0, nil at end of stream.
	fill(src int) (int, error)

	// drain writes to dst some of what fill read.
	drain(dst int) (int, error)

	// buffered is how many bytes fill read that drain has not written.
	buffered() int

	// release gives the carrier back. It must not be used afterwards.
	release()
}

// spliceCarrier moves bytes through a pipe, never through user memory.
type spliceCarrier struct {
	p    *pipe
	pool *pipePool
}

func (c *spliceCarrier) fill(src int) (int, error) {
	n, err := unix.Splice(src, nil, c.p.w, nil, pipeSize, spliceFlags)
	if n > 0 {
		c.p.n += int(n)
	}
	return int(n), err
}

func (c *spliceCarrier) drain(dst int) (int, error) {
	n, err := unix.Splice(c.p.r, nil, dst, nil, c.p.n, spliceFlags)
	if n > 0 {
		c.p.n -= int(n)
	}
	return int(n), err
}

func (c *spliceCarrier) buffered() int { return c.p.n }

func (c *spliceCarrier) release() { c.pool.put(c.p) }

// copyBufs holds the buffers of bufCarrier between uses.
var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// bufCarrier moves bytes through a buffer: read, then send.
type bufCarrier struct {
	buf      *[copyBufSize]byte
	off, end int
}

func newBufCarrier() *bufCarrier {
	return &bufCarrier{buf: copyBufs.Get().(*[copyBufSize]byte)}
}

func (c *bufCarrier) fill(src int) (int, error) {
	n, err := unix.Read(src, c.buf[:])
	if n < 0 {
		n = 0
	}
	c.off, c.end = 0, n
	return n, err
}

func (c *bufCarrier) drain(dst int) (int, error) {
	n, err := send(dst, c.buf[c.off:c.end])
	c.off += n
	return n, err
}

func (c *bufCarrier) buffered() int { return c.end - c.off }

func (c *bufCarrier) release() {
	copyBufs.Put(c.buf)
	c.buf = nil
}

// newCarrier returns a pipe carrier, or a buffer carrier if no pipe can be
// had, so that running out of descriptors slows connections down rather
// than breaking them.
func newCarrier(pool *pipePool) carrier {
	p, err := pool.get()
	if err != nil {
		return newBufCarrier()
	}
	return &spliceCarrier{p: p, pool: pool}
}
