package forward

import (
	"strconv"
	"strings"
)

// The package does without net/netip, as it does without fmt: netip
// brings in package unique, whose maps and cleanup goroutine cost every
// proxy some 40 KiB of resident memory at start. IP and Endpoint are the
// little of it that forwarding needs.

// IP is an IPv4 or IPv6 address. IPv4 addresses are held IPv4-mapped, as
// net.IP holds them, so that an IPv4 client of a dual-stack socket and the
// same client on an IPv4 socket are one address.
type IP [16]byte

// Some addresses.
var (
	IPv4Unspecified = IP{10: 0xff, 11: 0xff}
	IPv6Unspecified = IP{}
	IPv4Loopback    = IP{10: 0xff, 11: 0xff, 12: 127, 15: 1}
	IPv6Loopback    = IP{15: 1}
)

// IPv4 returns the address a.b.c.d.
func IPv4(a, b, c, d byte) IP {
	return IP{10: 0xff, 11: 0xff, 12: a, 13: b, 14: c, 15: d}
}

// Is4 reports whether ip is an IPv4 address.
func (ip IP) Is4() bool {
	return ip[0]|ip[1]|ip[2]|ip[3]|ip[4]|ip[5]|ip[6]|ip[7]|ip[8]|ip[9] == 0 &&
		ip[10] == 0xff && ip[11] == 0xff
}

// IsUnspecified reports whether ip is 0.0.0.0 or ::.
func (ip IP) IsUnspecified() bool {
	return ip == IPv4Unspecified || ip == IPv6Unspecified
}

// String formats ip as net.IP.String does: dotted for IPv4, RFC 5952 for
// IPv6.
func (ip IP) String() string {
	if ip.Is4() {
		return strconv.Itoa(int(ip[12])) + "." + strconv.Itoa(int(ip[13])) + "." +
			strconv.Itoa(int(ip[14])) + "." + strconv.Itoa(int(ip[15]))
	}

	start, n := longestZeros(ip)
	var b strings.Builder
	for i := 0; i < 8; i++ {
		switch {
		case i == start:
			b.WriteString("::")
		case i > start && i < start+n:
		default:
			if i > 0 && i != start+n {
				b.WriteByte(':')
			}
			b.WriteString(strconv.FormatUint(uint64(ip[2*i])<<8|uint64(ip[2*i+1]), 16))
		}
	}
	return b.String()
}

// longestZeros finds the first longest run of zero groups of ip, of two
// groups or more, for "::"; start is -1 if there is none.
func longestZeros(ip IP) (start, n int) {
	start = -1
	for i := 0; i < 8; {
		j := i
		for j < 8 && ip[2*j] == 0 && ip[2*j+1] == 0 {
			j++
		}
		if j-i > n && j-i >= 2 {
			start, n = i, j-i
		}
		i = j + 1
	}
	return start, n
}

// errBadIP is the error of ParseIP.
const errBadIP = textError("not an IP address")

// ParseIP parses an IPv4 address in dotted decimal or an IPv6 address in
// RFC 4291 text form, as net.ParseIP does. Zones are not accepted.
func ParseIP(s string) (IP, error) {
	if strings.IndexByte(s, ':') < 0 {
		return parseIPv4(s)
	}
	return parseIPv6(s)
}

// parseIPv4 parses four decimal bytes, without leading zeros.
func parseIPv4(s string) (IP, error) {
	var ip IP
	ip[10], ip[11] = 0xff, 0xff
	for i := range 4 {
		if i > 0 {
			if s == "" || s[0] != '.' {
				return IP{}, errBadIP
			}
			s = s[1:]
		}
		n, digits := 0, 0
		for digits < len(s) && '0' <= s[digits] && s[digits] <= '9' {
			n = 10*n + int(s[digits]-'0')
			digits++
			if n > 255 {
				return IP{}, errBadIP
			}
		}
		if digits == 0 || digits > 1 && s[0] == '0' {
			return IP{}, errBadIP
		}
		ip[12+i] = byte(n)
		s = s[digits:]
	}
	if s != "" {
		return IP{}, errBadIP
	}
	return ip, nil
}

// parseIPv6 parses groups of up to four hex digits separated by colons,
// with at most one "::" and an optional dotted IPv4 tail.
func parseIPv6(s string) (IP, error) {
	var ip IP
	ellipsis := -1 // where "::" stands, in bytes
	if strings.HasPrefix(s, "::") {
		ellipsis, s = 0, s[2:]
	}

	i := 0
	for i < 16 && s != "" {
		if strings.IndexByte(s, ':') < 0 && strings.IndexByte(s, '.') >= 0 {
			if i > 12 {
				return IP{}, errBadIP
			}
			v4, err := parseIPv4(s)
			if err != nil {
				return IP{}, err
			}
			copy(ip[i:], v4[12:])
			i, s = i+4, ""
			break
		}

		n, digits := 0, 0
		for digits < len(s) && digits < 5 && hexDigit(s[digits]) >= 0 {
			n = n<<4 | hexDigit(s[digits])
			digits++
		}
		if digits == 0 || digits > 4 {
			return IP{}, errBadIP
		}
		ip[i], ip[i+1] = byte(n>>8), byte(n)
		i, s = i+2, s[digits:]
		if s == "" {
			break
		}

		if s[0] != ':' || len(s) == 1 {
			return IP{}, errBadIP
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return IP{}, errBadIP
			}
			ellipsis, s = i, s[1:]
		}
	}
	if s != "" {
		return IP{}, errBadIP
	}

	switch {
	case i < 16 && ellipsis < 0, i == 16 && ellipsis >= 0:
		return IP{}, errBadIP
	case i < 16:
		gap := 16 - i
		copy(ip[ellipsis+gap:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+gap])
	}
	return ip, nil
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Endpoint is an IP address and a port.
type Endpoint struct {
	IP   IP
	Port uint16
}

// String formats e as host:port, with brackets around an IPv6 host.
func (e Endpoint) String() string {
	port := strconv.Itoa(int(e.Port))
	if e.IP.Is4() {
		return e.IP.String() + ":" + port
	}
	return "[" + e.IP.String() + "]:" + port
}
