//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/libnetwork/types"
	"golang.org/x/sys/unix"
)

// Peer names, in the order of the table's columns.
const (
	peerDirect = "direct"
	peerFloor  = "floor"
	peerDocker = "docker-proxy"
	peerSocat  = "socat"
	peerOurs   = "ours"
)

var allPeers = []string{peerDirect, peerFloor, peerDocker, peerSocat, peerOurs}

// loopback is where every frontend and backend listens.
var loopback = netip.MustParseAddr("127.0.0.1")

// A peer is one of the things measured side by side.
type peer struct {
	name string
	path string // the binary; empty for direct

	// listenFD says the launcher hands the peer a bound socket on fd 4.
	// Without it the peer binds its port itself.
	listenFD bool

	about   string // where the binary came from, for the report
	missing string // why the peer is not in the run; empty when it is
}

// An instance is one running frontend forwarding to a backend.
type instance struct {
	proto string
	addr  netip.AddrPort // where clients send
	stop  func() error   // nil-safe through [instance.close]
}

// close stops the instance, once.
func (in *instance) close() error {
	if in == nil || in.stop == nil {
		return nil
	}
	stop := in.stop
	in.stop = nil
	return stop()
}

// pid returns the process serving the instance.
func (in *instance) pid() (int, error) {
	return proxyPID(in.proto, in.addr.Port())
}

// start runs one instance of p forwarding proto from a fresh port on
// loopback to backend. For direct the frontend is the backend itself.
func (p *peer) start(proto string, backend netip.AddrPort) (*instance, error) {
	switch p.name {
	case peerDirect:
		return &instance{proto: proto, addr: backend}, nil
	case peerSocat:
		return startSocat(p.path, backend)
	}
	if p.listenFD {
		return p.startWithSocket(proto, backend)
	}
	return p.startBinding(proto, backend)
}

// startWithSocket creates and binds the frontend socket the way a daemon
// does, hands it to the proxy and closes the bench's copy.
func (p *peer) startWithSocket(proto string, backend netip.AddrPort) (*instance, error) {
	sock, port, err := bindSocket(proto)
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	stop, err := startProxy(binding(proto, port, backend), p.path, sock)
	if err != nil {
		return nil, err
	}
	return &instance{proto: proto, addr: netip.AddrPortFrom(loopback, port), stop: stop}, nil
}

// startBinding lets the proxy bind a port the bench found free. Another
// process may take the port in between, so a failed start is retried.
func (p *peer) startBinding(proto string, backend netip.AddrPort) (*instance, error) {
	var err error
	for try := 0; try < 3; try++ {
		var port uint16
		if port, err = freePort(proto); err != nil {
			return nil, err
		}
		var stop func() error
		stop, err = startProxy(binding(proto, port, backend), p.path, nil)
		if err == nil {
			addr := netip.AddrPortFrom(loopback, port)
			return &instance{proto: proto, addr: addr, stop: stop}, nil
		}
	}
	return nil, err
}

func binding(proto string, port uint16, backend netip.AddrPort) types.PortBinding {
	pb := types.PortBinding{
		Proto:    types.TCP,
		IP:       backend.Addr().AsSlice(),
		Port:     backend.Port(),
		HostIP:   loopback.AsSlice(),
		HostPort: port,
	}
	if proto == "udp" {
		pb.Proto = types.UDP
	}
	return pb
}

// bindSocket creates a close-on-exec socket on a free loopback port, bound
// and, for TCP, listening, as a daemon does before starting a proxy.
func bindSocket(proto string) (*os.File, uint16, error) {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("creating a %s socket: %w", proto, err)
	}
	f := os.NewFile(uintptr(fd), proto+"-listener")
	port, err := bindLoopback(fd, typ)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("binding a %s socket: %w", proto, err)
	}
	return f, port, nil
}

func bindLoopback(fd, typ int) (uint16, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return 0, err
	}
	sa := &unix.SockaddrInet4{Addr: loopback.As4()}
	if err := unix.Bind(fd, sa); err != nil {
		return 0, err
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return 0, err
		}
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	return uint16(got.(*unix.SockaddrInet4).Port), nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(proto string) (uint16, error) {
	sock, port, err := bindSocket(proto)
	if err != nil {
		return 0, err
	}
	sock.Close()
	return port, nil
}

