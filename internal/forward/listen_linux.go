//go:build linux

package forward

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// listenBacklog is the length asked of the accept queue; the kernel caps
// it at net.core.somaxconn.
const listenBacklog = 4096

// socketKind is what a frontend socket must be for a protocol.
type socketKind struct {
	sotype, proto int
	listening     bool // stream sockets must listen; datagram ones be bound
}

// kindOf returns what a frontend socket of proto must be. It is a
// function rather than a map so that nothing is allocated at start.
func kindOf(proto string) (socketKind, bool) {
	switch proto {
	case "tcp":
		return socketKind{unix.SOCK_STREAM, unix.IPPROTO_TCP, true}, true
	case "udp":
		return socketKind{unix.SOCK_DGRAM, unix.IPPROTO_UDP, false}, true
	case "sctp":
		return socketKind{unix.SOCK_STREAM, unix.IPPROTO_SCTP, true}, true
	}
	return socketKind{}, false
}

// frontendSocket returns the non-blocking descriptor to serve: a copy of
// cfg.Listener, checked, or a socket bound to cfg.Frontend.
func frontendSocket(cfg *Config, k socketKind) (int, error) {
	if cfg.Listener != nil {
		return adopt(cfg.Listener, family(cfg.Frontend.IP), k)
	}
	return bind(cfg.Frontend, k)
}

// adopt duplicates the socket in f and checks that it is of kind k and of
// the family wanted.
func adopt(f *os.File, family int, k socketKind) (int, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return -1, wrap("handed-over socket", err)
	}
	fd := -1
	cerr := raw.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		err = cerr
	}
	if err != nil {
		return -1, wrap("duplicate handed-over socket", err)
	}

	if err := check(fd, family, k); err != nil {
		unix.Close(fd)
		return -1, wrap("handed-over socket", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, wrap("make handed-over socket non-blocking", err)
	}
	return fd, nil
}

// check verifies that fd is a socket of kind k and family, listening or
// bound as k requires.
func check(fd, family int, k socketKind) error {
	sotype, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err == unix.ENOTSOCK {
		return textError("not a socket")
	}
	if err != nil {
		return wrap("read socket type", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return wrap("read socket protocol", err)
	}
	if proto == unix.IPPROTO_MPTCP && k.proto == unix.IPPROTO_TCP {
		// Multipath TCP, as Go's net.Listen makes by default: TCP to
		// clients that do not speak it, and served the same way.
		proto = unix.IPPROTO_TCP
	}
	if sotype != k.sotype || proto != k.proto {
		return textError("socket is " + kindName(sotype, proto) + ", want " +
			kindName(k.sotype, k.proto))
	}

	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return wrap("read socket family", err)
	}
	if dom != family {
		return textError("socket family is " + familyName(dom) + ", want " +
			familyName(family) + " for the host address")
	}

	if k.listening {
		acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return wrap("read listening state", err)
		}
		if acc == 0 {
			return textError("socket is not listening")
		}
		return nil
	}
	if localAddr(fd).Port == 0 {
		return textError("socket is not bound")
	}
	return nil
}

// bind makes a socket of kind k bound to addr, listening if k is a stream.
// Stream sockets may rebind an address whose connections linger in
// TIME_WAIT; datagram sockets do not share their address with anyone. An
// IPv6 address, the unspecified one included, binds IPv6 only.
func bind(addr Endpoint, k socketKind) (fd int, err error) {
	fam := family(addr.IP)
	typ := k.sotype | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fd, err = unix.Socket(fam, typ, k.proto)
	if err != nil {
		return -1, wrap("create "+kindName(k.sotype, k.proto)+" socket", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	if k.listening {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return -1, wrap("set SO_REUSEADDR", err)
		}
	}
	if fam == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return -1, wrap("set IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(addr)); err != nil {
		return -1, wrap("bind "+addr.String(), err)
	}
	if k.listening {
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return -1, wrap("listen on "+addr.String(), err)
		}
	}
	return fd, nil
}

// localAddr is the address fd is bound to, or the zero value.
func localAddr(fd int) Endpoint {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return Endpoint{}
	}
	return fromSockaddr(sa)
}

func kindName(sotype, proto int) string {
	switch {
	case sotype == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
		return "tcp"
	case sotype == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		return "udp"
	case sotype == unix.SOCK_STREAM && proto == unix.IPPROTO_SCTP:
		return "sctp"
	}
	return "type " + strconv.Itoa(sotype) + " protocol " + strconv.Itoa(proto)
}

func familyName(f int) string {
	switch f {
	case unix.AF_INET:
		return "IPv4"
	case unix.AF_INET6:
		return "IPv6"
	case unix.AF_UNIX:
		return "unix"
	}
	return "family " + strconv.Itoa(f)
}
