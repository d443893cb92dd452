//go:build !unix

package portmapper

import (
	"os"
	"time"
)

// readPipe feeds what arrives on f to take until take returns false, end
// of file, or interruptPipe.
func readPipe(f *os.File, buf []byte, take func([]byte) bool) {
	for {
		n, err := f.Read(buf)
		if n > 0 && !take(buf[:n]) || err != nil {
			return
		}
	}
}

func interruptPipe(f *os.File) {
	_ = f.SetReadDeadline(time.Now())
}
