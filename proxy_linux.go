package portmapper

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper/internal/contract"
)

// failureExitWait is how long a proxy that reported a failure, or closed
// its status pipe without a word, gets to exit on its own, so that the
// error can say how it ended. After that it is killed.
const failureExitWait = 2 * time.Second

// testHookLaunched, if set, runs in Start right after the child started;
// tests use it to fail where nothing else can.
var testHookLaunched func(pid int)

// Start starts the proxy that cfg describes and waits until it reports
// that it is serving. If the proxy reports a failure, ends, or does not
// answer within the start timeout or before ctx is done, Start kills and
// reaps it and returns a [*StartError]; cancellation counts as a timeout.
// ctx only bounds the start: once Start has returned, use [Proxy.Stop].
func Start(ctx context.Context, cfg Config) (_ *Proxy, retErr error) {
	if cfg.ProxyPath == "" {
		return nil, ErrNoProxyPath
	}
	if err := ctx.Err(); err != nil {
		return nil, &StartError{Err: ErrStartTimeout, Cause: err}
	}

	p := newProxy(cfg)
	statusR, err := p.launch()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()

	defer func() {
		if r := recover(); r != nil {
			p.kill()
			panic(r)
		}
		if retErr != nil {
			p.kill()
		}
	}()

	if testHookLaunched != nil {
		testHookLaunched(p.Pid())
	}
	if err := p.awaitReady(ctx, statusR); err != nil {
		return nil, err
	}
	p.markStarted()
	return p, nil
}

// launch starts the child on its own locked thread and returns the read
// end of its status pipe. The parent's write ends are closed here, so that
// the pipes see end of file when the child and its descendants close them.
func (p *Proxy) launch() (*os.File, error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating the userland proxy's status pipe: %w", err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, fmt.Errorf("creating the userland proxy's stderr pipe: %w", err)
	}
	p.stderr = newStderrLog(p.logs, stderrR)

	started := make(chan error, 1)
	go p.run(p.command(statusW, stderrW), started)
	err = <-started
	statusW.Close()
	stderrW.Close()

	if err != nil {
		statusR.Close()
		return nil, fmt.Errorf("starting userland proxy %s: %w", p.cfg.ProxyPath, err)
	}
	return statusR, nil
}

// command builds the proxy's command line and file table.
func (p *Proxy) command(statusW, stderrW *os.File) *exec.Cmd {
	pb := p.cfg.Binding
	args := contract.Args{
		Path:          p.cfg.ProxyPath,
		Proto:         pb.Proto.String(),
		HostIP:        pb.HostIP.String(),
		HostPort:      pb.HostPort,
		ContainerIP:   pb.IP.String(),
		ContainerPort: pb.Port,
	}
	files := []*os.File{statusW}
	if p.cfg.ListenSock != nil {
		args.UseListenFD = true
		files = append(files, p.cfg.ListenSock)
	}

	return &exec.Cmd{
		Path:        p.cfg.ProxyPath,
		Args:        args.Argv(),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      stderrW,
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM},
	}
}

// run forks the proxy and reaps it, on one OS thread that stays locked for
// the proxy's whole life. Linux sends the parent-death signal when the
// thread that forked the child exits, not the process; a thread returned
// to the scheduler may later be ended by any goroutine that locks it and
// exits, which would kill a healthy proxy (go.dev/issue/27505).
func (p *Proxy) run(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	restore, err := enterNetNS(p.cfg.NetNS)
	if err == nil {
		closeStrayOnExec()
		err = cmd.Start()
	}
	if err != nil {
		p.stderr.f.Close()
		started <- err
		releaseThread(restore)
		return
	}

	p.proc = cmd.Process
	p.logs.log = p.logs.log.With("pid", p.proc.Pid)
	go p.logs.run(p.done)
	go p.stderr.run()
	started <- nil
	p.reaped(cmd.Wait())
	releaseThread(restore)
}

// releaseThread moves the thread back to the namespace it came from and
// hands it back to the scheduler. A thread that cannot be moved back stays
// locked, so that the runtime ends it when its goroutine returns.
func releaseThread(restore func() error) {
	if restore() == nil {
		runtime.UnlockOSThread()
	}
}

// enterNetNS moves the calling thread into the network namespace at path
// and returns how to move it back; an empty path leaves it where it is.
func enterNetNS(path string) (restore func() error, err error) {
	restore = func() error { return nil }
	if path == "" {
		return restore, nil
	}

	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return restore, fmt.Errorf("opening network namespace: %w",
			&os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(target)
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return restore, fmt.Errorf("opening the current network namespace: %w", err)
	}

	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		return restore, fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	return func() error {
		defer unix.Close(orig)
		return unix.Setns(orig, unix.CLONE_NEWNET)
	}, nil
}

// closeStrayOnExec marks close-on-exec every descriptor above stderr that
// lacks the mark, so that only the contract's descriptors reach the proxy.
// Go opens all its files so marked, but a daemon may hold descriptors it
// inherited or got from C code. It does its best: without /proc it does
// nothing.
//
// BUG(launcher): Marking stray descriptors close-on-exec changes them for
// the whole daemon, and one created without the mark between the sweep and
// the fork still reaches the proxy. Closing them in the child between fork
// and exec (close_range) would fix both, but os/exec offers no such hook.
func closeStrayOnExec() {
	d, err := os.Open("/proc/thread-self/fd")
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)

	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 || uintptr(fd) == d.Fd() {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.CloseOnExec(fd)
		}
	}
}

// awaitReady waits for the first of: a verdict on the status pipe, the
// process ending, the start timeout, or ctx. Whatever happens, the status
// reader has finished when it returns.
func (p *Proxy) awaitReady(ctx context.Context, statusR *os.File) error {
	verdict := make(chan status, 1)
	go readStatus(statusR, verdict)

	timer := time.NewTimer(p.cfg.startTimeout())
	defer timer.Stop()

	var cause error
	select {
	case s := <-verdict:
		return p.judge(s)
	case <-p.done:
		interruptPipe(statusR)
		return p.judge(<-verdict)
	case <-timer.C:
	case <-ctx.Done():
		cause = ctx.Err()
	}

	interruptPipe(statusR)
	s := <-verdict
	p.kill()
	return &StartError{
		Err:     ErrStartTimeout,
		Cause:   cause,
		Message: s.message(),
		Exit:    "was killed after not reporting in time",
		Stderr:  p.stderr.tail(),
	}
}

// judge turns what the proxy said into nil (ready) or a [*StartError].
// A proxy that failed is given a moment to exit on its own, then killed.
func (p *Proxy) judge(s status) error {
	if s.ready {
		return nil
	}

	if !s.cut {
		p.waitExit(failureExitWait)
	}
	p.kill()

	e := &StartError{
		Message:  s.message(),
		Exit:     p.howEnded(),
		Stderr:   p.stderr.tail(),
		reported: s.reported(),
	}
	if len(s.data) == 0 && p.cfg.ListenSock != nil {
		e.Err = ErrOutdatedProxy
	}
	return e
}

// howEnded describes the end of a process that has been reaped.
func (p *Proxy) howEnded() string {
	if p.unexpected {
		return describeExit(p.exit)
	}
	return "was killed by the launcher"
}