// startSocat runs socat as a forking TCP forwarder and waits until it
// listens. Its per-connection children are stopped with it.
func startSocat(path string, backend netip.AddrPort) (*instance, error) {
	port, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path,
		fmt.Sprintf("TCP-LISTEN:%d,bind=%s,fork,reuseaddr", port, loopback),
		fmt.Sprintf("TCP:%s", backend))
	c, err := spawn(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting socat: %w", err)
	}
	stop := func() error {
		for _, kid := range childrenOf(c.pid()) {
			unix.Kill(kid, unix.SIGTERM)
		}
		return c.stop()
	}
	if err := waitListening(port, c); err != nil {
		stop()
		return nil, fmt.Errorf("starting socat: %w", err)
	}
	return &instance{proto: "tcp", addr: netip.AddrPortFrom(loopback, port), stop: stop}, nil
}

// waitListening polls /proc/net/tcp until a socket listens on the loopback
// port, without connecting to it.
func waitListening(port uint16, c *child) error {
	want := fmt.Sprintf("0100007F:%04X 00000000:0000 0A", port)
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return err
		}
		if strings.Contains(string(b), want) {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("exited: %v", c.err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	return fmt.Errorf("not listening after %v", readyTimeout)
}

// findPeers locates, builds or fetches every selected peer. A peer that
// cannot be had is kept with the reason, so that the report says so.
func findPeers(ctx context.Context, cfg config, log io.Writer) ([]*peer, error) {
	var peers []*peer
	for _, name := range cfg.peers {
		p := &peer{name: name}
		var err error
		switch name {
		case peerDirect:
			p.about = "client to backend, no proxy"
		case peerFloor:
			err = buildFloor(ctx, cfg, p)
		case peerDocker:
			findDocker(ctx, cfg, p, log)
		case peerSocat:
			findSocat(p)
		case peerOurs:
			findOurs(ctx, cfg, p)
		default:
			return nil, fmt.Errorf("unknown peer %q (known: %s)",
				name, strings.Join(allPeers, ", "))
		}
		if err != nil {
			return nil, err
		}
		if p.missing != "" {
			fmt.Fprintf(log, "%s: n/a: %s\n", p.name, p.missing)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// buildFloor builds the floor binary, the same way make builds ours.
func buildFloor(ctx context.Context, cfg config, p *peer) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building the floor peer: %w", err)
	}
	p.path = filepath.Join(cfg.out, "peers", "floor")
	p.listenFD = true
	p.about = "bench/floor: reports ready, forwards nothing"
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", p.path, floorPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the floor peer: %w\n%s", err, out)
	}
	return nil
}

const floorPackage = "github.com/userland-proxy/portmapper/bench/floor"

// findOurs takes the project's proxy from the bin directory.
func findOurs(ctx context.Context, cfg config, p *peer) {
	p.path = filepath.Join(cfg.bin, "userland-proxy")
	p.listenFD = true
	if _, err := os.Stat(p.path); err != nil {
		p.missing = fmt.Sprintf("%s not built (make build)", p.path)
		return
	}
	p.about = p.path
	if v := versionLine(ctx, p.path, "-v"); v != "" {
		p.about += ", " + v
	}
	if rev := sourceRevision(ctx); rev != "" {
		p.about += ", checkout " + rev
	}
}

// sourceRevision names the checked-out commit, marked -dirty when the tree
// has changes, or "" outside a git checkout.
func sourceRevision(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// findSocat uses socat when it is installed; the bench never installs it.
func findSocat(p *peer) {
	path, err := exec.LookPath("socat")
	if err != nil {
		p.missing = "socat is not installed"
		return
	}
	p.path = path
	p.about = path
	if v := versionLine(context.Background(), path, "-V"); v != "" {
		p.about += ", " + v
	}
}

// versionLine returns the first line path prints with flag that mentions a
// version, or "".
func versionLine(ctx context.Context, path, flag string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, flag).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(strings.ToLower(line), "version") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// knowsListenFD says whether the proxy at path accepts -use-listen-fd, from
// its usage text.
func knowsListenFD(ctx context.Context, path string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "-h").CombinedOutput()
	return strings.Contains(string(out), "use-listen-fd")
}
