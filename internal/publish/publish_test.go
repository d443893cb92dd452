//go:build linux

package publish

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/portmappertest"
)

func TestPublishHandsOverBoundSockets(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	rec := newLogRecorder()
	texts := []string{
		"127.0.0.1:0:127.0.0.2:80",
		"127.0.0.1::127.0.0.2:53/udp",
	}
	if hostHasIPv6() {
		texts = append(texts, "[::1]:0:127.0.0.2:80")
	}

	p, err := publishLoopback(t, testConfig(fake.Path(), rec), texts...)
	if err != nil {
		t.Fatal(err)
	}
	bindings := p.Bindings()
	if len(bindings) != len(texts) {
		t.Fatalf("got %d bindings; want %d: %v", len(bindings), len(texts), bindings)
	}

	launches := fake.Launches()
	for i, b := range bindings {
		checkLaunch(t, b, launches[i])
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, b := range bindings {
		if !portFree(b.Proto, b.Host) {
			t.Errorf("%s is still bound after Stop", b)
		}
	}
	for _, l := range fake.Launches() {
		if !slices.Equal(l.Signals, []string{"interrupt"}) || !l.Exited {
			t.Errorf("proxy %d: signals %v, exited %v; want one interrupt and an exit",
				l.Pid, l.Signals, l.Exited)
		}
	}
}

// checkLaunch checks that a proxy was started for b with its socket.
func checkLaunch(t *testing.T, b Binding, l portmappertest.Launch) {
	t.Helper()
	if b.Host.Port() == 0 {
		t.Errorf("%s: host port 0; want the port the kernel picked", b)
	}
	want := []string{"-proto", b.Proto, "-host-ip", b.Host.Addr().String(),
		"-host-port", fmt.Sprint(b.Host.Port()), "-container-ip", b.Backend.Addr().String(),
		"-container-port", fmt.Sprint(b.Backend.Port()), "-use-listen-fd"}
	if !slices.Equal(l.Args[1:], want) {
		t.Errorf("%s: proxy args %q; want %q", b, l.Args[1:], want)
	}

	s := l.ListenSocket
	if s == nil {
		t.Fatalf("%s: the proxy got no socket on fd 4", b)
	}
	family := map[bool]string{true: "ipv4", false: "ipv6"}[b.Host.Addr().Is4()]
	if s.Proto != b.Proto || s.Family != family || s.Addr != b.Host.String() ||
		s.Listening != (b.Proto == "tcp") {
		t.Errorf("%s: socket on fd 4 is %+v", b, *s)
	}
}

func TestPublishEveryAddress(t *testing.T) {
	needIPv6(t)
	fake := portmappertest.New(t, portmappertest.Behavior{})
	fixed := consecutivePorts(t, 1)

	tests := []struct {
		name, spec string
		port       uint16
	}{
		{"ephemeral port", "127.0.0.2:80", 0},
		{"fixed port", fmt.Sprintf("%d:127.0.0.2:80", fixed), fixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := publishLoopback(t, testConfig(fake.Path(), newLogRecorder()), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			b := p.Bindings()
			if len(b) != 2 || !b[0].Host.Addr().Is4() || !b[1].Host.Addr().Is6() {
				t.Fatalf("bindings %v; want one IPv4 and one IPv6", b)
			}
			if b[0].Host.Port() != b[1].Host.Port() || b[0].Host.Port() == 0 {
				t.Errorf("bindings %v; want the same port on both", b)
			}
			if tt.port != 0 && b[0].Host.Port() != tt.port {
				t.Errorf("bindings %v; want port %d", b, tt.port)
			}
		})
	}
}

func TestPublishRange(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	base := consecutivePorts(t, 3)
	spec := fmt.Sprintf("127.0.0.1:%d-%d:127.0.0.2:9000-9002", base, base+2)

	p, err := publishLoopback(t, testConfig(fake.Path(), newLogRecorder()), spec)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range p.Bindings() {
		got = append(got, b.String())
	}
	want := []string{
		fmt.Sprintf("tcp 127.0.0.1:%d -> 127.0.0.2:9000", base),
		fmt.Sprintf("tcp 127.0.0.1:%d -> 127.0.0.2:9001", base+1),
		fmt.Sprintf("tcp 127.0.0.1:%d -> 127.0.0.2:9002", base+2),
	}
	if !slices.Equal(got, want) {
		t.Errorf("bindings %q; want %q", got, want)
	}
}

func TestPublishPortInUse(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := fmt.Sprintf("127.0.0.1:%d:127.0.0.2:80", taken.Addr().(*net.TCPAddr).Port)

	fds := openFDs(t)
	_, err = publishLoopback(t, testConfig(fake.Path(), newLogRecorder()),
		"127.0.0.1:0:127.0.0.2:81", bad)

	want := fmt.Sprintf("publishing %q: binding tcp %s: address already in use",
		bad, taken.Addr())
	if err == nil || err.Error() != want {
		t.Fatalf("error %v; want %q", err, want)
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("error %v does not wrap EADDRINUSE", err)
	}
	if n := len(fake.Launches()); n != 0 {
		t.Errorf("%d proxies started; want none before every socket is bound", n)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("%d descriptors open; want %d as before", got, fds)
	}
}

func TestPublishProxyFails(t *testing.T) {
	const words = "cannot serve: the backend is on the moon"
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Fail, Message: words,
	})

	fds := openFDs(t)
	_, err := publishLoopback(t, testConfig(fake.Path(), newLogRecorder()),
		"127.0.0.1:0:127.0.0.2:80")

	if err == nil || !strings.HasPrefix(err.Error(), `publishing "127.0.0.1:0:127.0.0.2:80": `) ||
		!strings.HasSuffix(err.Error(), words) {
		t.Fatalf("error %v; want it to name the spec and end with the proxy's words", err)
	}
	var se *portmapper.StartError
	if !errors.As(err, &se) {
		t.Errorf("error %v does not wrap a *portmapper.StartError", err)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("%d descriptors open; want %d as before", got, fds)
	}
}

