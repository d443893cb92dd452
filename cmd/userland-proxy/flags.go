//go:build linux

package main

import (
	"net/netip"
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
	hostIP        netip.Addr
	hostPort      uint16
	containerIP   netip.Addr
	containerPort uint16
	useListenFD   bool
	version       bool

	connectTimeout time.Duration
	udpIdleTimeout time.Duration
	udpMaxFlows    int
}

// flagDef is one flag: its name, whether it takes no value, and how its
// value is stored.
type flagDef struct {
	name   string
	isBool bool
	usage  string
	set    func(string) error
}

// flagDefs lists the flags of o: the contract's, -v and -version, then
// the proxy's own.
func (o *options) flagDefs() []flagDef {
	return []flagDef{
		{contract.FlagProto, false, "protocol: tcp, udp or sctp", o.setProto},
		{contract.FlagHostIP, false, "host IP to serve; 0.0.0.0 or :: for every address",
			ipSetter(&o.hostIP)},
		{contract.FlagHostPort, false, "host port, 1 to 65535", portSetter(&o.hostPort)},
		{contract.FlagContainerIP, false, "container IP to forward to", ipSetter(&o.containerIP)},
		{contract.FlagContainerPort, false, "container port, 1 to 65535",
			portSetter(&o.containerPort)},
		{contract.FlagUseListenFD, true, "serve the socket on fd 4 instead of binding",
			boolSetter(&o.useListenFD)},
		{"v", true, "print the version and exit", boolSetter(&o.version)},
		{"version", true, "print the version and exit", boolSetter(&o.version)},
		{"connect-timeout", false, "give up connecting to the container after this long " +
			"(tcp, sctp; default " + forward.DefaultConnectTimeout.String() + ")",
			durationSetter(&o.connectTimeout)},
		{"udp-idle-timeout", false, "forget a UDP flow idle for this long (default " +
			forward.DefaultUDPIdleTimeout.String() + ")", durationSetter(&o.udpIdleTimeout)},
		{"udp-max-flows", false, "most UDP flows at once; datagrams from new clients " +
			"beyond it are dropped (default " + strconv.Itoa(forward.DefaultUDPMaxFlows) + ")",
			countSetter(&o.udpMaxFlows)},
	}
}

// parseFlags parses args with the syntax of Go's flag package, which
// docker-proxy uses: -name value, -name=value, --name, and -name alone
// for a boolean. A wrong flag or value is an error that says which and
// why.
func parseFlags(args []string) (*options, error) {
	o := &options{
		proto:          "tcp",
		hostIP:         netip.IPv4Unspecified(),
		connectTimeout: forward.DefaultConnectTimeout,
		udpIdleTimeout: forward.DefaultUDPIdleTimeout,
		udpMaxFlows:    forward.DefaultUDPMaxFlows,
	}
	defs := o.flagDefs()
	seen := make(map[string]bool)

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
		def := lookup(defs, name)
		switch {
		case name == "" || name[0] == '-' || name[0] == '=':
			return nil, cmdError("bad flag syntax: " + arg)
		case def == nil && (name == "h" || name == "help"):
			printUsage(defs)
			return nil, errHelp
		case def == nil:
			return nil, cmdError("flag provided but not defined: -" + name)
		case def.isBool && !hasValue:
			value = "true"
		case !hasValue && len(args) == 0:
			return nil, cmdError("flag needs an argument: -" + name)
		case !hasValue:
			value, args = args[0], args[1:]
		}
		if err := def.set(value); err != nil {
			return nil, cmdError("invalid value " + strconv.Quote(value) + " for flag -" +
				name + ": " + err.Error())
		}
		seen[name] = true
	}

	if len(args) > 0 {
		return nil, cmdError("unexpected argument " + strconv.Quote(args[0]))
	}
	if o.version {
		return o, nil
	}
	return o, o.check(seen)
}

func lookup(defs []flagDef, name string) *flagDef {
	for i := range defs {
		if defs[i].name == name {
			return &defs[i]
		}
	}
	return nil
}

// check rejects a command line that parses but cannot be served.
func (o *options) check(seen map[string]bool) error {
	for _, name := range []string{contract.FlagHostPort, contract.FlagContainerIP,
		contract.FlagContainerPort} {
		if !seen[name] {
			return cmdError("missing -" + name)
		}
	}
	if o.containerIP.IsUnspecified() {
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
		Frontend:       netip.AddrPortFrom(o.hostIP, o.hostPort),
		Backend:        netip.AddrPortFrom(o.containerIP, o.containerPort),
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

func (o *options) setProto(s string) error {
	switch s {
	case "tcp", "udp", "sctp":
		o.proto = s
		return nil
	}
	return cmdError("unsupported protocol: want tcp, udp or sctp")
}

// ipSetter parses an IP address. IPv4-mapped IPv6 addresses count as
// IPv4, as net.IP.To4 counts them.
func ipSetter(a *netip.Addr) func(string) error {
	return func(s string) error {
		ip, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			return cmdError("not an IP address")
		case ip.Zone() != "":
			return cmdError("zoned addresses are not supported")
		}
		*a = ip.Unmap()
		return nil
	}
}

func portSetter(p *uint16) func(string) error {
	return func(s string) error {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return cmdError("not a port number from 1 to 65535")
		}
		*p = uint16(n)
		return nil
	}
}

func boolSetter(b *bool) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return cmdError("not a boolean")
		}
		*b = v
		return nil
	}
}

func durationSetter(d *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return cmdError("not a duration such as 5s, zero or more")
		}
		*d = v
		return nil
	}
}

func countSetter(n *int) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return cmdError("not a count, zero or more")
		}
		*n = v
		return nil
	}
}

func printUsage(defs []flagDef) {
	var b strings.Builder
	b.WriteString("usage: userland-proxy -proto tcp|udp|sctp -host-ip IP -host-port N " +
		"-container-ip IP -container-port N [-use-listen-fd]\n")
	for _, d := range defs {
		b.WriteString("  -" + d.name + "\n    \t" + d.usage + "\n")
	}
	os.Stderr.WriteString(b.String())
}
