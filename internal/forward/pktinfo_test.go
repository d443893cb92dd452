//go:build linux

package forward

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// TestPacketInfo checks the hand-made control messages against
// golang.org/x/net, which the binary does without.
func TestPacketInfo(t *testing.T) {
	tests := []struct {
		name string
		oob  []byte // as the kernel would give it
		want netip.Addr
	}{
		{
			name: "IP_PKTINFO",
			oob:  ipv4PktinfoAsReceived(t, netip.MustParseAddr("127.0.0.2")),
			want: netip.MustParseAddr("127.0.0.2"),
		},
		{
			name: "IPV6_PKTINFO",
			oob:  ipv6PktinfoAsReceived(t, netip.MustParseAddr("fd00::2")),
			want: netip.MustParseAddr("fd00::2"),
		},
		{name: "none", oob: nil},
		{name: "truncated", oob: []byte{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := packetDst(tt.oob)
			if want := IP(tt.want.As16()); ok != tt.want.IsValid() || ok && got != want {
				t.Errorf("packetDst = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

// ipv4PktinfoAsReceived builds an IP_PKTINFO message as the kernel gives
// it, with the header's destination in ipi_addr, and checks that x/net
// reads it so.
func ipv4PktinfoAsReceived(t *testing.T, a netip.Addr) []byte {
	oob := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 1, Spec_dst: [4]byte{10, 0, 0, 1},
		Addr: a.As4()})
	var cm ipv4.ControlMessage
	if err := cm.Parse(oob); err != nil || !cm.Dst.Equal(a.AsSlice()) {
		t.Fatalf("x/net/ipv4 reads %v, %v; want %v", cm.Dst, err, a)
	}
	return oob
}

// ipv6PktinfoAsReceived builds an IPV6_PKTINFO message; x/net marshals
// the same struct for sending as the kernel fills for receiving.
func ipv6PktinfoAsReceived(t *testing.T, a netip.Addr) []byte {
	oob := (&ipv6.ControlMessage{Src: a.AsSlice()}).Marshal()
	var cm ipv6.ControlMessage
	if err := cm.Parse(oob); err != nil || !cm.Dst.Equal(a.AsSlice()) {
		t.Fatalf("x/net/ipv6 does not read back its message: %v, %v", cm.Dst, err)
	}
	return oob
}

func TestSourceCmsg(t *testing.T) {
	tests := []struct {
		name string
		src  netip.Addr
		want []byte
	}{
		{"v4", netip.MustParseAddr("127.0.0.2"),
			(&ipv4.ControlMessage{Src: net.ParseIP("127.0.0.2")}).Marshal()},
		{"v4 on a dual-stack socket", netip.MustParseAddr("::ffff:127.0.0.2"),
			(&ipv4.ControlMessage{Src: net.ParseIP("127.0.0.2")}).Marshal()},
		{"v6", netip.MustParseAddr("fd00::2"),
			(&ipv6.ControlMessage{Src: net.ParseIP("fd00::2")}).Marshal()},
		{"unspecified", netip.IPv4Unspecified(), nil},
		{"unspecified v6", netip.IPv6Unspecified(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sourceCmsg(IP(tt.src.As16())); !bytes.Equal(got, tt.want) {
				t.Errorf("sourceCmsg(%v) = %x; want %x", tt.src, got, tt.want)
			}
		})
	}
}
