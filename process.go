package portmapper

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a running proxy process started by [Start]. Its methods are
// safe for concurrent use.
type Proxy struct {
	cfg    Config
	logs   *logQueue
	proc   *os.Process
	stderr *stderrLog

	stopping atomic.Bool // the launcher asked it to end

	// mu orders Start's hand-over against the reaper, so that an exit
	// nobody asked for is logged exactly once, before done closes when the
	// caller can see it.
	mu      sync.Mutex
	started bool // Start returned the proxy to its caller
	ended   bool // the process has been reaped

	done       chan struct{} // closed once the process is reaped
	exit       error         // what Wait returned; set before done closes
	unexpected bool          // it ended without being asked; set before done closes

	stopOnce sync.Once
	stopErr  error
}

func newProxy(cfg Config) *Proxy {
	return &Proxy{cfg: cfg, logs: newLogQueue(cfg.logger()), done: make(chan struct{})}
}

// Pid returns the proxy's process id.
func (p *Proxy) Pid() int {
	return p.proc.Pid
}

// Done returns a channel that is closed once the proxy process has exited
// and been reaped, whether it was stopped or ended on its own.
func (p *Proxy) Done() <-chan struct{} {
	return p.done
}

// Err reports how the proxy ended. It is nil while the proxy runs and
// after an exit that [Proxy.Stop] asked for; otherwise it says how the
// process ended and what it last wrote to stderr, and wraps the
// [*exec.ExitError] if there is one.
func (p *Proxy) Err() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	if !p.unexpected {
		return nil
	}
	return p.endError()
}

// Stop asks the proxy to exit with SIGINT and waits for it; after the
// stop grace period it sends SIGKILL. It returns nil once the proxy has
// exited as asked, and an error wrapping [ErrAlreadyExited] if the proxy
// had ended on its own before. Calling Stop again, from any goroutine,
// returns the same result.
func (p *Proxy) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

// BUG(launcher): Stop and the kills on failed starts signal the proxy
// process alone; children it started itself are left to it. Starting the
// proxy in a process group of its own and signalling the group would
// reach them, at the cost of the proxy no longer getting the terminal's
// signals with the daemon.
func (p *Proxy) stop() error {
	select {
	case <-p.done:
	default:
		p.stopping.Store(true)
		_ = p.proc.Signal(os.Interrupt)
		if !p.waitExit(p.cfg.stopGrace()) {
			p.logs.add(slog.LevelWarn, "userland proxy ignored SIGINT, killing it",
				"grace", p.cfg.stopGrace())
			p.kill()
		}
	}

	if p.unexpected {
		return fmt.Errorf("%w: %w", ErrAlreadyExited, p.endError())
	}
	return p.stopResult()
}

// stopResult judges an exit that was asked for: a clean status or death
// by the signal sent is success; a non-zero status is the proxy's error.
func (p *Proxy) stopResult() error {
	var ee *exec.ExitError
	if !errors.As(p.exit, &ee) || ee.ExitCode() <= 0 {
		return nil
	}
	return fmt.Errorf("stopping userland proxy: %w", p.endError())
}

// kill ends the process with SIGKILL and waits until it is reaped.
func (p *Proxy) kill() {
	p.stopping.Store(true)
	_ = p.proc.Kill()
	<-p.done
}

// waitExit waits up to d for the process to end and reports whether it did.
func (p *Proxy) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()

	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// reaped records how the process ended. What the proxy left in its stderr
// pipe is read first, so that its last lines are known to whoever sees
// done.
func (p *Proxy) reaped(waitErr error) {
	p.exit = waitErr
	p.unexpected = !p.stopping.Load()
	p.stderr.interrupt()
	<-p.stderr.done

	p.mu.Lock()
	p.ended = true
	started := p.started
	p.mu.Unlock()
	if started && p.unexpected {
		p.logs.add(slog.LevelWarn, earlyExitMsg, p.earlyExitArgs()...)
	}
	close(p.done)
}

// markStarted records that Start hands the proxy to its caller. From then
// on an exit nobody asked for is logged, also one that came first; the
// log queue has stopped by then, so that one is logged here.
func (p *Proxy) markStarted() {
	p.mu.Lock()
	p.started = true
	ended := p.ended
	p.mu.Unlock()
	if ended && p.unexpected {
		p.logs.log.Warn(earlyExitMsg, p.earlyExitArgs()...)
	}
}

const earlyExitMsg = "userland proxy exited unexpectedly"

func (p *Proxy) earlyExitArgs() []any {
	return []any{"exit", describeExit(p.exit), "stderr", p.stderr.tail()}
}

// endError describes how the process ended; only valid after done.
func (p *Proxy) endError() error {
	return &ExitError{Pid: p.proc.Pid, Stderr: p.stderr.tail(), Err: p.exit}
}
