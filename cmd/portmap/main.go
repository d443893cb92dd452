// Command portmap publishes ports the way docker run -p does, with the
// backend address spelled out. For each binding it creates and binds the
// host socket itself, hands it to a userland-proxy (-use-listen-fd), and
// prints the binding, with its real port, on stdout. It runs until SIGINT
// or SIGTERM, restarting proxies that die, then stops them all.
//
// Run portmap -h for the syntax of a SPEC and the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/userland-proxy/portmapper/internal/portspec"
	"github.com/userland-proxy/portmapper/internal/publish"
)

// Exit statuses.
const (
	exitOK      = 0 // stopped by SIGINT or SIGTERM
	exitFailure = 1 // publishing failed, or a proxy died with -restart=false
	exitUsage   = 2 // a bad flag or SPEC
)

// errNoSpecs is the usage error of a command line without -p.
var errNoSpecs = errors.New("nothing to publish: give at least one -p SPEC (see portmap -h)")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	specs     []string
	proxy     string
	restart   bool
	logFormat string
	logLevel  slog.Level
}

// run is portmap from its arguments to its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	log, err := newLogger(opts, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "portmap: %v\n", err)
		return exitUsage
	}
	fail := failer(opts, log, stderr)

	specs, errs := parseSpecs(opts.specs)
	if len(errs) > 0 {
		for _, err := range errs {
			fail(err)
		}
		return exitUsage
	}
	proxyPath, err := findProxy(opts.proxy)
	if err != nil {
		fail(err)
		return exitFailure
	}
	return serve(specs, publish.Config{
		ProxyPath: proxyPath,
		Restart:   opts.restart,
		Logger:    log,
	}, stdout, fail)
}

// serve publishes specs, prints the bindings, and waits for a signal.
func serve(specs []portspec.Spec, cfg publish.Config, stdout io.Writer, fail func(error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends portmap at once; its
	// proxies then get SIGTERM from the kernel.
	context.AfterFunc(ctx, stop)

	pub, err := publish.Publish(ctx, cfg, specs)
	if err != nil && ctx.Err() != nil {
		cfg.Logger.Info("interrupted while publishing; stopped", "err", err)
		return exitOK
	}
	if err != nil {
		fail(err)
		return exitFailure
	}

	for _, b := range pub.Bindings() {
		fmt.Fprintln(stdout, b)
	}
	cfg.Logger.Info("published", "bindings", len(pub.Bindings()), "proxy", cfg.ProxyPath)

	err = pub.Wait(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		fail(err)
		return exitFailure
	case err != nil:
		cfg.Logger.Warn("stopped, with errors", "err", err)
	default:
		cfg.Logger.Info("stopped")
	}
	return exitOK
}

// parseSpecs parses every spec and reports every invalid one.
func parseSpecs(texts []string) ([]portspec.Spec, []error) {
	if len(texts) == 0 {
		return nil, []error{errNoSpecs}
	}

	var specs []portspec.Spec
	var errs []error
	for _, text := range texts {
		s, err := portspec.Parse(text)
		if err != nil {
			errs = append(errs, err)
		}
		specs = append(specs, s)
	}
	return specs, errs
}

// failer returns how portmap says why it gives up: a plain line on stderr,
// or a log record when the logs are JSON.
func failer(opts *options, log *slog.Logger, stderr io.Writer) func(error) {
	if opts.logFormat == "json" {
		return func(err error) { log.Error("portmap failed", "err", err) }
	}
	return func(err error) {
		fmt.Fprintf(stderr, "portmap: %v\n", err)
	}
}

// newLogger makes the logger that -log-format and -log-level ask for.
func newLogger(opts *options, w io.Writer) (*slog.Logger, error) {
	ho := &slog.HandlerOptions{Level: opts.logLevel}
	switch opts.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("invalid -log-format %q, want text or json", opts.logFormat)
}
