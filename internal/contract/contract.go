// Package contract holds the names and numbers of the userland-proxy
// contract that the launcher and the proxy must agree on: the flags, the
// inherited file descriptors and the status messages. Keeping them in one
// place means the two sides cannot drift apart.
package contract

import "strconv"

// File descriptors the launcher hands to the proxy, after stdin, stdout and
// stderr.
const (
	// StatusFD is the write end of the status pipe. The proxy writes
	// [Ready] or [FailurePrefix] followed by a reason, then closes it.
	StatusFD = 3

	// ListenFD is the socket the launcher created and bound, present only
	// when the command line carries [FlagUseListenFD]. A TCP socket is
	// already listening; a UDP socket is bound.
	ListenFD = 4
)

// Messages on the status pipe.
const (
	// Ready is written, exactly, once the proxy is serving.
	Ready = "0\n"

	// FailurePrefix starts a failure report; a human-readable reason
	// follows, and the proxy exits with a non-zero status.
	FailurePrefix = "1\n"
)

// Command-line flag names, without the leading dash. Each one but
// [FlagUseListenFD] is followed by its value as a separate argument.
const (
	FlagProto         = "proto"
	FlagHostIP        = "host-ip"
	FlagHostPort      = "host-port"
	FlagContainerIP   = "container-ip"
	FlagContainerPort = "container-port"
	FlagUseListenFD   = "use-listen-fd"
)

// Args is what a proxy is started with: the command line of the contract,
// argv[0] included. Addresses are already formatted (net.IP.String()).
type Args struct {
	Path          string
	Proto         string
	HostIP        string
	HostPort      uint16
	ContainerIP   string
	ContainerPort uint16
	UseListenFD   bool
}

// Argv returns the full argument vector, in the order daemons in the field
// use: argv[0] is the proxy's path, then each flag and its value.
func (a Args) Argv() []string {
	argv := []string{
		a.Path,
		"-" + FlagProto, a.Proto,
		"-" + FlagHostIP, a.HostIP,
		"-" + FlagHostPort, strconv.FormatUint(uint64(a.HostPort), 10),
		"-" + FlagContainerIP, a.ContainerIP,
		"-" + FlagContainerPort, strconv.FormatUint(uint64(a.ContainerPort), 10),
	}
	if a.UseListenFD {
		argv = append(argv, "-"+FlagUseListenFD)
	}
	return argv
}
