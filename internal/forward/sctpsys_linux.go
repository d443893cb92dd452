//go:build linux

package forward

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's SCTP interface, as much of it as the forwarder uses, from
// linux/sctp.h. x/sys/unix does not define it. The sctp library
// (github.com/ishidawataru/sctp) does, but it imports package net, and
// net makes the binary a dynamically linked cgo program whose start takes
// half as long again; the tests check these definitions against the
// library's.
const (
	solSCTP         = 132    // SOL_SCTP
	sctpInitMsg     = 2      // SCTP_INITMSG, a socket option
	sctpEvents      = 11     // SCTP_EVENTS, a socket option
	sctpSndRcv      = 1      // SCTP_SNDRCV, a control message
	sctpUnordered   = 1      // SCTP_UNORDERED, a flag of sctpSndRcv
	msgNotification = 0x8000 // MSG_NOTIFICATION, a recvmsg flag
	sctpMaxStreams  = 0xffff // the most streams an association can have
)

// sctpInitmsg is struct sctp_initmsg.
type sctpInitmsg struct {
	NumOstreams    uint16
	MaxInstreams   uint16
	MaxAttempts    uint16
	MaxInitTimeout uint16
}

// sizeofSndRcvInfo is the size of struct sctp_sndrcvinfo: stream, ssn,
// flags (u16 each, then 2 bytes of padding), ppid, context, timetolive,
// tsn, cumtsn (u32 each) and assoc_id (s32).
const sizeofSndRcvInfo = 32

// sndRcvInfo is what the forwarder keeps of a message's struct
// sctp_sndrcvinfo. The payload protocol identifier is kept as the bytes
// came: it is passed on, not interpreted.
type sndRcvInfo struct {
	stream uint16
	flags  uint16
	ppid   uint32
}

// setSCTPOptions asks for as many streams as SCTP allows, so that any
// stream number a peer uses can be passed on, and for the send/receive
// info of each message.
func setSCTPOptions(fd int) error {
	msg := sctpInitmsg{NumOstreams: sctpMaxStreams, MaxInstreams: sctpMaxStreams}
	err := setsockopt(fd, solSCTP, sctpInitMsg, unsafe.Pointer(&msg), unsafe.Sizeof(msg))
	if err != nil {
		return wrap("set SCTP streams", err)
	}

	// struct sctp_event_subscribe is one byte per event, the first being
	// the data I/O event (send/receive info); the kernel takes a prefix.
	dataIO := byte(1)
	if err := setsockopt(fd, solSCTP, sctpEvents, unsafe.Pointer(&dataIO), 1); err != nil {
		return wrap("subscribe to SCTP message info", err)
	}
	return nil
}

func setsockopt(fd, level, opt int, val unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level),
		uintptr(opt), uintptr(val), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

// parseSndRcvInfo finds the send/receive info among control messages.
func parseSndRcvInfo(oob []byte) sndRcvInfo {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		n := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if n < hdr || n > len(oob) {
			break
		}
		data := oob[hdr:n]
		if level == unix.IPPROTO_SCTP && typ == sctpSndRcv && len(data) >= sizeofSndRcvInfo {
			return sndRcvInfo{
				stream: binary.NativeEndian.Uint16(data[0:]),
				flags:  binary.NativeEndian.Uint16(data[4:]),
				ppid:   binary.NativeEndian.Uint32(data[8:]),
			}
		}
		next := unix.CmsgSpace(n - hdr)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return sndRcvInfo{}
}

// marshal writes the control message that sends a message as info says:
// same stream, payload protocol and unordered flag. b must hold
// unix.CmsgSpace(sizeofSndRcvInfo) bytes.
func (info sndRcvInfo) marshal(b []byte) []byte {
	b = b[:unix.CmsgSpace(sizeofSndRcvInfo)]
	clear(b)
	binary.NativeEndian.PutUint64(b, uint64(unix.CmsgLen(sizeofSndRcvInfo)))
	binary.NativeEndian.PutUint32(b[8:], unix.IPPROTO_SCTP)
	binary.NativeEndian.PutUint32(b[12:], sctpSndRcv)

	data := b[unix.CmsgLen(0):]
	binary.NativeEndian.PutUint16(data[0:], info.stream)
	binary.NativeEndian.PutUint16(data[4:], info.flags&sctpUnordered)
	binary.NativeEndian.PutUint32(data[8:], info.ppid)
	return b
}
