// Package portmapper starts and stops userland proxy processes for published
// container ports. It is a drop-in for the StartProxy of Docker's libnetwork
// portmapper: a daemon switches by changing one import path, and keeps the
// same command line, file descriptors, status protocol and error texts.
//
// # The contract
//
// The proxy binary at proxyPath is run with argv[0] set to that path and
//
//	-proto {tcp|udp|sctp} -host-ip IP -host-port N
//	-container-ip IP -container-port N [-use-listen-fd]
//
// in that order, each value a separate argument. It inherits the
// launcher's stdin and stdout, stderr on a pipe the launcher reads (each
// line goes to the logger), and:
//
//   - fd 3 ([StatusFD]): the write end of the status pipe. The proxy writes
//     "0\n" once it is serving, or "1\n" and a reason before exiting with a
//     non-zero status, then closes it.
//   - fd 4 ([ListenFD]), only with -use-listen-fd: a socket the caller
//     created and bound (TCP: listening). The proxy serves exactly that
//     socket and binds nothing itself.
//
// A proxy too old to know -use-listen-fd fails at flag parsing and writes
// nothing; an empty status pipe after -use-listen-fd was passed is reported
// as [ErrOutdatedProxy].
//
// # What the launcher guarantees
//
// The status pipe is read as a byte stream with a bound; a proxy that does
// not become ready within the start timeout is killed. Once the child has
// started, every failure kills it with SIGKILL and reaps it before the
// caller gets the error, so no process, zombie, descriptor or goroutine is
// left behind. The child is forked from an OS thread that stays locked for
// the proxy's whole life, with a parent-death signal of SIGTERM, so it dies
// with the daemon but never with an unrelated thread (go.dev/issue/27505).
//
// [StartProxy] keeps the upstream signature. [Start] takes a [Config] with
// a context, timeouts, a logger and a network namespace, and returns a
// [Proxy] that reports when and how the process ended.
package portmapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/docker/docker/libnetwork/types"

	"github.com/userland-proxy/portmapper/internal/contract"
)

// File descriptors a proxy inherits besides stdin, stdout and stderr.
const (
	// StatusFD is the write end of the status pipe.
	StatusFD = contract.StatusFD

	// ListenFD is the caller's listening socket, passed only with
	// -use-listen-fd.
	ListenFD = contract.ListenFD
)

// Default timings, used where a [Config] field is zero.
const (
	// DefaultStartTimeout is how long a proxy has to report its status,
	// as upstream.
	DefaultStartTimeout = 16 * time.Second

	// DefaultStopGrace is how long Stop waits after SIGINT before it
	// sends SIGKILL.
	DefaultStopGrace = 3 * time.Second
)

// Limits on what is kept from a proxy's output.
const (
	// MaxStatusBytes bounds the failure message read from the status
	// pipe; a longer one is cut and marked.
	MaxStatusBytes = 64 << 10

	// stderrTailLines is how many of the proxy's last stderr lines are
	// kept for error messages.
	stderrTailLines = 8

	// maxLineBytes bounds one stderr line; a longer one is cut.
	maxLineBytes = 4 << 10
)

// Errors whose texts daemons and users already match on. Test for them
// with [errors.Is]; the returned errors may carry details after the text.
var (
	// ErrNoProxyPath is returned when the proxy path is empty.
	ErrNoProxyPath = errors.New("no path provided for userland-proxy binary")

	// ErrOutdatedProxy means the proxy was given -use-listen-fd and
	// ended without a word: it is too old to know the flag.
	ErrOutdatedProxy = errors.New(
		"failed to start docker-proxy, check that the current version is in your $PATH")

	// ErrStartTimeout means the proxy did not report its status in time,
	// or the context was cancelled first.
	ErrStartTimeout = errors.New("timed out starting the userland proxy")
)

// ErrUnsupported is returned by [Start] where userland proxies cannot run
// (every platform but Linux). It wraps [errors.ErrUnsupported].
var ErrUnsupported = fmt.Errorf("userland proxy on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// ErrAlreadyExited is returned by [Proxy.Stop] when the proxy had ended on
// its own before it was asked to stop; the error also says how it ended.
var ErrAlreadyExited = errors.New("userland proxy had already exited")

// Config says which proxy to start and how. Only Binding and ProxyPath are
// required; every other zero value picks a documented default.
type Config struct {
	// Binding is the port mapping the proxy serves.
	Binding types.PortBinding

	// ProxyPath is the proxy binary, run as is (no $PATH lookup).
	ProxyPath string

	// ListenSock, if not nil, is a socket the caller created and bound
	// (TCP: listening); it is passed as fd 4 with -use-listen-fd. It
	// stays the caller's: Start never closes it, and the caller may
	// close it once Start returns.
	ListenSock *os.File

	// StartTimeout bounds the wait for the proxy's status; zero means
	// [DefaultStartTimeout].
	StartTimeout time.Duration

	// StopGrace is how long Stop waits after SIGINT before SIGKILL;
	// zero means [DefaultStopGrace].
	StopGrace time.Duration

	// Logger receives the launcher's events and, as warnings, each line
	// the proxy writes to stderr, tagged with the binding and pid; nil
	// means [slog.Default]. A slow logger holds nothing up: records that
	// cannot wait are dropped and counted, and the goroutine that feeds
	// the logger ends once its last call returns.
	Logger *slog.Logger

	// NetNS, if set, is the path of a network namespace (such as
	// /var/run/netns/NAME or /proc/PID/ns/net) to start the proxy in.
	// Empty means the caller's namespace.
	NetNS string
}

func (c *Config) startTimeout() time.Duration {
	if c.StartTimeout > 0 {
		return c.StartTimeout
	}
	return DefaultStartTimeout
}

func (c *Config) stopGrace() time.Duration {
	if c.StopGrace > 0 {
		return c.StopGrace
	}
	return DefaultStopGrace
}

func (c *Config) logger() *slog.Logger {
	l := c.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("binding", c.Binding.String())
}

// StartProxy starts the proxy at proxyPath for pb and waits until it
// reports that it is serving. If listenSock is not nil it must be a bound
// socket (TCP: listening); the proxy serves it and the caller keeps
// ownership of its copy.
//
// The returned stop sends SIGINT, waits [DefaultStopGrace], then SIGKILL;
// it returns nil once the proxy has exited as asked, and is safe to call
// more than once. StartProxy is [Start] with a background context and
// default settings.
func StartProxy(pb types.PortBinding, proxyPath string, listenSock *os.File,
) (stop func() error, retErr error) {
	p, err := Start(context.Background(), Config{
		Binding:    pb,
		ProxyPath:  proxyPath,
		ListenSock: listenSock,
	})
	if err != nil {
		return nil, err
	}
	return p.Stop, nil
}
