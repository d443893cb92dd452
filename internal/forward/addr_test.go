package forward

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
)

// TestParseIP checks ParseIP against net/netip, which the binary does
// without.
func TestParseIP(t *testing.T) {
	inputs := []string{
		"127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4",
		"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"fe80::1", "2001:db8::ff00:42:8329", "::ffff:127.0.0.1", "::ffff:7f00:1",
		"64:ff9b::192.0.2.33", "ABCD:EF01::", "0:0:0:0:0:0:0:0",
		// Not addresses:
		"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "1..2.3",
		"-1.2.3.4", ":::", "1:::2", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9",
		"1:2:3:4:5:6:7:8::", ":1", "1:", "::1:", "fe80::1%eth0", "g::", "1.2.3.4::",
		"::1.2.3", "::1.2.3.4.5", "1:2:3:4:5:6:7:1.2.3.4", "localhost", "[::1]",
	}
	for _, s := range inputs {
		want, werr := netip.ParseAddr(s)
		if werr == nil && want.Zone() != "" {
			werr = errBadIP
		}
		got, err := ParseIP(s)
		if (err == nil) != (werr == nil) {
			t.Errorf("ParseIP(%q) error = %v; netip says %v", s, err, werr)
			continue
		}
		if err == nil && got != IP(want.As16()) { // IPv4 comes IPv4-mapped
			t.Errorf("ParseIP(%q) = %v; want %v", s, got, want)
		}
	}
}

// TestIPString checks String against net.IP.String on random addresses
// with runs of zeros.
func TestIPString(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var ip IP
		for g := range 8 {
			if r.IntN(2) == 0 {
				ip[2*g], ip[2*g+1] = byte(r.IntN(256)), byte(r.IntN(3))
			}
		}
		if r.IntN(4) == 0 {
			ip = IPv4(byte(r.IntN(256)), byte(r.IntN(256)), 0, byte(r.IntN(256)))
		}
		if got, want := ip.String(), net.IP(ip[:]).String(); got != want {
			t.Fatalf("String(%x) = %q; want %q", ip, got, want)
		}
		back, err := ParseIP(ip.String())
		if err != nil || back != ip {
			t.Fatalf("ParseIP(%q) = %x, %v; want %x", ip.String(), back, err, ip)
		}
	}
}

func TestEndpointString(t *testing.T) {
	tests := []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{IPv4Loopback, 80}, "127.0.0.1:80"},
		{Endpoint{IPv6Loopback, 443}, "[::1]:443"},
		{Endpoint{IPv6Unspecified, 0}, "[::]:0"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("String() = %q; want %q", got, tt.want)
		}
	}
}
