package portmapper

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// stderrLog reads a proxy's stderr: it forwards each line to the logger
// and keeps the last few for error messages. Lines longer than
// maxLineBytes are cut, so a proxy cannot grow the launcher's memory.
type stderrLog struct {
	logs *logQueue
	f    *os.File      // the read end of the proxy's stderr
	done chan struct{} // closed once f is read to the end and closed

	mu      sync.Mutex
	last    []string // the newest stderrTailLines lines, oldest first
	partial []byte   // a line still waiting for its newline
}

func newStderrLog(logs *logQueue, f *os.File) *stderrLog {
	return &stderrLog{logs: logs, f: f, done: make(chan struct{})}
}

// run reads the pipe until end of file or interrupt, then closes it.
func (s *stderrLog) run() {
	defer close(s.done)
	defer s.f.Close()

	readPipe(s.f, make([]byte, 4096), s.take)
	s.flush()
}

// interrupt makes run take what the pipe holds now and return, for when
// the proxy has exited but a descendant may keep the pipe open.
func (s *stderrLog) interrupt() {
	interruptPipe(s.f)
}

// take splits b into lines; it never asks readPipe to stop early.
func (s *stderrLog) take(b []byte) bool {
	for len(b) > 0 {
		line, rest, found := bytes.Cut(b, []byte{'\n'})
		s.addPartial(line)
		if found {
			s.flush()
		}
		b = rest
	}
	return true
}

func (s *stderrLog) addPartial(b []byte) {
	room := maxLineBytes - len(s.partial)
	s.partial = append(s.partial, b[:min(len(b), room)]...)
}

// flush ends the pending line, if any.
func (s *stderrLog) flush() {
	line := printable(strings.TrimRight(string(s.partial), "\r"))
	s.partial = s.partial[:0]
	if line == "" {
		return
	}

	// A proxy writes to stderr to complain; upstream's are silent else.
	s.logs.add(slog.LevelWarn, "proxy: "+line)

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) == stderrTailLines {
		s.last = append(s.last[:0], s.last[1:]...)
	}
	s.last = append(s.last, line)
}

// tail returns the last lines read, joined into one line.
func (s *stderrLog) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.last, " | ")
}

// printable replaces invalid UTF-8 and control characters other than tab
// and newline, so that a proxy's bytes cannot garble a log or an error.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && r != '\n' && !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}
