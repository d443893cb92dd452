//go:build linux

package portmappertest_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/docker/docker/libnetwork/types"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/portmappertest"
)

// A daemon's test maps a port through StartProxy, once with a proxy that
// fails and once with one that is ready, and checks what its code asked
// for. In a test, use New(t, ...) instead of NewInDir: it cleans up by
// itself.
func Example() {
	dir, err := os.MkdirTemp("", "fake-proxies")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	pb := types.PortBinding{
		Proto: types.TCP, HostIP: net.IPv4(127, 0, 0, 1), HostPort: 8080,
		IP: net.ParseIP("172.17.0.2"), Port: 80,
	}

	failing := newFake(dir, "failing", portmappertest.Behavior{
		Mode: portmappertest.Fail, Message: "listen tcp4 127.0.0.1:8080: bind: address already in use",
	})
	defer failing.Close()
	_, err = portmapper.StartProxy(pb, failing.Path(), nil)
	fmt.Println(err)

	ready := newFake(dir, "ready", portmappertest.Behavior{})
	defer ready.Close()
	stop, err := portmapper.StartProxy(pb, ready.Path(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	launch := ready.Launches()[0]
	fmt.Println(launch.Args[1:])
	fmt.Println("fds:", launch.FDs)

	if err := stop(); err != nil {
		fmt.Println(err)
	}
	launch = ready.Launch(launch.Pid)
	fmt.Println("signals:", launch.Signals, "exit status:", launch.ExitCode)
	// Output:
	// error starting userland proxy: listen tcp4 127.0.0.1:8080: bind: address already in use
	// [-proto tcp -host-ip 127.0.0.1 -host-port 8080 -container-ip 172.17.0.2 -container-port 80]
	// fds: [0 1 2 3]
	// signals: [interrupt] exit status: 0
}

func newFake(parent, name string, b portmappertest.Behavior) *portmappertest.Fake {
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		panic(err)
	}
	f, err := portmappertest.NewInDir(dir, b)
	if err != nil {
		panic(err)
	}
	return f
}
