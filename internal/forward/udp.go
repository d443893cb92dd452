//go:build linux

package forward

import (
	"cmp"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// udpBufSize holds any UDP payload: at most 65507 bytes over IPv4 and
	// 65527 over IPv6, jumbograms aside. A datagram is never truncated;
	// one that does not fit is dropped and counted.
	udpBufSize = 65536

	// udpSocketBuffer is asked for the frontend socket's receive and send
	// buffers, so that a burst of datagrams from new clients waits in the
	// kernel while their flows are set up, instead of overflowing. The
	// kernel charges the memory only while datagrams wait.
	udpSocketBuffer = 4 << 20

	// udpOOBSize holds the packet-info control message of either family.
	udpOOBSize = 64

	// udpWriteWait bounds how long a reply waits for room in the
	// frontend socket's send buffer before it is dropped, so that clients
	// that stop reading cannot stall the replies of the others for long.
	udpWriteWait = 100 * time.Millisecond
)

// udpForwarder forwards datagrams. Each client address and port gets a
// flow: a socket connected to the backend, whose replies go back to the
// client from the local address the client sent to.
//
// Flows live in a bounded table. When it is full, datagrams from new
// clients are dropped (counted, and logged at a limited rate) until flows
// expire: a flood of new sources cannot push out the clients already
// being served, though it can keep newcomers out for an idle timeout, as
// a full conntrack table does.
type udpForwarder struct {
	log      logger
	front    *os.File // the frontend socket
	frontRaw syscall.RawConn
	family   int // of the frontend socket
	addr     Endpoint
	backend  Endpoint
	bsa      unix.Sockaddr
	idle     time.Duration
	maxFlows int
	poller   poller
	epoch    time.Time // flow clocks count from here

	replyBuf []byte  // used on the poller's goroutine only
	replier  replier // likewise

	mu     sync.Mutex
	flows  map[Endpoint]*flow // made with the first
	sweep  *time.Timer        // expires idle flows; nil when there are none
	closed bool

	dropped atomic.Uint64 // datagrams that could not be carried
}

// newUDPForwarder serves the bound socket fd, which it owns from the call
// on.
func newUDPForwarder(cfg *Config, fd int) (*udpForwarder, error) {
	fam, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err == nil {
		err = setPacketInfo(fd, fam)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	_ = setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, udpSocketBuffer)
	_ = setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, udpSocketBuffer)

	front := os.NewFile(uintptr(fd), "udp-frontend")
	raw, err := front.SyscallConn()
	if err != nil {
		front.Close()
		return nil, wrap("wrap frontend socket", err)
	}

	u := &udpForwarder{
		front:    front,
		frontRaw: raw,
		family:   fam,
		addr:     localAddr(fd),
		backend:  cfg.Backend,
		bsa:      sockaddr(cfg.Backend),
		idle:     cfg.udpIdleTimeout(),
		maxFlows: cfg.udpMaxFlows(),
		epoch:    time.Now(),
	}
	u.log.init(cfg.Log, logPrefix("udp", u.addr, u.backend))
	u.replier.init()
	return u, nil
}

// setPacketInfo asks the kernel for the destination address of each
// datagram, which replies then use as their source.
func setPacketInfo(fd, family int) error {
	var err error
	if family == unix.AF_INET {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	} else {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}
	if err != nil {
		return wrap("ask for packet info", err)
	}
	return nil
}

func (u *udpForwarder) Addr() Endpoint { return u.addr }

// Serve reads datagrams from clients and sends each through its flow.
func (u *udpForwarder) Serve() error {
	var r receiver
	read := r.read // one closure for the whole loop: no allocation per datagram
	for {
		if err := u.frontRaw.Read(read); err != nil || r.err != nil {
			if u.isClosed() {
				return nil
			}
			u.receiveFailed(cmp.Or(err, r.err))
			continue
		}
		if r.flags&unix.MSG_TRUNC != 0 {
			u.drop("datagram from " + r.from.endpoint().String() + " larger than " +
				strconv.Itoa(len(r.buf)) + " bytes")
			continue
		}
		u.forward(r.buf[:r.n], r.oob[:r.oobn], &r.from)
	}
}

// receiveFailed logs a failure to read from the frontend socket, which
// should not happen, and pauses before the next attempt so that a lasting
// failure cannot spin.
func (u *udpForwarder) receiveFailed(err error) {
	if err == unix.EINTR {
		return
	}
	u.log.log(evDrop, "receive from clients: "+err.Error())
	time.Sleep(acceptPauseMin)
}

// receiver reads one datagram from the frontend socket.
type receiver struct {
	buf  []byte // allocated when the first datagram comes
	oob  [udpOOBSize]byte
	from rawAddr

	n, oobn, flags int
	err            error
}

// read is the callback of the frontend socket's RawConn.Read.
func (r *receiver) read(fd uintptr) bool {
	if r.buf == nil {
		if !pending(int(fd)) {
			return false
		}
		r.buf = make([]byte, udpBufSize)
	}
	r.n, r.oobn, r.flags, r.err = recvmsg(int(fd), r.buf, r.oob[:], &r.from)
	return r.err != unix.EAGAIN
}

// pending reports whether a datagram, or an error, waits on fd.
func pending(fd int) bool {
	var b byte
	flags := unix.MSG_PEEK | unix.MSG_DONTWAIT
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(&b)), 0, uintptr(flags), 0, 0)
	return e != unix.EAGAIN
}

// forward sends p, from the client in from, through the client's flow.
func (u *udpForwarder) forward(p, oob []byte, from *rawAddr) {
	key := from.endpoint()
	for range 2 { // a second time if the flow expired meanwhile
		fl := u.flow(key, oob, from)
		if fl == nil {
			return
		}
		if !errors.Is(fl.send(p), errFlowClosed) {
			return
		}
	}
}

