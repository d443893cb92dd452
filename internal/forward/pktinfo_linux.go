//go:build linux

package forward

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// packetDst returns the destination address of a received datagram, from
// its IP_PKTINFO or IPV6_PKTINFO control message, and whether there was
// one. An IPv4 datagram on a dual-stack socket comes with an IPv4-mapped
// IPv6 address, which IP holds as IPv4.
func packetDst(oob []byte) (IP, bool) {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		n := int(binary.NativeEndian.Uint64(oob)) // cmsg_len, a size_t
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if n < hdr || n > len(oob) {
			break
		}
		data := oob[hdr:n]

		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO &&
			len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's).
			return IPv4(data[8], data[9], data[10], data[11]), true
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO &&
			len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			return IP(data[:16]), true
		}

		next := unix.CmsgSpace(n - hdr)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return IP{}, false
}

// sourceCmsg returns the control message that makes src the source
// address of a datagram, or nil, letting the kernel choose, for the
// unspecified address. An IPv4 source goes as IP_PKTINFO, also for an IPv4
// client of a dual-stack socket: the only form the kernel takes for it.
func sourceCmsg(src IP) []byte {
	if src.IsUnspecified() {
		return nil
	}
	if src.Is4() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: [4]byte(src[12:])})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src})
}
