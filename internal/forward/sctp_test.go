//go:build linux

package forward

import (
	"net"
	"testing"
	"time"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// TestSCTP forwards messages on several streams, with several payload
// protocols, to an echo server written with the sctp library, and
// checks that each comes back whole, on its stream, with its protocol.
func TestSCTP(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		t.Skipf("SCTP is not available on this kernel (socket: %v); load the sctp module to run this test", err)
	}
	unix.Close(fd)

	ln, err := sctp.ListenSCTP("sctp4", &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() {
		ln.Close()
		<-done
	}()
	go func() {
		defer close(done)
		sctpEchoServe(ln)
	}()
	backend := Endpoint{IPv4Loopback, uint16(ln.Addr().(*sctp.SCTPAddr).Port)}

	f, _ := serve(t, Config{Proto: "sctp", Frontend: Endpoint{IP: IPv4Loopback}, Backend: backend})
	c, err := sctp.DialSCTP("sctp4", nil, &sctp.SCTPAddr{
		IPAddrs: []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}, Port: int(f.Addr().Port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SubscribeEvents(sctp.SCTP_EVENT_DATA_IO)
	stuck := time.AfterFunc(waitLimit, func() { c.Close() }) // unblocks a stuck read
	defer stuck.Stop()

	buf := make([]byte, 1<<16)
	for i, m := range []struct {
		stream uint16
		ppid   uint32
		msg    string
	}{{0, 0, "first"}, {3, 42, "on stream 3"}, {300, 0xdeadbeef, "on stream 300"}} {
		if _, err := c.SCTPWrite([]byte(m.msg), &sctp.SndRcvInfo{Stream: m.stream, PPID: m.ppid}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		n, info, err := c.SCTPRead(buf)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(buf[:n]) != m.msg || info == nil || info.Stream != m.stream || info.PPID != m.ppid {
			t.Errorf("message %d came back as %q, %+v; want %q on stream %d with ppid %#x",
				i, buf[:n], info, m.msg, m.stream, m.ppid)
		}
	}
}

// sctpEchoServe sends each message back as it came, until ln is closed.
func sctpEchoServe(ln *sctp.SCTPListener) {
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
}
