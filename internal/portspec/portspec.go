// Package portspec parses publish specs in the syntax of docker run -p,
// with the backend address spelled out:
//
//	[HOST_IP:][HOST_PORT[-END]:]BACKEND_IP:BACKEND_PORT[-END][/tcp|udp|sctp]
//
// IPv6 addresses are written in brackets ("[::1]:8080:127.0.0.1:80"). An
// absent HOST_IP means every host address; an absent or zero HOST_PORT
// means a port the kernel picks. A range publishes one mapping per port,
// and a host range must be as long as the backend range. The protocol is
// tcp unless given.
package portspec

import (
	"fmt"
	"net/netip"
	"strconv"
)

// MaxRangeLen is the most ports one spec may publish. Each port costs a
// proxy process, so a typo such as 1-65535 is refused rather than obeyed.
const MaxRangeLen = 1024

// Protocols a spec may name.
const (
	TCP  = "tcp"
	UDP  = "udp"
	SCTP = "sctp"
)

// Spec is one parsed publish spec.
type Spec struct {
	// Text is the spec as it was written.
	Text string

	// Proto is [TCP], [UDP] or [SCTP].
	Proto string

	// HostIP is the host address to publish on; the zero Addr means
	// every address, IPv4 and IPv6.
	HostIP netip.Addr

	// HostPorts is the host port range; {0, 0} means one port the
	// kernel picks for each backend port.
	HostPorts Range

	// BackendIP is the address traffic is forwarded to.
	BackendIP netip.Addr

	// BackendPorts is the backend port range, never 0.
	BackendPorts Range
}

// Range is an inclusive range of ports; a single port has First == Last.
type Range struct {
	First, Last uint16
}

// Len is the number of ports in r.
func (r Range) Len() int {
	return int(r.Last) - int(r.First) + 1
}

func (r Range) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Mapping is one host port and the backend port it forwards to. A host
// port of 0 asks the kernel for a free one.
type Mapping struct {
	HostPort, BackendPort uint16
}

// Mappings returns one mapping per port of s, in order.
func (s Spec) Mappings() []Mapping {
	ms := make([]Mapping, 0, s.BackendPorts.Len())
	for i := range s.BackendPorts.Len() {
		m := Mapping{BackendPort: s.BackendPorts.First + uint16(i)}
		if s.HostPorts.First != 0 {
			m.HostPort = s.HostPorts.First + uint16(i)
		}
		ms = append(ms, m)
	}
	return ms
}

// SyntaxError reports a spec that cannot be parsed.
type SyntaxError struct {
	// Spec is the text as it was given.
	Spec string

	// Reason says what is wrong with it.
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid spec %q: %s", e.Spec, e.Reason)
}

// Parse parses one spec. Its errors are [*SyntaxError]s, which quote text.
func Parse(text string) (Spec, error) {
	s, reason := parse(text)
	if reason != "" {
		return Spec{}, &SyntaxError{Spec: text, Reason: reason}
	}
	return s, nil
}

// ParseAll parses every spec, stopping at the first that is invalid.
func ParseAll(texts []string) ([]Spec, error) {
	specs := make([]Spec, 0, len(texts))
	for _, t := range texts {
		s, err := Parse(t)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}