// flow returns the flow of key, making it if there is room. It returns nil
// if the datagram is to be dropped.
func (u *udpForwarder) flow(key Endpoint, oob []byte, from *rawAddr) *flow {
	u.mu.Lock()
	fl, n := u.flows[key], len(u.flows)
	u.mu.Unlock()
	if fl != nil {
		return fl
	}
	if n >= u.maxFlows {
		dropped := u.dropped.Add(1)
		u.log.log(evFlowsFull, "flow table full ("+strconv.Itoa(n)+
			" flows): dropping datagrams from new clients; "+
			strconv.FormatUint(dropped, 10)+" datagrams dropped so far")
		return nil
	}

	fl, err := u.newFlow(key, u.replySource(oob), from)
	if err != nil {
		u.drop("open flow for " + key.String() + ": " + err.Error())
		return nil
	}
	if !u.insert(fl) {
		fl.close()
		return nil
	}
	return fl
}

// insert adds fl to the table and makes sure that idle flows expire.
func (u *udpForwarder) insert(fl *flow) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if u.flows == nil {
		u.flows = make(map[Endpoint]*flow)
	}
	u.flows[fl.key] = fl
	if u.sweep == nil {
		u.sweep = time.AfterFunc(u.idle, u.expire)
	}
	return true
}

// replySource turns the destination of a client's datagram, from its
// packet info, into the control message that makes it the source of the
// replies. It returns nil, letting the kernel choose, if there is none.
func (u *udpForwarder) replySource(oob []byte) []byte {
	dst, ok := packetDst(oob)
	if !ok {
		return nil
	}
	return sourceCmsg(dst)
}

// reply sends p to the client of fl, from the address it sent to. It runs
// on the poller's goroutine.
func (u *udpForwarder) reply(fl *flow, p []byte) {
	err := u.sendReply(p, fl.oob, &fl.client)
	if err == unix.EINVAL && fl.oob != nil {
		// The destination cannot be a source, as a broadcast address
		// cannot: let the kernel choose.
		err = u.sendReply(p, nil, &fl.client)
	}
	if err != nil {
		u.drop("send " + strconv.Itoa(len(p)) + "-byte reply to " + fl.key.String() +
			": " + err.Error())
	}
}

// sendReply sends p, waiting up to udpWriteWait for room in the buffer.
func (u *udpForwarder) sendReply(p, oob []byte, to *rawAddr) error {
	r := &u.replier
	r.p, r.oob, r.to = p, oob, to
	defer r.reset()

	if err := u.frontRaw.Control(r.sendNow); err != nil {
		return err
	}
	if r.err != unix.EAGAIN && r.err != unix.EINTR {
		return r.err
	}

	u.front.SetWriteDeadline(time.Now().Add(udpWriteWait))
	defer u.front.SetWriteDeadline(time.Time{})
	if err := u.frontRaw.Write(r.trySend); err != nil {
		return err
	}
	return r.err
}

// replier sends one reply through the frontend socket. It is used on the
// poller's goroutine only, and its callbacks are bound once, so that a
// reply costs no allocation.
type replier struct {
	p, oob []byte
	to     *rawAddr
	err    error

	sendNow func(fd uintptr)
	trySend func(fd uintptr) bool
}

func (r *replier) init() {
	r.trySend = func(fd uintptr) bool {
		_, r.err = sendmsg(int(fd), r.p, r.oob, r.to)
		return r.err != unix.EAGAIN && r.err != unix.EINTR
	}
	r.sendNow = func(fd uintptr) { r.trySend(fd) }
}

func (r *replier) reset() { r.p, r.oob, r.to, r.err = nil, nil, nil, nil }

// drop counts a datagram that could not be carried, and logs why.
func (u *udpForwarder) drop(why string) {
	n := u.dropped.Add(1)
	u.log.log(evDrop, why+"; dropped ("+strconv.FormatUint(n, 10)+" so far)")
}

// buffer returns the buffer for replies, allocated at the first one.
func (u *udpForwarder) buffer() []byte {
	if u.replyBuf == nil {
		u.replyBuf = make([]byte, udpBufSize)
	}
	return u.replyBuf
}

// now is the flow clock: monotonic nanoseconds since the forwarder began.
func (u *udpForwarder) now() int64 { return int64(time.Since(u.epoch)) }

// expire closes the flows idle for u.idle or longer, and arranges to run
// again when the next one is due.
func (u *udpForwarder) expire() {
	now, idle := u.now(), int64(u.idle)
	next := idle
	var dead []*flow

	u.mu.Lock()
	for k, fl := range u.flows {
		age := now - fl.last.Load()
		if age >= idle {
			delete(u.flows, k)
			dead = append(dead, fl)
			continue
		}
		next = min(next, idle-age)
	}
	switch {
	case u.closed:
	case len(u.flows) == 0:
		u.sweep = nil
	default:
		// Not more often than 16 times per timeout: a flow lives at most
		// 1/16 longer than its timeout.
		u.sweep.Reset(max(time.Duration(next), u.idle/16))
	}
	u.mu.Unlock()

	for _, fl := range dead {
		fl.close()
	}
}

func (u *udpForwarder) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// Close stops reading, then closes every flow.
func (u *udpForwarder) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	if u.sweep != nil {
		u.sweep.Stop()
	}
	flows := u.flows
	u.flows = nil
	u.mu.Unlock()

	err := u.front.Close()
	u.poller.close()
	for _, fl := range flows {
		fl.close()
	}
	u.log.close()
	return err
}
