//go:build linux

package forward

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// family is the address family of ip.
func family(ip IP) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// sockaddr converts e for the syscall package of x/sys.
func sockaddr(e Endpoint) unix.Sockaddr {
	if e.IP.Is4() {
		return &unix.SockaddrInet4{Port: int(e.Port), Addr: [4]byte(e.IP[12:])}
	}
	return &unix.SockaddrInet6{Port: int(e.Port), Addr: e.IP}
}

// fromSockaddr converts a local or peer address returned by the kernel.
func fromSockaddr(sa unix.Sockaddr) Endpoint {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return Endpoint{IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), uint16(sa.Port)}
	case *unix.SockaddrInet6:
		return Endpoint{sa.Addr, uint16(sa.Port)}
	}
	return Endpoint{}
}

// rawAddr holds an IPv4 or IPv6 socket address as the kernel writes it,
// so that the UDP hot path can receive and send without allocating.
type rawAddr struct {
	sa  unix.RawSockaddrInet6 // large enough for either family
	len uint32
}

// endpoint is the address in r, IPv4-mapped if it came in on an IPv6
// socket.
func (r *rawAddr) endpoint() Endpoint {
	switch r.sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		return Endpoint{IPv4(sa4.Addr[0], sa4.Addr[1], sa4.Addr[2], sa4.Addr[3]), ntohs(sa4.Port)}
	case unix.AF_INET6:
		return Endpoint{r.sa.Addr, ntohs(r.sa.Port)}
	}
	return Endpoint{}
}

// ntohs converts a port as the kernel stores it.
func ntohs(port uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = port
	return binary.BigEndian.Uint16(b[:])
}
