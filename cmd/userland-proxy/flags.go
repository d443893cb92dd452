//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/userland-proxy/portmapper/internal/contract"
	"github.com/userland-proxy/portmapper/internal/forward"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "(devel)"

// errHelp is returned for -h and -help, after the usage is printed.
const errHelp = cmdError("help requested")

// cmdError is a command-line error, in words.
type cmdError string

func (e cmdError) Error() string { return string(e) }

// options are the parsed command line.
type options struct {
	proto         string
	hostIP        forward.IP
	hostPort      uint16
	containerIP   forward.IP
	containerPort uint16
	useListenFD   bool
	version       bool

	connectTimeout time.Duration
	udpIdleTimeout time.Duration
	udpMaxFlows    int

	given uint // flags given, by bit: required ones are checked
}

// Bits of options.given for the flags that must be given.
const (
	givenHostPort = 1 << iota
	givenContainerIP
	givenContainerPort
)

// usage lists the flags. The proxy's own flags come after the contract's.
const usage = `usage: userland-proxy -proto tcp|udp|sctp -host-ip IP -host-port N
	-container-ip IP -container-port N [-use-listen-fd]

  -proto string          tcp, udp or sctp (default tcp)
  -host-ip IP            host address to serve; 0.0.0.0 or :: for every address
                         (default 0.0.0.0)
  -host-port N           host port, 1 to 65535
  -container-ip IP       container address to forward to
  -container-port N      container port, 1 to 65535
  -use-listen-fd         serve the socket on fd 4 instead of binding
  -v, -version           print the version and exit
  -connect-timeout D     give up connecting to the container after D (tcp, sctp)
  -udp-idle-timeout D    forget a UDP flow idle for D
  -udp-max-flows N       most UDP flows at once; datagrams from new clients
                         beyond them are dropped
`

// printUsage prints the flags and their defaults.
func printUsage() {
	os.Stderr.WriteString(usage + "\ndefaults, also what 0 means: -connect-timeout " +
		forward.DefaultConnectTimeout.String() + ", -udp-idle-timeout " +
		forward.DefaultUDPIdleTimeout.String() + ", -udp-max-flows " +
		strconv.Itoa(forward.DefaultUDPMaxFlows) + "\n")
}

// parseFlags parses args with the syntax of Go's flag package, which
// docker-proxy uses: -name value, -name=value, --name, and -name alone
// for a boolean. A wrong flag or value is an error that says which and
// why. It is written out, rather than built on package flag, to keep
// reflect out of the binary and allocations out of every start.
func parseFlags(args []string) (*options, error) {
	o := &options{
		proto:          "tcp",
		hostIP:         forward.IPv4Unspecified,
		connectTimeout: forward.DefaultConnectTimeout,
		udpIdleTimeout: forward.DefaultUDPIdleTimeout,
		udpMaxFlows:    forward.DefaultUDPMaxFlows,
	}

	for len(args) > 0 {
		arg := args[0]
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		args = args[1:]
		if arg == "--" {
			break
		}

		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
		isBool, known := flagKind(name)
		switch {
		case name == "" || name[0] == '-' || name[0] == '=':
			return nil, cmdError("bad flag syntax: " + arg)
		case !known && (name == "h" || name == "help"):
			printUsage()
			return nil, errHelp
		case !known:
			return nil, cmdError("flag provided but not defined: -" + name)
		case isBool && !hasValue:
			value = "true"
		case !hasValue && len(args) == 0:
			return nil, cmdError("flag needs an argument: -" + name)
		case !hasValue:
			value, args = args[0], args[1:]
		}
		if err := o.set(name, value); err != nil {
			return nil, cmdError("invalid value " + strconv.Quote(value) + " for flag -" +
				name + ": " + err.Error())
		}
	}

	if len(args) > 0 {
		return nil, cmdError("unexpected argument " + strconv.Quote(args[0]))
	}
	if o.version {
		return o, nil
	}
	return o, o.check()
}

// flagKind says whether name is a flag, and whether it is a boolean one.
func flagKind(name string) (isBool, known bool) {
	switch name {
	case contract.FlagUseListenFD, "v", "version":
		return true, true
	case contract.FlagProto, contract.FlagHostIP, contract.FlagHostPort,
		contract.FlagContainerIP, contract.FlagContainerPort,
		"connect-timeout", "udp-idle-timeout", "udp-max-flows":
		return false, true
	}
	return false, false
}

// set stores the value of flag name.
func (o *options) set(name, value string) error {
	var err error
	switch name {
	case contract.FlagProto:
		o.proto, err = parseProto(value)
	case contract.FlagHostIP:
		o.hostIP, err = parseIP(value)
	case contract.FlagHostPort:
		o.hostPort, err = parsePort(value)
		o.given |= givenHostPort
	case contract.FlagContainerIP:
		o.containerIP, err = parseIP(value)
		o.given |= givenContainerIP
	case contract.FlagContainerPort:
		o.containerPort, err = parsePort(value)
		o.given |= givenContainerPort
	case contract.FlagUseListenFD:
		o.useListenFD, err = parseBool(value)
	case "v", "version":
		o.version, err = parseBool(value)
	case "connect-timeout":
		o.connectTimeout, err = parseDuration(value)
	case "udp-idle-timeout":
		o.udpIdleTimeout, err = parseDuration(value)
	case "udp-max-flows":
		o.udpMaxFlows, err = parseCount(value)
	}
	return err
}

// check rejects a command line that parses but cannot be served.
func (o *options) check() error {
	switch {
	case o.given&givenHostPort == 0:
		return cmdError("missing -" + contract.FlagHostPort)
	case o.given&givenContainerIP == 0:
		return cmdError("missing -" + contract.FlagContainerIP)
	case o.given&givenContainerPort == 0:
		return cmdError("missing -" + contract.FlagContainerPort)
	case o.containerIP.IsUnspecified():
		return cmdError("invalid -" + contract.FlagContainerIP + " " + o.containerIP.String() +
			": an unspecified address cannot be reached")
	}
	return nil
}

// config is the forwarder's configuration, with fd 4 when it was handed
// over.
func (o *options) config() forward.Config {
	cfg := forward.Config{
		Proto:          o.proto,
		Frontend:       forward.Endpoint{IP: o.hostIP, Port: o.hostPort},
		Backend:        forward.Endpoint{IP: o.containerIP, Port: o.containerPort},
		ConnectTimeout: o.connectTimeout,
		UDPIdleTimeout: o.udpIdleTimeout,
		UDPMaxFlows:    o.udpMaxFlows,
		Log:            os.Stderr,
	}
	if o.useListenFD {
		cfg.Listener = os.NewFile(contract.ListenFD, "listen-fd")
	}
	return cfg
}

func parseProto(s string) (string, error) {
	switch s {
	case "tcp", "udp", "sctp":
		return s, nil
	}
	return "", cmdError("unsupported protocol: want tcp, udp or sctp")
}

// parseIP parses an IP address. IPv4-mapped IPv6 addresses count as IPv4,
// as net.IP.To4 counts them.
func parseIP(s string) (forward.IP, error) {
	ip, err := forward.ParseIP(s)
	if err != nil {
		return ip, cmdError("not an IP address")
	}
	return ip, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, cmdError("not a port number from 1 to 65535")
	}
	return uint16(n), nil
}

func parseBool(s string) (bool, error) {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, cmdError("not a boolean")
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, cmdError("not a duration such as 5s, zero or more")
	}
	return v, nil
}

func parseCount(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, cmdError("not a count, zero or more")
	}
	return v, nil
}
