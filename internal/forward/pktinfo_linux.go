//go:build linux

package forward

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// packetDst returns the destination address of a received datagram, from
// its IP_PKTINFO or IPV6_PKTINFO control message, or the zero Addr if
// there is none. An IPv4 datagram on a dual-stack socket comes with an
// IPv4-mapped IPv6 address.
func packetDst(oob []byte) netip.Addr {
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
			return netip.AddrFrom4([4]byte(data[8:12]))
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO &&
			len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			return netip.AddrFrom16([16]byte(data[:16]))
		}

		next := unix.CmsgSpace(n - hdr)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}

// sourceCmsg returns the control message that makes src the source
// address of a datagram sent on a socket of family fam, or nil, letting
// the kernel choose, for the zero or the unspecified address. An IPv4
// source for an IPv4 client of a dual-stack socket goes as IP_PKTINFO,
// the only form the kernel takes for it.
func sourceCmsg(src netip.Addr) []byte {
	if !src.IsValid() || src.IsUnspecified() {
		return nil
	}
	if src.Is4() || src.Is4In6() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.Unmap().As4()})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16()})
}
