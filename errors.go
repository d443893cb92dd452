package portmapper

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// StartError describes a proxy that did not become ready. Its text starts
// with the upstream wording, so callers that match on it keep working; the
// fields carry the rest for callers that want it.
type StartError struct {
	// Err is [ErrOutdatedProxy] or [ErrStartTimeout] when one of those
	// applies, and nil when the proxy reported a failure or ended without
	// reporting.
	Err error

	// Cause is what stopped the wait early, such as the context's error;
	// nil otherwise.
	Cause error

	// Message is the reason the proxy wrote after "1\n", cut to
	// [MaxStatusBytes]; empty if it wrote none.
	Message string

	// Exit says how the process ended ("exit status 2", "signal:
	// terminated"), or that the launcher killed it; empty if unknown.
	Exit string

	// Stderr holds the last lines the proxy wrote to its stderr.
	Stderr string

	// reported is set when the proxy wrote a failure status.
	reported bool
}

func (e *StartError) Error() string {
	const prefix = "error starting userland proxy: "
	switch {
	case e.Err != nil:
		return e.Err.Error() + e.details()
	case e.Message != "":
		return prefix + e.Message
	case e.reported:
		return prefix + "failure reported without a reason" + e.details()
	default:
		return prefix + "no status reported" + e.details()
	}
}

// details lists, in parentheses, what is known of how the proxy ended.
func (e *StartError) details() string {
	var parts []string
	if e.Cause != nil {
		parts = append(parts, e.Cause.Error())
	}
	if e.Message != "" {
		parts = append(parts, "proxy said: "+e.Message)
	}
	if e.Exit != "" {
		parts = append(parts, "proxy "+e.Exit)
	}
	if e.Stderr != "" {
		parts = append(parts, "stderr: "+e.Stderr)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// Unwrap gives [errors.Is] and [errors.As] both the sentinel and the cause.
func (e *StartError) Unwrap() []error {
	return []error{e.Err, e.Cause}
}

// describeExit turns the result of a child's Wait into a short phrase.
func describeExit(err error) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err == nil {
			return "exited with status 0"
		}
		return "ended: " + err.Error()
	}

	ws, ok := ee.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return fmt.Sprintf("was killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ee.ExitCode())
}

// ExitError says how a proxy process ended when nobody asked it to, or
// with a failure status when it was asked to stop.
type ExitError struct {
	// Pid is the process id the proxy had.
	Pid int

	// Stderr holds the last lines the proxy wrote to its stderr.
	Stderr string

	// Err is what waiting for the process returned: an [*exec.ExitError],
	// or nil for an exit with status 0.
	Err error
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("userland proxy (pid %d) %s", e.Pid, describeExit(e.Err))
	if e.Stderr != "" {
		msg += "; stderr: " + e.Stderr
	}
	return msg
}

func (e *ExitError) Unwrap() error {
	return e.Err
}
