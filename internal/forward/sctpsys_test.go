//go:build linux

package forward

import (
	"testing"
	"unsafe"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// TestSCTPDefinitions checks the kernel interface defined here against
// the sctp library's.
func TestSCTPDefinitions(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"SOL_SCTP", solSCTP, sctp.SOL_SCTP},
		{"SCTP_INITMSG", sctpInitMsg, sctp.SCTP_INITMSG},
		{"SCTP_EVENTS", sctpEvents, sctp.SCTP_EVENTS},
		{"SCTP_SNDRCV", sctpSndRcv, sctp.SCTP_CMSG_SNDRCV},
		{"SCTP_UNORDERED", sctpUnordered, sctp.SCTP_UNORDERED},
		{"MSG_NOTIFICATION", msgNotification, sctp.MSG_NOTIFICATION},
		{"sizeof(sctp_sndrcvinfo)", sizeofSndRcvInfo, int(unsafe.Sizeof(sctp.SndRcvInfo{}))},
		{"sizeof(sctp_initmsg)", int(unsafe.Sizeof(sctpInitmsg{})), int(unsafe.Sizeof(sctp.InitMsg{}))},
		{"offsetof(ppid)", 8, int(unsafe.Offsetof(sctp.SndRcvInfo{}.PPID))},
		{"offsetof(flags)", 4, int(unsafe.Offsetof(sctp.SndRcvInfo{}.Flags))},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d; the sctp library says %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestSndRcvInfoRoundTrip checks that the info of a received message is
// sent on as it came: stream, payload protocol, unordered flag.
func TestSndRcvInfoRoundTrip(t *testing.T) {
	in := sndRcvInfo{stream: 7, flags: sctpUnordered | 0x200, ppid: 0x01020304}
	var buf [64]byte
	cmsg := in.marshal(buf[:])
	if len(cmsg) != unix.CmsgSpace(sizeofSndRcvInfo) {
		t.Fatalf("control message of %d bytes; want %d", len(cmsg), unix.CmsgSpace(sizeofSndRcvInfo))
	}
	got := parseSndRcvInfo(cmsg)
	want := sndRcvInfo{stream: 7, flags: sctpUnordered, ppid: 0x01020304}
	if got != want {
		t.Errorf("parsed back %+v; want %+v", got, want)
	}

	// The library reads the same fields from the same bytes.
	lib := (*sctp.SndRcvInfo)(unsafe.Pointer(&cmsg[unix.CmsgLen(0)]))
	if lib.Stream != 7 || lib.Flags != sctpUnordered || lib.PPID != 0x01020304 {
		t.Errorf("library sees %+v", *lib)
	}
}
