package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// portmapProc is the portmap process the demo runs.
type portmapProc struct {
	cmd   *exec.Cmd
	logs  syncBuffer    // what it wrote to stderr
	lines chan string   // the lines it wrote to stdout
	done  chan struct{} // closed once it has exited
	err   error         // how it exited; set before done is closed
}

// startPortmap runs portmap at path with one -p per spec. With verbose,
// its logs are copied to stderr as they come.
func startPortmap(path string, specs []string, verbose bool) (*portmapProc, error) {
	var args []string
	for _, s := range specs {
		args = append(args, "-p", s)
	}
	p := &portmapProc{
		cmd:   exec.Command(path, args...),
		lines: make(chan string, 64),
		done:  make(chan struct{}),
	}
	p.cmd.Stdout = &lineWriter{lines: p.lines}
	p.cmd.Stderr = &p.logs
	if verbose {
		p.cmd.Stderr = io.MultiWriter(&p.logs, os.Stderr)
	}
	p.cmd.SysProcAttr = sysProcAttr()

	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting portmap: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// published is a binding as portmap prints it.
type published struct {
	proto         string
	host, backend netip.AddrPort
}

// bindings waits for n binding lines and parses them.
func (p *portmapProc) bindings(ctx context.Context, n int) ([]published, error) {
	var out []published
	for len(out) < n {
		select {
		case line := <-p.lines:
			b, err := parsePublished(line)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		case <-p.done:
			return nil, fmt.Errorf("portmap exited before publishing everything (%v)", p.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for portmap to publish: %w", ctx.Err())
		}
	}
	return out, nil
}

// parsePublished reads "tcp 127.0.0.1:8080 -> 127.0.0.1:80".
func parsePublished(line string) (published, error) {
	var b published
	f := strings.Fields(line)
	if len(f) != 4 || f[2] != "->" {
		return b, fmt.Errorf("unexpected line from portmap: %q", line)
	}
	host, err1 := netip.ParseAddrPort(f[1])
	backend, err2 := netip.ParseAddrPort(f[3])
	if err := errors.Join(err1, err2); err != nil {
		return b, fmt.Errorf("reading portmap's line %q: %w", line, err)
	}
	return published{proto: f[0], host: host, backend: backend}, nil
}

// interrupt sends SIGINT and waits for portmap to exit with status 0.
func (p *portmapProc) interrupt(ctx context.Context) error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("signalling portmap: %w", err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for portmap to stop: %w", ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("portmap ended badly: %w", p.err)
	}
	return nil
}

// kill ends portmap at once if it still runs; its proxies then get
// SIGTERM from the kernel.
func (p *portmapProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// lineWriter passes each complete line written to it to a channel; lines
// beyond the channel's room are dropped.
type lineWriter struct {
	partial []byte
	lines   chan string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		line, rest, found := bytes.Cut(w.partial, []byte{'\n'})
		if !found {
			return len(b), nil
		}
		select {
		case w.lines <- string(line):
		default:
		}
		w.partial = rest
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and other readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// elapsed rounds a duration for people to read.
func elapsed(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
