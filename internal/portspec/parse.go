package portspec

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// bracketHint is the reason given for an IPv6 address written bare.
const bracketHint = "too many ':' or a bare IPv6 address; IPv6 addresses go in brackets, " +
	"as in [::1]:8080:127.0.0.1:80"

// parse does the work of [Parse]; a non-empty reason means text is invalid.
func parse(text string) (s Spec, reason string) {
	s = Spec{Text: text, Proto: TCP}
	addrs, proto, hasProto := strings.Cut(text, "/")
	if hasProto {
		if s.Proto, reason = parseProto(proto); reason != "" {
			return s, reason
		}
	}
	if addrs == "" {
		return s, "missing BACKEND_IP:BACKEND_PORT"
	}
	if bareIPv6(addrs) {
		return s, bracketHint
	}

	fields, reason := splitFields(addrs)
	if reason != "" {
		return s, reason
	}
	if reason = s.parseFields(fields); reason != "" {
		return s, reason
	}
	return s, s.checkPorts()
}

func parseProto(p string) (string, string) {
	switch lower := strings.ToLower(p); lower {
	case TCP, UDP, SCTP:
		return lower, ""
	case "":
		return "", `missing protocol after "/"`
	default:
		return "", fmt.Sprintf("unknown protocol %q, want tcp, udp or sctp", p)
	}
}

// bareIPv6 tells whether addrs, outside its brackets, holds more colons
// than the four fields of a spec can, or the "::" of an IPv6 address. A
// "::" right after the host address is docker's empty host port.
func bareIPv6(addrs string) bool {
	var outside strings.Builder
	for addrs != "" {
		before, after, found := strings.Cut(addrs, "[")
		outside.WriteString(before)
		if !found {
			break
		}
		_, addrs, found = strings.Cut(after, "]")
		if !found {
			break
		}
		outside.WriteString("[]")
	}
	rest := outside.String()
	if strings.Count(rest, ":") > 3 {
		return true
	}
	host, _, found := strings.Cut(rest, "::")
	if !found || host == "[]" {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return err != nil || !addr.Is4()
}

// splitFields splits addrs at the colons that are not inside brackets.
// A bracketed field keeps its brackets.
func splitFields(addrs string) ([]string, string) {
	var fields []string
	rest := addrs
	for {
		var field string
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Sprintf("missing ']' in %q", rest)
			}
			field, rest = rest[:end+1], rest[end+1:]
			if rest != "" && rest[0] != ':' {
				return nil, fmt.Sprintf("want ':' after %q, not %q", field, rest)
			}
		} else {
			i := strings.IndexByte(rest, ':')
			if i < 0 {
				i = len(rest)
			}
			field, rest = rest[:i], rest[i:]
		}

		fields = append(fields, field)
		if rest == "" {
			return fields, ""
		}
		rest = rest[1:]
	}
}

// parseFields fills s from the colon-separated fields, which end with the
// backend address and port.
func (s *Spec) parseFields(fields []string) (reason string) {
	n := len(fields)
	if n < 2 {
		return "missing BACKEND_IP:BACKEND_PORT"
	}
	if s.BackendIP, reason = parseIP(fields[n-2], "backend"); reason != "" {
		return reason
	}
	if s.BackendPorts, reason = parseRange(fields[n-1], "backend"); reason != "" {
		return reason
	}

	switch front := fields[:n-2]; {
	case len(front) == 2:
		if s.HostIP, reason = parseIP(front[0], "host"); reason != "" {
			return reason
		}
		return s.parseHostPorts(front[1])
	case len(front) == 1 && looksLikeIP(front[0]):
		s.HostIP, reason = parseIP(front[0], "host")
		return reason
	case len(front) == 1 && front[0] == "":
		return "empty host port"
	case len(front) == 1:
		return s.parseHostPorts(front[0])
	}
	return ""
}

// parseHostPorts reads a host port or range; empty means a port the
// kernel picks, as in docker's "IP::PORT".
func (s *Spec) parseHostPorts(field string) (reason string) {
	if field == "" {
		return ""
	}
	s.HostPorts, reason = parseRange(field, "host")
	return reason
}

// looksLikeIP tells an address field from a port field: ports are digits
// and dashes only.
func looksLikeIP(field string) bool {
	return strings.Trim(field, "0123456789-") != ""
}

// parseIP reads an address; IPv6 ones must come in brackets.
func parseIP(field, role string) (netip.Addr, string) {
	if field == "" {
		return netip.Addr{}, "empty " + role + " address"
	}
	inner, bracketed := strings.CutPrefix(field, "[")
	inner, _ = strings.CutSuffix(inner, "]")

	addr, err := netip.ParseAddr(inner)
	switch {
	case err != nil:
		return addr, fmt.Sprintf("invalid %s address %q", role, field)
	case addr.Zone() != "":
		return addr, fmt.Sprintf("%s address %q has a zone, which is not supported", role, field)
	case bracketed && addr.Is4():
		return addr, fmt.Sprintf("brackets are for IPv6 addresses, not %q", field)
	case !bracketed && addr.Is6():
		return addr, fmt.Sprintf("IPv6 address %q must be in brackets", field)
	case role == "backend" && addr.IsUnspecified():
		return addr, fmt.Sprintf("backend address %q is unspecified; name the address to forward to", field)
	}
	return addr.Unmap(), ""
}

// parseRange reads PORT or FIRST-LAST. Only a host port may be 0, alone.
func parseRange(field, role string) (Range, string) {
	first, last, isRange := strings.Cut(field, "-")
	var r Range
	var reason string
	if r.First, reason = parsePort(first, role); reason != "" {
		return r, reason
	}
	r.Last = r.First
	if !isRange {
		return r, ""
	}

	if r.Last, reason = parsePort(last, role); reason != "" {
		return r, reason
	}
	switch {
	case r.First == 0:
		return r, fmt.Sprintf("%s port range %q starts at 0", role, field)
	case r.Last < r.First:
		return r, fmt.Sprintf("%s port range %q ends before it starts", role, field)
	case r.Len() > MaxRangeLen:
		return r, fmt.Sprintf("%s port range %q has %d ports, more than %d",
			role, field, r.Len(), MaxRangeLen)
	}
	return r, ""
}

func parsePort(text, role string) (uint16, string) {
	if text == "" {
		return 0, "missing " + role + " port"
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Sprintf("invalid %s port %q", role, text)
	}

	low := 1
	if role == "host" {
		low = 0
	}
	if n < uint64(low) || n > 65535 {
		return 0, fmt.Sprintf("%s port %s is out of range %d-65535", role, text, low)
	}
	return uint16(n), ""
}

// checkPorts checks that a host range is as long as the backend range.
func (s *Spec) checkPorts() string {
	h, b := s.HostPorts, s.BackendPorts
	if h.First == 0 || h.Len() == b.Len() {
		return ""
	}
	return fmt.Sprintf("host ports %s and backend ports %s differ in length (%d and %d)",
		h, b, h.Len(), b.Len())
}
