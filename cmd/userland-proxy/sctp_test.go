//go:build linux

package main

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// needSCTP skips the test on a kernel without SCTP.
func needSCTP(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		t.Skipf("SCTP is not available on this kernel (socket: %v); load the sctp module to run this test", err)
	}
	unix.Close(fd)
}

// sctpEcho is a backend that sends each message back on the stream and
// with the payload protocol it came with.
func sctpEcho(t *testing.T) netip.AddrPort {
	ln, err := sctp.ListenSCTP("sctp4", &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}})
	if err != nil {
		t.Fatalf("sctp listen: %v", err)
	}
	addr := ln.Addr().(*sctp.SCTPAddr)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.AcceptSCTP()
			if err != nil {
				return
			}
			c.SubscribeEvents(sctp.SCTP_EVENT_DATA_IO)
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<16)
				for {
					n, info, err := c.SCTPRead(buf)
					if err != nil || n == 0 {
						return
					}
					if _, err := c.SCTPWrite(buf[:n], info); err != nil {
						return
					}
				}
			}()
		}
	}()
	return netip.AddrPortFrom(lo4, uint16(addr.Port))
}

// sctpListenerFile makes a listening SCTP socket as a launcher would hand
// it over.
func sctpListenerFile(t *testing.T) (*os.File, netip.AddrPort) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "sctp")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: lo4.As4()}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return f, netip.AddrPortFrom(lo4, uint16(sa.(*unix.SockaddrInet4).Port))
}

// TestSCTP sends messages on several streams with several payload
// protocols through the proxy, and checks that each comes back whole,
// on its stream, with its protocol.
func TestSCTP(t *testing.T) {
	needSCTP(t)
	backend := sctpEcho(t)

	for _, listenFD := range []bool{true, false} {
		t.Run("listen fd "+strconv.FormatBool(listenFD), func(t *testing.T) {
			var host netip.AddrPort
			if listenFD {
				f, addr := sctpListenerFile(t)
				host = addr
				mustRun(t, args("sctp", host, backend, "-use-listen-fd"), f)
			} else {
				host = freePort(t, "tcp", lo4) // a port number; SCTP's is likely free too
				mustRun(t, args("sctp", host, backend), nil)
			}

			c, err := sctp.DialSCTP("sctp4", nil, &sctp.SCTPAddr{
				IPAddrs: []net.IPAddr{{IP: host.Addr().AsSlice()}}, Port: int(host.Port())})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			c.SubscribeEvents(sctp.SCTP_EVENT_DATA_IO)
			timer := time.AfterFunc(waitLimit, func() { c.Close() }) // unblocks a stuck read
			defer timer.Stop()

			buf := make([]byte, 1<<16)
			for i, m := range []struct {
				stream uint16
				ppid   uint32
				msg    string
			}{{0, 0, "first"}, {3, 42, "second, on stream 3"}, {7, 0xdeadbeef, "third"}} {
				info := &sctp.SndRcvInfo{Stream: m.stream, PPID: m.ppid}
				if _, err := c.SCTPWrite([]byte(m.msg), info); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				n, got, err := c.SCTPRead(buf)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if string(buf[:n]) != m.msg || got == nil || got.Stream != m.stream || got.PPID != m.ppid {
					t.Errorf("message %d came back as %q on %+v; want %q, stream %d, ppid %#x",
						i, buf[:n], got, m.msg, m.stream, m.ppid)
				}
			}
		})
	}
}
