package portmapper

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/userland-proxy/portmapper/internal/contract"
)

// status is what the proxy said on the status pipe.
type status struct {
	ready bool
	data  []byte // what was read, at most len(prefix)+MaxStatusBytes
	cut   bool   // data stops at the bound; the proxy wrote more
}

// readStatus reads the status pipe until it holds a verdict: the ready
// message, or everything up to end of file or the size bound. The pipe
// is a byte stream, so "0" and "\n" may come in separate writes.
func readStatus(f *os.File, out chan<- status) {
	var s status
	limit := len(contract.FailurePrefix) + MaxStatusBytes
	buf := make([]byte, 4096)

	readPipe(f, buf, func(b []byte) bool {
		room := limit - len(s.data)
		if len(b) > room {
			b, s.cut = b[:room], true
		}
		s.data = append(s.data, b...)
		s.ready = bytes.HasPrefix(s.data, []byte(contract.Ready))
		return !s.ready && !s.cut
	})
	out <- s
}

// reported tells whether the proxy wrote a failure status.
func (s status) reported() bool {
	return bytes.HasPrefix(s.data, []byte(contract.FailurePrefix))
}

// message returns the proxy's reason for failing, or "" if it gave none.
func (s status) message() string {
	msg, reported := bytes.CutPrefix(s.data, []byte(contract.FailurePrefix))
	text := printable(strings.TrimSpace(string(msg)))
	if !reported && len(s.data) > 0 {
		text = fmt.Sprintf("unexpected status %.200q", s.data)
	}
	if text == "" {
		return ""
	}
	if s.cut {
		text += fmt.Sprintf(" [cut at %d bytes]", MaxStatusBytes)
	}
	return text
}
