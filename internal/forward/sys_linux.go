//go:build linux

package forward

import (
	"errors"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Keep-alive on both legs of a TCP connection, so that a peer that
// vanished without a word is noticed and its connection reclaimed. The
// values are the Go net package's defaults, which docker-proxy inherits;
// the probe count is the kernel's (9).
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
)

// setKeepAlive turns keep-alive on for the stream socket fd.
func setKeepAlive(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return err
	}
	idle := int(keepAliveIdle / time.Second)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, idle); err != nil {
		return err
	}
	intvl := int(keepAliveInterval / time.Second)
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, intvl)
}

// setBuffer asks for a socket buffer of size bytes: with the FORCE option
// first, which may exceed net.core.[rw]mem_max but needs CAP_NET_ADMIN,
// then with the plain one, which the kernel caps.
func setBuffer(fd, force, plain, size int) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
}

// soError reads and clears the pending error of fd, such as the outcome
// of a non-blocking connect.
func soError(fd int) error {
	errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}

// accept takes one connection from the listening socket fd, non-blocking
// and close-on-exec. It asks for no peer address, to save an allocation.
func accept(fd int) (int, error) {
	flags := unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, uintptr(flags), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// recvmsg reads one datagram, its source address and its control
// messages, without allocating.
func recvmsg(fd int, p, oob []byte, from *rawAddr) (n, oobn, flags int, err error) {
	var iov unix.Iovec
	iov.Base = &p[0]
	iov.SetLen(len(p))

	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&from.sa))
	msg.Namelen = uint32(unsafe.Sizeof(from.sa))
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}

	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	if e != 0 {
		return 0, 0, 0, e
	}
	from.len = msg.Namelen
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// sendmsg sends p to the address in to, with the control messages in oob,
// without allocating.
func sendmsg(fd int, p, oob []byte, to *rawAddr) (int, error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}

	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&to.sa))
	msg.Namelen = to.len
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}

	flags := unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
	r, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// recvTrunc reads one datagram from the connected socket fd into p and
// returns its full length, which exceeds len(p) if it did not fit.
func recvTrunc(fd int, p []byte) (int, error) {
	flags := unix.MSG_TRUNC | unix.MSG_DONTWAIT
	r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// send writes p to the connected socket fd without raising SIGPIPE.
func send(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	flags := unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
	r, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd),
		uintptr(ptr), uintptr(len(p)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// isTemporary reports whether err is worth waiting out rather than giving
// up: descriptors or kernel memory ran out.
func isTemporary(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}
