//go:build unix

package portmapper

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// maxDrainBytes bounds what drainPipe takes after an interrupt: a pipe
// the proxy filled before it exited holds at most this much, while a
// descendant may write into it without end.
const maxDrainBytes = 1 << 20

// readPipe feeds what arrives on f to take until take returns false, the
// pipe reaches end of file, or [interruptPipe] is called. After an
// interrupt it still hands over what the pipe already holds, up to
// maxDrainBytes, without waiting for more: a process that has exited has
// written all it will, even if a descendant keeps the write end open.
func readPipe(f *os.File, buf []byte, take func([]byte) bool) {
	for {
		n, err := f.Read(buf)
		if n > 0 && !take(buf[:n]) {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			drainPipe(f, buf, take)
			return
		}
		if err != nil {
			return
		}
	}
}

// interruptPipe makes a pending or later readPipe on f drain and return.
func interruptPipe(f *os.File) {
	_ = f.SetReadDeadline(time.Now())
}

// drainPipe takes what f holds now, never blocking.
func drainPipe(f *os.File, buf []byte, take func([]byte) bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}

	_ = f.SetReadDeadline(time.Time{})
	_ = rc.Read(func(fd uintptr) bool {
		for budget := maxDrainBytes; budget > 0; {
			n, err := syscall.Read(int(fd), buf[:min(len(buf), budget)])
			if n <= 0 || err != nil || !take(buf[:n]) {
				break
			}
			budget -= n
		}
		return true
	})
}
