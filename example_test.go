//go:build linux

package portmapper_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/docker/docker/libnetwork/types"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/portmappertest"
)

// exampleProxy stands in for the daemon's userland-proxy binary.
func exampleProxy() (path string, cleanup func()) {
	dir, err := os.MkdirTemp("", "portmapper-example")
	if err != nil {
		panic(err)
	}
	fake, err := portmappertest.NewInDir(dir, portmappertest.Behavior{})
	if err != nil {
		panic(err)
	}
	return fake.Path(), func() {
		fake.Close()
		os.RemoveAll(dir)
	}
}

// listenLoopback binds and listens as a daemon does before it starts the
// proxy, so that the port is the daemon's whatever the proxy does.
func listenLoopback() (*os.File, uint16) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		panic(err)
	}
	return f, uint16(ln.Addr().(*net.TCPAddr).Port)
}

// A daemon publishes a container's port 80 on 127.0.0.1, handing the proxy
// a socket it bound itself. Switching from libnetwork's portmapper is a
// change of import path; the call stays the same.
func ExampleStartProxy() {
	proxyPath, cleanup := exampleProxy()
	defer cleanup()
	sock, port := listenLoopback()
	defer sock.Close() // still ours: StartProxy does not close it

	pb := types.PortBinding{
		Proto:    types.TCP,
		HostIP:   net.IPv4(127, 0, 0, 1),
		HostPort: port,
		IP:       net.ParseIP("172.17.0.2"),
		Port:     80,
	}
	stop, err := portmapper.StartProxy(pb, proxyPath, sock)
	if err != nil {
		fmt.Println("publishing failed:", err)
		return
	}
	fmt.Println("proxy is serving")

	if err := stop(); err != nil {
		fmt.Println("stopping failed:", err)
		return
	}
	fmt.Println("proxy stopped")
	// Output:
	// proxy is serving
	// proxy stopped
}

// Start takes a context, timeouts and a logger, and hands back a Proxy
// whose end the daemon can watch.
func ExampleStart() {
	proxyPath, cleanup := exampleProxy()
	defer cleanup()
	sock, port := listenLoopback()
	defer sock.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := portmapper.Start(ctx, portmapper.Config{
		Binding: types.PortBinding{
			Proto: types.TCP, HostIP: net.IPv4(127, 0, 0, 1), HostPort: port,
			IP: net.ParseIP("172.17.0.2"), Port: 80,
		},
		ProxyPath:  proxyPath,
		ListenSock: sock,
		StopGrace:  time.Second,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println("publishing failed:", err)
		return
	}

	watched := make(chan struct{})
	go func() {
		defer close(watched)
		<-p.Done()
		if err := p.Err(); err != nil {
			fmt.Println("proxy died:", err) // a daemon would restart it here
			return
		}
		fmt.Println("proxy ended as asked")
	}()

	if err := p.Stop(); err != nil {
		fmt.Println("stopping failed:", err)
	}
	<-watched
	// Output:
	// proxy ended as asked
}
