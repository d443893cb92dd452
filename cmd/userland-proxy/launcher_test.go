//go:build linux

package main

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/libnetwork/types"
	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper"
)

// TestThroughLauncher starts the binary the way a daemon would, through
// portmapper.StartProxy, with and without a handed-over socket, moves
// traffic and stops it.
func TestThroughLauncher(t *testing.T) {
	tcpBackend := serveTCP(t, netip.AddrPortFrom(lo4, 0), echo)
	udpBackend := serveUDP(t, netip.AddrPortFrom(lo4, 0))

	tests := []struct {
		name     string
		proto    types.Protocol
		listenFD bool
	}{
		{"tcp with listen fd", types.TCP, true},
		{"tcp binding itself", types.TCP, false},
		{"udp with listen fd", types.UDP, true},
		{"udp binding itself", types.UDP, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend, network, sotype := tcpBackend.addr(), "tcp", unix.SOCK_STREAM
			if tt.proto == types.UDP {
				backend, network, sotype = udpBackend.addr(), "udp", unix.SOCK_DGRAM
			}
			host := freePort(t, network, lo4)
			sock := socketOrNil(t, tt.listenFD, sotype, &host)

			pb := types.PortBinding{Proto: tt.proto, IP: backend.Addr().AsSlice(),
				Port: backend.Port(), HostIP: host.Addr().AsSlice(), HostPort: host.Port()}
			stop, err := portmapper.StartProxy(pb, proxyBin, sock)
			if err != nil {
				t.Fatalf("StartProxy: %v", err)
			}
			defer stop()

			if tt.proto == types.TCP {
				if err := ping(dial(t, host), "through the launcher"); err != nil {
					t.Errorf("echo: %v", err)
				}
			} else {
				got, _, err := exchange(udpClient(t, lo4), host, []byte("datagram"), waitLimit)
				if err != nil || string(got) != "datagram" {
					t.Errorf("echo: %q, %v", got, err)
				}
			}

			start := time.Now()
			if err := stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("stop took %v", d)
			}
			if tt.proto == types.TCP && !tt.listenFD {
				ln, err := net.Listen("tcp", host.String())
				if err != nil {
					t.Fatalf("port not free after stop: %v", err)
				}
				ln.Close()
			}
		})
	}
}

// socketOrNil makes the socket to hand over, updating host to its port,
// or returns nil when the proxy is to bind host itself.
func socketOrNil(t *testing.T, want bool, sotype int, host *netip.AddrPort) *os.File {
	if !want {
		return nil
	}
	f, addr := socketFile(t, sotype, *host, true)
	*host = addr
	return f
}
