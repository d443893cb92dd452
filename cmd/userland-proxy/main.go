//go:build linux

// Command userland-proxy forwards one port mapping from the host to a
// container, speaking the docker-proxy contract: a daemon can point its
// userland-proxy path at it instead of docker-proxy.
//
// It is started as
//
//	userland-proxy -proto tcp|udp|sctp -host-ip IP -host-port N
//		-container-ip IP -container-port N [-use-listen-fd]
//
// with the write end of a status pipe on fd 3 and, with -use-listen-fd, the
// socket to serve on fd 4 (listening for TCP and SCTP, bound for UDP).
// Without fd 4 it binds host-ip:host-port itself. Once serving it writes
// "0\n" on fd 3; if it cannot serve it writes "1\n" and the reason, and
// exits with status 1. It closes fd 3 after reporting. SIGINT and SIGTERM
// make it close every socket and exit with status 0.
//
// Beyond the contract, -connect-timeout bounds backend connections,
// -udp-idle-timeout sets how long an idle UDP flow lives, and
// -udp-max-flows bounds the UDP flow table. -v or -version prints the
// version.
//
// The garbage collector keeps its defaults. TCP data never enters the Go
// heap (it is spliced between the sockets), and UDP datagrams go through
// two reused buffers, so the heap holds only small per-connection and
// per-flow records; an idle proxy allocates almost nothing. A lower GOGC
// would spend CPU on the datagram path for no saving, and a memory limit
// could only make the collector thrash near it. GOGC and GOMEMLIMIT in the
// environment still apply.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/userland-proxy/portmapper/internal/contract"
	"github.com/userland-proxy/portmapper/internal/forward"
	"golang.org/x/sys/unix"
)

// exitDeadline bounds the time from a stop signal to the exit, whatever
// the connections in flight are doing.
const exitDeadline = 900 * time.Millisecond

func main() {
	status := inheritStatusPipe()

	// Writing a log line to a launcher that went away must not kill the
	// proxy; writes then fail with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)

	os.Exit(run(os.Args[1:], status))
}

func run(args []string, status *statusPipe) int {
	opts, err := parseFlags(args)
	switch {
	case err == errHelp:
		return 0
	case err != nil:
		return status.fail(err)
	case opts.version:
		os.Stdout.WriteString("userland-proxy version " + version + "\n")
		return 0
	}

	cfg := opts.config()
	f, err := forward.New(cfg)
	if cfg.Listener != nil {
		cfg.Listener.Close() // New made its own copy
	}
	if err != nil {
		return status.fail(err)
	}

	stopOnSignal(f)
	status.ready()

	if err := f.Serve(); err != nil {
		os.Stderr.WriteString("userland-proxy: " + err.Error() + "\n")
		return 1
	}
	return 0
}

// stopOnSignal closes f and exits with status 0 on SIGINT or SIGTERM.
func stopOnSignal(f forward.Forwarder) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		time.AfterFunc(exitDeadline, func() { os.Exit(0) })
		f.Close()
		os.Exit(0)
	}()
}

// statusPipe is fd 3 of the contract, or nothing if the proxy was not
// given one, as when it is run by hand.
type statusPipe struct {
	fd int // -1 without a pipe
}

// inheritStatusPipe marks fd 3 and fd 4 close-on-exec, so that nothing the
// proxy might ever run inherits them, and takes fd 3 as the status pipe if
// it is one. It must run before anything opens a descriptor, so that fd 3
// cannot be one of the proxy's own.
func inheritStatusPipe() *statusPipe {
	unix.CloseOnExec(contract.StatusFD)
	unix.CloseOnExec(contract.ListenFD)

	var st unix.Stat_t
	if err := unix.Fstat(contract.StatusFD, &st); err != nil {
		return &statusPipe{fd: -1}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK:
		return &statusPipe{fd: contract.StatusFD}
	}
	return &statusPipe{fd: -1}
}

// ready reports that the proxy is serving.
func (s *statusPipe) ready() {
	s.report(contract.Ready)
}

// fail reports err, also on stderr, and returns the exit status.
func (s *statusPipe) fail(err error) int {
	os.Stderr.WriteString("userland-proxy: " + err.Error() + "\n")
	s.report(contract.FailurePrefix + err.Error())
	return 1
}

// report writes msg whole and closes the pipe.
func (s *statusPipe) report(msg string) {
	if s.fd < 0 {
		return
	}
	b := []byte(msg)
	for len(b) > 0 {
		n, err := unix.Write(s.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
		b = b[n:]
	}
	unix.Close(s.fd)
	s.fd = -1
}
