// Command portmap-demo shows portmap at work, on loopback only. It starts
// a small backend (an HTTP server, a TCP echo and a UDP echo), publishes
// it with portmap on ports the kernel picks, sends real traffic through
// the published ports, reports what went through and how long it took,
// then stops portmap with SIGINT and checks that nothing is left
// listening. It exits 0 if all went well, and never runs longer than
// -timeout.
//
// make demo builds the binaries and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Time limits.
const (
	// demoTimeout bounds the whole demo.
	demoTimeout = 30 * time.Second

	// stopWait bounds the clean stop of portmap after a failure, before
	// it is killed.
	stopWait = 5 * time.Second
)

func main() {
	// portmap is started with a parent-death signal, which Linux sends
	// when the thread that started it ends: keep main on one thread.
	runtime.LockOSThread()

	portmap := flag.String("portmap", "", "the portmap binary (default: portmap beside this program)")
	verbose := flag.Bool("v", false, "show portmap's logs as they come")
	timeout := flag.Duration("timeout", demoTimeout, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := &demo{portmap: *portmap, verbose: *verbose, out: os.Stdout}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

// demo is one run of the demo.
type demo struct {
	portmap string
	verbose bool
	out     io.Writer

	pm *portmapProc
}

// step is one published port and the traffic sent through it.
type step struct {
	spec string
	send func(context.Context, netip.AddrPort) (result, error)
}

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	if err := d.findPortmap(); err != nil {
		return err
	}
	be, err := startBackend()
	if err != nil {
		return err
	}
	defer be.close()
	fmt.Fprintf(d.out, "backend on 127.0.0.1: http :%d, tcp echo :%d, udp echo :%d\n",
		be.http.Port(), be.tcpEcho.Port(), be.udpEcho.Port())

	steps := plan(be)
	bindings, err := d.publish(ctx, steps)
	defer d.shutdown()
	if err != nil {
		return d.withLogs(err)
	}
	if err := d.exercise(ctx, steps, bindings); err != nil {
		return d.withLogs(err)
	}
	if err := d.stop(ctx, bindings); err != nil {
		return d.withLogs(err)
	}
	fmt.Fprintf(d.out, "demo ok in %s\n", elapsed(time.Since(start)))
	return nil
}

// findPortmap settles which portmap binary to run and checks that it is
// there.
func (d *demo) findPortmap() error {
	if d.portmap == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding portmap: %w; give its path with -portmap", err)
		}
		d.portmap = filepath.Join(filepath.Dir(exe), "portmap")
	}
	if _, err := os.Stat(d.portmap); err != nil {
		return fmt.Errorf("finding portmap: %w (make build puts it in bin/)", err)
	}
	return nil
}

// plan lists what to publish: each backend on a loopback port the kernel
// picks, and the HTTP server on IPv6 too where the host has it.
func plan(be *backend) []step {
	steps := []step{
		{"127.0.0.1:0:" + be.http.String(), httpGet},
		{"127.0.0.1:0:" + be.tcpEcho.String(), func(ctx context.Context, a netip.AddrPort) (result, error) {
			return tcpEcho(ctx, a, "hello through tcp")
		}},
		{"127.0.0.1:0:" + be.udpEcho.String() + "/udp", func(ctx context.Context, a netip.AddrPort) (result, error) {
			return udpEcho(ctx, a, "hello through udp")
		}},
	}
	if hasIPv6() {
		steps = append(steps, step{"[::1]:0:" + be.http.String(), httpGet})
	}
	return steps
}

// publish starts portmap with the specs of steps and waits for its
// bindings.
func (d *demo) publish(ctx context.Context, steps []step) ([]published, error) {
	var specs, shown []string
	for _, s := range steps {
		specs = append(specs, s.spec)
		shown = append(shown, shellQuote(s.spec))
	}
	fmt.Fprintf(d.out, "\n$ %s -p %s\n", d.portmap, strings.Join(shown, " \\\n    -p "))

	pm, err := startPortmap(d.portmap, specs, d.verbose)
	if err != nil {
		return nil, err
	}
	d.pm = pm
	bindings, err := pm.bindings(ctx, len(steps))
	if err != nil {
		return nil, err
	}
	for _, b := range bindings {
		fmt.Fprintf(d.out, "  %s %s -> %s\n", b.proto, b.host, b.backend)
	}
	return bindings, nil
}

// exercise sends each step's traffic through its binding and reports it.
func (d *demo) exercise(ctx context.Context, steps []step, bindings []published) error {
	fmt.Fprintf(d.out, "\ntraffic through the published ports:\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	defer tw.Flush()

	for i, s := range steps {
		r, err := s.send(ctx, bindings[i].host)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t-> %s\t%d bytes\t%s\n", r.what, r.reply, r.bytes, elapsed(r.took))
	}
	return nil
}

// stop interrupts portmap, waits for its exit and checks that the
// published ports are free again.
func (d *demo) stop(ctx context.Context, bindings []published) error {
	start := time.Now()
	if err := d.pm.interrupt(ctx); err != nil {
		return err
	}
	took := time.Since(start)

	var ports []string
	for _, b := range bindings {
		if err := checkFree(b); err != nil {
			return err
		}
		ports = append(ports, fmt.Sprint(b.host.Port()))
	}
	fmt.Fprintf(d.out, "\nstopped portmap with SIGINT: exit status 0 after %s;\n", elapsed(took))
	fmt.Fprintf(d.out, "ports %s are free again\n", strings.Join(ports, ", "))
	return nil
}

// shutdown stops portmap if it still runs: with SIGINT, then by force.
func (d *demo) shutdown() {
	if d.pm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	select {
	case <-d.pm.done:
	default:
		_ = d.pm.interrupt(ctx)
	}
	d.pm.kill()
}

// withLogs adds portmap's logs to err, unless they were shown already.
func (d *demo) withLogs(err error) error {
	if d.verbose || d.pm == nil || d.pm.logs.String() == "" {
		return err
	}
	return fmt.Errorf("%w\nportmap's logs:\n%s", err, d.pm.logs.String())
}

// checkFree binds b's host address again, to show nothing holds it.
func checkFree(b published) error {
	var c io.Closer
	var err error
	if b.proto == "udp" {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(b.host))
	} else {
		c, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(b.host))
	}
	if err != nil {
		return fmt.Errorf("%s %s still in use after portmap exited: %w", b.proto, b.host, err)
	}
	return c.Close()
}

// shellQuote quotes a spec whose brackets a shell would take as a
// pattern.
func shellQuote(spec string) string {
	if strings.ContainsAny(spec, "[]") {
		return "'" + spec + "'"
	}
	return spec
}

// hasIPv6 tells whether [::1] can be bound here.
func hasIPv6() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