func TestPublishStopsStartedOnFailure(t *testing.T) {
	good := portmappertest.New(t, portmappertest.Behavior{})
	bad := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Fail, Message: "no such thing",
	})
	p := newPublisher(testConfig(good.Path(), newLogRecorder()))
	calls := 0
	p.start = func(ctx context.Context, cfg portmapper.Config) (*portmapper.Proxy, error) {
		if calls++; calls == 3 {
			cfg.ProxyPath = bad.Path()
		}
		return portmapper.Start(ctx, cfg)
	}

	_, err := p.publish(context.Background(), specs(t,
		"127.0.0.1:0:127.0.0.2:80", "127.0.0.1:0:127.0.0.2:81/udp", "127.0.0.1:0:127.0.0.2:82"))
	if err == nil || !strings.Contains(err.Error(), `"127.0.0.1:0:127.0.0.2:82"`) {
		t.Fatalf("error %v; want it to name the third spec", err)
	}
	launches := good.Launches()
	if len(launches) != 2 {
		t.Fatalf("%d good proxies started; want 2", len(launches))
	}
	for _, l := range launches {
		if !l.Exited || len(l.Signals) == 0 {
			t.Errorf("proxy %d was not stopped: signals %v, exited %v",
				l.Pid, l.Signals, l.Exited)
		}
	}
}

func TestPublishRestartsDeadProxy(t *testing.T) {
	tests := []struct {
		name string
		code int
		exit string
	}{
		{"failure", 3, "exited with status 3"},
		{"clean exit", 0, "exited with status 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testRestart(t, tt.code, tt.exit)
		})
	}
}

func testRestart(t *testing.T, code int, exit string) {
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Dies, Message: "lost my way", ExitCode: code,
		Delay: 20 * time.Millisecond,
	})
	rec := newLogRecorder()
	p, err := publishLoopback(t, testConfig(fake.Path(), rec), "127.0.0.1:0:127.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}

	rec.waitFor(t, "proxy started")
	for range 2 {
		died := rec.waitFor(t, "userland proxy exited unexpectedly")
		if !strings.Contains(died, exit) || !strings.Contains(died, "lost my way") {
			t.Errorf("log %q; want %q and the proxy's last words", died, exit)
		}
		rec.waitFor(t, "restarting proxy")
		rec.waitFor(t, "proxy restarted")
	}
	// The last proxy may die as it is stopped, so Stop may report it.
	_ = p.Stop()

	host := p.Bindings()[0].Host.String()
	for _, l := range fake.Launches() {
		if l.ListenSocket == nil || l.ListenSocket.Addr != host {
			t.Errorf("proxy %d served %+v; want the socket on %s", l.Pid, l.ListenSocket, host)
		}
	}
}

func TestPublishWithoutRestartReportsDeath(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Dies, Message: "lost my way", ExitCode: 3,
		Delay: 20 * time.Millisecond,
	})
	other := portmappertest.New(t, portmappertest.Behavior{})
	cfg := testConfig(fake.Path(), newLogRecorder())
	cfg.Restart = false

	p := newPublisher(cfg)
	calls := 0
	p.start = func(ctx context.Context, c portmapper.Config) (*portmapper.Proxy, error) {
		if calls++; calls == 2 {
			c.ProxyPath = other.Path()
		}
		return portmapper.Start(ctx, c)
	}
	if _, err := p.publish(context.Background(),
		specs(t, "127.0.0.1:0:127.0.0.2:80", "127.0.0.1:0:127.0.0.2:81")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := p.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), `proxy for "127.0.0.1:0:127.0.0.2:80"`) ||
		!strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("Wait: %v; want the death of the first proxy", err)
	}
	if n := len(fake.Launches()); n != 1 {
		t.Errorf("the dying proxy was started %d times; want once", n)
	}
	for _, l := range other.Launches() {
		if !l.Exited || !slices.Equal(l.Signals, []string{"interrupt"}) {
			t.Errorf("the other proxy was not stopped: %+v", l)
		}
	}
}

func TestWaitStopsOnContext(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	p, err := publishLoopback(t, testConfig(fake.Path(), newLogRecorder()),
		"127.0.0.1:0:127.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx); err != nil {
		t.Errorf("Wait: %v; want nil", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v; want nil", err)
	}
	if l := fake.Launches()[0]; !l.Exited {
		t.Errorf("proxy still running after Wait: %+v", l)
	}
}

func TestPublishSCTPWithoutKernelSupport(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err == nil {
		unix.Close(fd)
		t.Skip("this host has SCTP")
	}
	fake := portmappertest.New(t, portmappertest.Behavior{})

	_, err = publishLoopback(t, testConfig(fake.Path(), newLogRecorder()),
		"127.0.0.1:0:127.0.0.2:80/sctp")
	want := `publishing "127.0.0.1:0:127.0.0.2:80/sctp": binding sctp 127.0.0.1:0: ` +
		"creating the socket: protocol not supported"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v; want %q", err, want)
	}
}

func TestBindingString(t *testing.T) {
	b := Binding{
		Proto:   "udp",
		Host:    netip.MustParseAddrPort("[::1]:8080"),
		Backend: netip.MustParseAddrPort("127.0.0.1:80"),
	}
	if got, want := b.String(), "udp [::1]:8080 -> 127.0.0.1:80"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
