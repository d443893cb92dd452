package portspec

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseGood(t *testing.T) {
	lo4 := netip.MustParseAddr("127.0.0.1")
	lo6 := netip.MustParseAddr("::1")
	backend := netip.MustParseAddr("10.0.0.2")

	tests := []struct {
		name, text string
		want       Spec
	}{
		{"backend only", "10.0.0.2:80",
			Spec{Proto: TCP, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"host port", "8080:10.0.0.2:80",
			Spec{Proto: TCP, HostPorts: Range{8080, 8080},
				BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"host ip", "127.0.0.1:10.0.0.2:80",
			Spec{Proto: TCP, HostIP: lo4, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"everything", "127.0.0.1:8080:10.0.0.2:80/udp",
			Spec{Proto: UDP, HostIP: lo4, HostPorts: Range{8080, 8080},
				BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"empty host port", "127.0.0.1::10.0.0.2:80",
			Spec{Proto: TCP, HostIP: lo4, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"host port 0", "127.0.0.1:0:10.0.0.2:80",
			Spec{Proto: TCP, HostIP: lo4, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"ipv6 host", "[::1]:8080:10.0.0.2:80",
			Spec{Proto: TCP, HostIP: lo6, HostPorts: Range{8080, 8080},
				BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"ipv6 both", "[::1]:8080:[::1]:80/tcp",
			Spec{Proto: TCP, HostIP: lo6, HostPorts: Range{8080, 8080},
				BackendIP: lo6, BackendPorts: Range{80, 80}}},
		{"ipv6 host, no port", "[::1]:10.0.0.2:80",
			Spec{Proto: TCP, HostIP: lo6, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"ranges", "127.0.0.1:8000-8002:10.0.0.2:9000-9002/udp",
			Spec{Proto: UDP, HostIP: lo4, HostPorts: Range{8000, 8002},
				BackendIP: backend, BackendPorts: Range{9000, 9002}}},
		{"backend range, ephemeral host", "10.0.0.2:9000-9001",
			Spec{Proto: TCP, BackendIP: backend, BackendPorts: Range{9000, 9001}}},
		{"sctp in capitals", "10.0.0.2:80/SCTP",
			Spec{Proto: SCTP, BackendIP: backend, BackendPorts: Range{80, 80}}},
		{"highest port", "65535:10.0.0.2:65535",
			Spec{Proto: TCP, HostPorts: Range{65535, 65535},
				BackendIP: backend, BackendPorts: Range{65535, 65535}}},
		{"mapped ipv4 in brackets", "[::ffff:127.0.0.1]:1:10.0.0.2:2",
			Spec{Proto: TCP, HostIP: lo4, HostPorts: Range{1, 1},
				BackendIP: backend, BackendPorts: Range{2, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.text, err)
			}
			tt.want.Text = tt.text
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v; want %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name, text, reason string
	}{
		{"empty", "", "missing BACKEND_IP:BACKEND_PORT"},
		{"port only", "80", "missing BACKEND_IP:BACKEND_PORT"},
		{"unknown protocol", "10.0.0.2:80/icmp", `unknown protocol "icmp"`},
		{"empty protocol", "10.0.0.2:80/", `missing protocol after "/"`},
		{"two protocols", "10.0.0.2:80/tcp/udp", `unknown protocol "tcp/udp"`},
		{"backend port 0", "10.0.0.2:0", "backend port 0 is out of range 1-65535"},
		{"backend port 65536", "10.0.0.2:65536", "backend port 65536 is out of range"},
		{"host port 65536", "65536:10.0.0.2:80", "host port 65536 is out of range 0-65535"},
		{"huge port", "10.0.0.2:99999999999999999999999", "is out of range"},
		{"port with letters", "80x:10.0.0.2:80", `invalid host address "80x"`},
		{"backend port with letters", "10.0.0.2:http", `invalid backend port "http"`},
		{"signed port", "10.0.0.2:+80", `invalid backend port "+80"`},
		{"missing backend port", "10.0.0.2:", "missing backend port"},
		{"unequal ranges", "8000-8002:10.0.0.2:9000-9001",
			"host ports 8000-8002 and backend ports 9000-9001 differ in length (3 and 2)"},
		{"host range, one backend port", "8000-8001:10.0.0.2:80", "differ in length"},
		{"range backwards", "10.0.0.2:90-80", `backend port range "90-80" ends before it starts`},
		{"range from 0", "0-2:10.0.0.2:80-82", `host port range "0-2" starts at 0`},
		{"range too long", "10.0.0.2:1-2000", "has 2000 ports, more than 1024"},
		{"range missing end", "10.0.0.2:80-", "missing backend port"},
		{"bare ipv6 host", "::1:8080:127.0.0.1:80", "IPv6 addresses go in brackets"},
		{"bare ipv6 backend", "8080:fe80::1:80", "IPv6 addresses go in brackets"},
		{"bare loopback", "::1:80", "IPv6 addresses go in brackets"},
		{"bare link-local", "fe80::1:80", "IPv6 addresses go in brackets"},
		{"bare full ipv6", "8080:2001:db8:1:2:3:4:5:6:80", "IPv6 addresses go in brackets"},
		{"unclosed bracket", "[::1:8080:127.0.0.1:80", `missing ']' in "[::1:8080:127.0.0.1:80"`},
		{"junk after bracket", "[::1]x:8080:127.0.0.1:80", `want ':' after "[::1]"`},
		{"ipv4 in brackets", "[127.0.0.1]:8080:10.0.0.2:80", "brackets are for IPv6"},
		{"zone", "[fe80::1%eth0]:8080:10.0.0.2:80", "has a zone"},
		{"hostname", "localhost:8080:10.0.0.2:80", `invalid host address "localhost"`},
		{"backend hostname", "8080:backend:80", `invalid backend address "backend"`},
		{"unspecified backend", "8080:0.0.0.0:80", "backend address \"0.0.0.0\" is unspecified"},
		{"empty host address", ":8080:10.0.0.2:80", "empty host address"},
		{"empty host port alone", ":10.0.0.2:80", "empty host port"},
		{"too many fields", "1.2.3.4:1:2:10.0.0.2:80", "IPv6 addresses go in brackets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error = %v; want a *SyntaxError", tt.text, err)
			}
			if se.Spec != tt.text {
				t.Errorf("SyntaxError.Spec = %q; want %q", se.Spec, tt.text)
			}
			if !strings.Contains(se.Reason, tt.reason) {
				t.Errorf("reason = %q; want it to contain %q", se.Reason, tt.reason)
			}
			quoted := `invalid spec "` + strings.ReplaceAll(tt.text, `"`, `\"`) + `": `
			if !strings.HasPrefix(err.Error(), quoted) {
				t.Errorf("error = %q; want it to start with %q", err, quoted)
			}
		})
	}
}

func TestMappings(t *testing.T) {
	tests := []struct {
		name, text string
		want       []Mapping
	}{
		{"single", "8080:10.0.0.2:80", []Mapping{{8080, 80}}},
		{"ephemeral", "10.0.0.2:80", []Mapping{{0, 80}}},
		{"range", "8000-8002:10.0.0.2:9000-9002",
			[]Mapping{{8000, 9000}, {8001, 9001}, {8002, 9002}}},
		{"ephemeral range", "10.0.0.2:9000-9001", []Mapping{{0, 9000}, {0, 9001}}},
		{"top of the port space", "65534-65535:10.0.0.2:65534-65535",
			[]Mapping{{65534, 65534}, {65535, 65535}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Mappings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Mappings() = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestParseAllStopsAtFirstBad(t *testing.T) {
	_, err := ParseAll([]string{"10.0.0.2:80", "10.0.0.2:0", "nonsense"})
	var se *SyntaxError
	if !errors.As(err, &se) || se.Spec != "10.0.0.2:0" {
		t.Fatalf("ParseAll error = %v; want the syntax error of %q", err, "10.0.0.2:0")
	}
}
