//go:build linux

package publish

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// listenBacklog is the accept queue asked for; the kernel caps it at
// net.core.somaxconn.
const listenBacklog = 4096

// socketKind is how the socket of a protocol is made.
type socketKind struct {
	sotype, proto int
	stream        bool // listens, and may rebind over TIME_WAIT
}

var kinds = map[string]socketKind{
	"tcp":  {unix.SOCK_STREAM, unix.IPPROTO_TCP, true},
	"udp":  {unix.SOCK_DGRAM, unix.IPPROTO_UDP, false},
	"sctp": {unix.SOCK_STREAM, unix.IPPROTO_SCTP, true},
}

// listen creates a socket for proto bound to addr, listening if proto is
// a stream, and returns it with the address it got. An IPv6 socket is
// IPv6 only, so that it can share its port with an IPv4 one.
func listen(proto string, addr netip.AddrPort) (_ *os.File, _ netip.AddrPort, err error) {
	k, ok := kinds[proto]
	if !ok {
		return nil, addr, fmt.Errorf("unknown protocol %q", proto)
	}
	fam := unix.AF_INET
	if addr.Addr().Is6() {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, k.sotype|unix.SOCK_CLOEXEC, k.proto)
	if err != nil {
		return nil, addr, fmt.Errorf("creating the socket: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	if err := setOptions(fd, fam, k); err != nil {
		return nil, addr, err
	}
	if err := unix.Bind(fd, sockaddr(addr)); err != nil {
		return nil, addr, err
	}
	if k.stream {
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return nil, addr, fmt.Errorf("listening: %w", err)
		}
	}

	bound, err := boundAddr(fd)
	if err != nil {
		return nil, addr, err
	}
	return os.NewFile(uintptr(fd), proto+":"+bound.String()), bound, nil
}

// setOptions sets what docker sets: SO_REUSEADDR on stream sockets, so a
// port can be published again while old connections sit in TIME_WAIT,
// and IPV6_V6ONLY on IPv6 ones.
func setOptions(fd, fam int, k socketKind) error {
	if k.stream {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("setting SO_REUSEADDR: %w", err)
		}
	}
	if fam == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fmt.Errorf("setting IPV6_V6ONLY: %w", err)
		}
	}
	return nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// boundAddr reads the address fd is bound to, port included.
func boundAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading the bound address: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("reading the bound address: unexpected %T", sa)
}

// canBindIPv6 tries to bind a UDP socket to [::1]:0.
func canBindIPv6() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}) == nil
}
