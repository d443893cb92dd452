//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/libnetwork/types"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/internal/contract"
)

// startProxy is the launcher every proxy peer is started with: the
// project's own, so that all of them pay the same launch cost and are
// started the way a daemon starts them.
var startProxy func(pb types.PortBinding, proxyPath string,
	listenSock *os.File) (stop func() error, err error) = portmapper.StartProxy

// Timing of the processes the bench starts.
const (
	// readyTimeout bounds the wait for a process to start serving; it is
	// the upstream daemon's value.
	readyTimeout = 16 * time.Second

	// stopGrace is how long a process has to exit after SIGINT before it
	// is killed.
	stopGrace = 5 * time.Second
)

// child is a process the bench started and must stop.
type child struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process is reaped
	err     error         // the result of Wait, valid once done is closed
	once    sync.Once
	stopErr error
}

// spawn starts cmd with a parent-death signal, from a goroutine that keeps
// its OS thread locked until the process exits: Linux sends that signal when
// the thread that forked the child exits, not the process
// (go.dev/issue/27505), and the bench wants it only if it dies itself.
func spawn(cmd *exec.Cmd) (*child, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	c := &child{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGINT, kills the process if it has not exited after
// stopGrace, and reaps it. An exit with status 0 after SIGINT is success.
// It is safe to call more than once.
func (c *child) stop() error {
	c.once.Do(func() { c.stopErr = c.interrupt() })
	return c.stopErr
}

func (c *child) interrupt() error {
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil &&
		!errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("interrupting pid %d: %w", c.pid(), err)
	}
	select {
	case <-c.done:
		return c.err
	case <-time.After(stopGrace):
	}
	c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("pid %d ignored SIGINT for %v and was killed", c.pid(), stopGrace)
}

// proxyPIDs finds the bench's own child processes that carry the
// contract's command line, keyed by proto and host port ("tcp/8080"). The
// launcher does not hand out pids, so they are read from /proc.
func proxyPIDs() (map[string]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	pids := make(map[string]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != self {
			continue
		}
		if key := proxyKey(pid); key != "" {
			pids[key] = pid
		}
	}
	return pids, nil
}

// proxyPID returns the pid of the bench's proxy serving proto on port.
func proxyPID(proto string, port uint16) (int, error) {
	pids, err := proxyPIDs()
	if err != nil {
		return 0, err
	}
	key := fmt.Sprintf("%s/%d", proto, port)
	if pid, ok := pids[key]; ok {
		return pid, nil
	}
	return 0, fmt.Errorf("no proxy process for %s", key)
}

// parentPID returns the parent of pid, or -1 when it cannot be read.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name in parentheses may hold spaces; fields follow it.
	i := bytes.LastIndexByte(b, ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return -1
	}
	return ppid
}

// proxyKey reads the proto and host port from pid's command line.
func proxyKey(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	args := strings.Split(string(b), "\x00")
	var proto, port string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-" + contract.FlagProto:
			proto = args[i+1]
		case "-" + contract.FlagHostPort:
			port = args[i+1]
		}
	}
	if proto == "" || port == "" {
		return ""
	}
	return proto + "/" + port
}

// childrenOf returns the pids whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		k, err := strconv.Atoi(e.Name())
		if err == nil && parentPID(k) == pid {
			kids = append(kids, k)
		}
	}
	return kids
}
