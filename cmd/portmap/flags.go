package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// usage is what -h prints.
const usage = `Usage: portmap [flags] -p SPEC [-p SPEC ...]

portmap publishes ports the way docker run -p does. For each SPEC it binds
the host port, hands the socket to a userland-proxy that forwards to the
backend, and prints one line per binding on stdout, with the real port:

  tcp 127.0.0.1:8080 -> 127.0.0.1:80

It runs until SIGINT or SIGTERM, then stops every proxy and exits 0.
Events go to stderr as logs.

SPEC is [HOST_IP:][HOST_PORT[-END]:]BACKEND_IP:BACKEND_PORT[-END][/PROTO]
  PROTO      tcp (the default), udp or sctp
  HOST_IP    absent: every IPv4 address and, where the host has IPv6,
             every IPv6 address, on the same port
  HOST_PORT  absent or 0: a free port the kernel picks
  -END       a range, one proxy per port; a host range and its backend
             range have the same length
IPv6 addresses go in brackets: -p [::1]:8080:127.0.0.1:80

Flags:
  -p, -publish SPEC
        publish SPEC; repeat for more
  -proxy PATH
        the userland-proxy binary (default: the one beside portmap,
        else the first in $PATH)
  -restart
        restart a proxy that dies, waiting 100ms doubling to 10s
        (default true); with -restart=false a proxy that dies stops
        portmap, which exits 1
  -log-format text|json
        how logs are written (default text)
  -log-level debug|info|warn|error
        the least severe logs written (default info)

Exit status: 0 once stopped by SIGINT or SIGTERM; 1 if publishing fails,
no proxy binary is found, or a proxy dies with -restart=false; 2 for a
bad flag or SPEC.
`

// parseFlags parses the command line. For -h it prints the usage and
// returns flag.ErrHelp; for a bad flag, the flag package's complaint.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	opts := &options{}
	fs := flag.NewFlagSet("portmap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }

	addSpec := func(s string) error {
		opts.specs = append(opts.specs, s)
		return nil
	}
	fs.Func("p", "publish `SPEC`", addSpec)
	fs.Func("publish", "publish `SPEC`", addSpec)
	fs.StringVar(&opts.proxy, "proxy", "", "the userland-proxy binary")
	fs.BoolVar(&opts.restart, "restart", true, "restart a proxy that dies")
	fs.StringVar(&opts.logFormat, "log-format", "text", "text or json")
	fs.TextVar(&opts.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "portmap: unexpected argument %q; each SPEC follows -p\n", fs.Arg(0))
		return nil, errUsage
	}
	return opts, nil
}

// errUsage is returned for a command line the flag package accepts but
// portmap does not.
var errUsage = fmt.Errorf("usage error")
