//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/userland-proxy/portmapper/internal/contract"
	"github.com/userland-proxy/portmapper/internal/forward"
)

// version is set at link time with -ldflags "-X main.version=...";
// otherwise the module's build information stands in.
var version string

var errHelp = errors.New("help requested")

// options are the parsed command line.
type options struct {
	proto         string
	hostIP        ipFlag
	hostPort      portFlag
	containerIP   ipFlag
	containerPort portFlag
	useListenFD   bool
	version       bool

	connectTimeout time.Duration
	udpIdleTimeout time.Duration
	udpMaxFlows    int
}

// parseFlags parses args. A wrong flag or value is an error that says
// which and why.
func parseFlags(args []string) (*options, error) {
	o := &options{hostIP: ipFlag{netip.IPv4Unspecified(), true}}
	fs := flag.NewFlagSet("userland-proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)

	fs.StringVar(&o.proto, contract.FlagProto, "tcp", "protocol: tcp, udp or sctp")
	fs.Var(&o.hostIP, contract.FlagHostIP, "host `IP` to serve (0.0.0.0 or :: for every address)")
	fs.Var(&o.hostPort, contract.FlagHostPort, "host `port`, 1 to 65535")
	fs.Var(&o.containerIP, contract.FlagContainerIP, "container `IP` to forward to")
	fs.Var(&o.containerPort, contract.FlagContainerPort, "container `port`, 1 to 65535")
	fs.BoolVar(&o.useListenFD, contract.FlagUseListenFD, false,
		fmt.Sprintf("serve the socket on fd %d instead of binding", contract.ListenFD))
	fs.BoolVar(&o.version, "v", false, "print the version and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", forward.DefaultConnectTimeout,
		"give up connecting to the container after this long (tcp, sctp)")
	fs.DurationVar(&o.udpIdleTimeout, "udp-idle-timeout", forward.DefaultUDPIdleTimeout,
		"forget a UDP flow idle for this long")
	fs.IntVar(&o.udpMaxFlows, "udp-max-flows", forward.DefaultUDPMaxFlows,
		"most UDP flows at once; datagrams from new clients beyond it are dropped")

	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.version {
		return o, nil
	}
	return o, o.check()
}

// check rejects values that parse but cannot be served.
func (o *options) check() error {
	switch o.proto {
	case "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("unsupported protocol %q: want tcp, udp or sctp", o.proto)
	}
	switch {
	case !o.hostPort.set:
		return fmt.Errorf("missing -%s", contract.FlagHostPort)
	case !o.containerIP.set:
		return fmt.Errorf("missing -%s", contract.FlagContainerIP)
	case !o.containerPort.set:
		return fmt.Errorf("missing -%s", contract.FlagContainerPort)
	case o.containerIP.addr.IsUnspecified():
		return fmt.Errorf("invalid -%s %v: an unspecified address cannot be reached",
			contract.FlagContainerIP, o.containerIP.addr)
	case o.connectTimeout < 0, o.udpIdleTimeout < 0, o.udpMaxFlows < 0:
		return fmt.Errorf("timeouts and limits must not be negative")
	}
	return nil
}

// config is the forwarder's configuration, with fd 4 when it was handed
// over.
func (o *options) config() (forward.Config, error) {
	cfg := forward.Config{
		Proto:          o.proto,
		Frontend:       netip.AddrPortFrom(o.hostIP.addr, o.hostPort.port),
		Backend:        netip.AddrPortFrom(o.containerIP.addr, o.containerPort.port),
		ConnectTimeout: o.connectTimeout,
		UDPIdleTimeout: o.udpIdleTimeout,
		UDPMaxFlows:    o.udpMaxFlows,
		Log:            os.Stderr,
	}
	if o.useListenFD {
		cfg.Listener = os.NewFile(contract.ListenFD, "listen-fd")
		if cfg.Listener == nil {
			return cfg, fmt.Errorf("-%s given, but no fd %d", contract.FlagUseListenFD, contract.ListenFD)
		}
	}
	return cfg, nil
}

// ipFlag is an IP address flag. IPv4-mapped IPv6 addresses count as IPv4,
// as net.IP.To4 counts them.
type ipFlag struct {
	addr netip.Addr
	set  bool
}

func (f *ipFlag) String() string {
	if !f.addr.IsValid() {
		return ""
	}
	return f.addr.String()
}

func (f *ipFlag) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("not an IP address")
	}
	if a.Zone() != "" {
		return fmt.Errorf("zoned addresses are not supported")
	}
	f.addr, f.set = a.Unmap(), true
	return nil
}

// portFlag is a port number flag, 1 to 65535.
type portFlag struct {
	port uint16
	set  bool
}

func (f *portFlag) String() string { return strconv.Itoa(int(f.port)) }

func (f *portFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("not a port number from 1 to 65535")
	}
	f.port, f.set = uint16(n), true
	return nil
}

// versionLine is what -version prints.
func versionLine() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					v += " " + s.Value
				}
			}
		}
	}
	return "userland-proxy version " + v
}
