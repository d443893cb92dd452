//go:build linux

package forward

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHandedOverSocketChecked checks that New refuses a handed-over socket
// that it could not serve, saying why.
func TestHandedOverSocketChecked(t *testing.T) {
	v4 := netip.AddrPortFrom(loopback("4"), 0)
	v6 := netip.AddrPortFrom(loopback("6"), 0)
	backend := ep(netip.MustParseAddrPort("127.0.0.1:9"))

	tests := []struct {
		name   string
		proto  string
		front  netip.AddrPort // host address given with the socket
		socket func(t *testing.T) *os.File
		want   string
	}{
		{
			name: "udp socket for tcp", proto: "tcp", front: v4,
			socket: func(t *testing.T) *os.File { return listenerFile(t, unix.SOCK_DGRAM, v4, true) },
			want:   "socket is udp, want tcp",
		},
		{
			name: "tcp socket for udp", proto: "udp", front: v4,
			socket: func(t *testing.T) *os.File { return listenerFile(t, unix.SOCK_STREAM, v4, true) },
			want:   "socket is tcp, want udp",
		},
		{
			name: "v6 socket for a v4 address", proto: "tcp", front: v4,
			socket: func(t *testing.T) *os.File { return listenerFile(t, unix.SOCK_STREAM, v6, true) },
			want:   "family is IPv6, want IPv4",
		},
		{
			name: "v4 socket for a v6 address", proto: "udp", front: v6,
			socket: func(t *testing.T) *os.File { return listenerFile(t, unix.SOCK_DGRAM, v4, true) },
			want:   "family is IPv4, want IPv6",
		},
		{
			name: "tcp bound but not listening", proto: "tcp", front: v4,
			socket: boundStream, want: "not listening",
		},
		{
			name: "udp not bound", proto: "udp", front: v4,
			socket: unboundDatagram, want: "not bound",
		},
		{
			name: "not a socket", proto: "tcp", front: v4,
			socket: pipeFile, want: "not a socket",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Config{Proto: tt.proto, Frontend: ep(tt.front), Backend: backend,
				Listener: tt.socket(t)})
			if err == nil {
				f.Close()
				t.Fatalf("New succeeded; want an error saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v; want it to say %q", err, tt.want)
			}
		})
	}
}

func boundStream(t *testing.T) *os.File {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bound")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func unboundDatagram(t *testing.T) *os.File {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "unbound")
	t.Cleanup(func() { f.Close() })
	return f
}

func pipeFile(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		w.Close()
	})
	return r
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown protocol", Config{Proto: "icmp", Frontend: ep(frontend("4")),
			Backend: ep(netip.MustParseAddrPort("127.0.0.1:9"))}, "unsupported protocol"},
		{"no backend port", Config{Proto: "tcp", Frontend: ep(frontend("4")),
			Backend: ep(netip.MustParseAddrPort("127.0.0.1:0"))}, "invalid backend"},
		{"address in use", Config{Proto: "udp", Frontend: ep(takenUDP(t)),
			Backend: ep(netip.MustParseAddrPort("127.0.0.1:9"))}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.cfg)
			if err == nil {
				f.Close()
				t.Fatalf("New succeeded; want an error saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v; want it to say %q", err, tt.want)
			}
		})
	}
}

// takenUDP returns an address that a UDP socket holds, with
// SO_REUSEADDR set, which must not let the proxy share it.
func takenUDP(t *testing.T) netip.AddrPort {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return ap(localAddr(fd))
}
