package portmappertest

import "time"

// Mode names what a fake proxy does once started.
type Mode string

// The behaviours of a fake proxy. Unless a mode says otherwise, a fake
// exits with status 0 on SIGINT or SIGTERM, as a real proxy does.
const (
	// Ready reports "0\n" and runs until signalled.
	Ready Mode = "ready"

	// Fail reports "1\n" and [Behavior.Message], then exits with status 1.
	Fail Mode = "fail"

	// Hang never reports and runs until signalled.
	Hang Mode = "hang"

	// Silent writes nothing on the status pipe and exits with status 2
	// after complaining on stderr of an unknown flag, as a proxy too old
	// to know -use-listen-fd does when given it.
	Silent Mode = "silent"

	// Split reports "0" and "\n" in two writes, [Behavior.Delay] apart.
	Split Mode = "split"

	// Chatty reports "0\n" with [Behavior.Message] right behind it, in
	// the same write.
	Chatty Mode = "chatty"

	// Flood reports "1\n" and then writes to the status pipe without end.
	Flood Mode = "flood"

	// FailHeld reports "1\n" and [Behavior.Message], hands the status
	// pipe and stderr to a child that keeps them open for a minute, and
	// exits with status 1 at once. The child is killed with the test.
	FailHeld Mode = "fail-held"

	// Dies reports ready, then after [Behavior.Delay] writes
	// [Behavior.Message] to stderr and exits with [Behavior.ExitCode].
	Dies Mode = "dies"

	// Deaf reports ready and ignores SIGINT; SIGTERM still ends it.
	Deaf Mode = "deaf"

	// Echo reports ready and echoes what it receives on its socket: the
	// one on fd 4 with -use-listen-fd, else one it binds to the host
	// address itself. TCP and UDP.
	Echo Mode = "echo"

	// Forward reports ready and forwards its socket to the container
	// address, one backend connection per client (TCP) or one backend
	// socket per client address (UDP).
	Forward Mode = "forward"
)

// Behavior describes a fake proxy. The zero value is a proxy that reports
// ready and runs until signalled.
type Behavior struct {
	// Mode is what the fake does; empty means [Ready].
	Mode Mode `json:"mode,omitempty"`

	// Message is the failure reason for [Fail] and [FailHeld], the extra
	// bytes for [Chatty], and the last stderr line for [Dies].
	Message string `json:"message,omitempty"`

	// Delay is the pause for [Split] (zero: 50ms) and the lifetime for
	// [Dies].
	Delay time.Duration `json:"delay,omitempty"`

	// ExitCode is the status [Dies] exits with.
	ExitCode int `json:"exit_code,omitempty"`

	// Stderr, if set, is written to stderr as soon as the fake starts,
	// whatever the mode.
	Stderr string `json:"stderr,omitempty"`
}
