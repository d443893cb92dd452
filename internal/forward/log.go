package forward

import (
	"io"
	"strconv"
	"sync"
	"time"
)

// eventKind names one kind of log event. Each kind is rate-limited on its
// own, so a flood of one kind cannot hide the others.
type eventKind int

const (
	evAccept    eventKind = iota // accepting failed or recovered
	evDial                       // a backend connection failed
	evConn                       // a forwarded connection failed
	evFlow                       // a UDP flow could not be created
	evFlowsFull                  // the UDP flow table is full
	evDrop                       // a datagram could not be carried
	numEventKinds
)

// logInterval is the least time between two lines of one kind. Lines of a
// kind that come sooner are counted, and the last of them is written when
// the interval ends, with the count.
const logInterval = time.Second

// logger writes rate-limited event lines. The zero value discards them.
type logger struct {
	w      io.Writer
	prefix func() string // what starts each line; called at the first

	mu     sync.Mutex
	start  string                  // the prefix, once a line has needed it
	kinds  *[numEventKinds]kindLog // made with the first line
	closed bool
}

// kindLog is the state of one event kind.
type kindLog struct {
	last       time.Time   // when a line of this kind was last written
	suppressed int         // lines held back since then
	held       string      // the last line held back
	flush      *time.Timer // writes the held-back line; nil when idle
}

// init makes l write to w, each line starting with what prefix returns.
// Making the prefix waits for the first line: a proxy that has nothing to
// say allocates nothing for it.
func (l *logger) init(w io.Writer, prefix func() string) {
	l.w, l.prefix = w, prefix
}

// log writes the line msg of kind k, or holds it back if a line of that
// kind was written less than logInterval ago.
func (l *logger) log(k eventKind, msg string) {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.kinds == nil {
		l.kinds = new([numEventKinds]kindLog)
	}
	kl := &l.kinds[k]
	now := time.Now()
	if l.closed || now.Sub(kl.last) >= logInterval && kl.flush == nil {
		kl.last = now
		l.write(msg, 0)
		return
	}

	kl.suppressed++
	kl.held = msg
	if kl.flush == nil {
		wait := logInterval - now.Sub(kl.last)
		kl.flush = time.AfterFunc(wait, func() { l.flushKind(k) })
	}
}

// flushKind writes the line of kind k held back last, with the count of
// lines held back.
func (l *logger) flushKind(k eventKind) {
	l.mu.Lock()
	defer l.mu.Unlock()

	kl := &l.kinds[k]
	kl.flush = nil
	if kl.suppressed == 0 {
		return
	}
	kl.last = time.Now()
	l.write(kl.held, kl.suppressed)
	kl.suppressed, kl.held = 0, ""
}

// write writes one line. Errors are ignored: a log reader that went away
// must not stop the forwarding.
func (l *logger) write(msg string, similar int) {
	if l.start == "" && l.prefix != nil {
		l.start = l.prefix()
	}
	line := l.start + msg
	if similar > 1 {
		line += " (" + strconv.Itoa(similar) + " similar in the last " + logInterval.String() + ")"
	}
	_, _ = io.WriteString(l.w, line+"\n")
}

// close writes every held-back line and stops the timers.
func (l *logger) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	var pending []eventKind
	for k := range numEventKinds {
		if l.kinds == nil {
			break
		}
		if t := l.kinds[k].flush; t != nil && t.Stop() {
			pending = append(pending, k)
		}
	}
	l.mu.Unlock()

	for _, k := range pending {
		l.flushKind(k)
	}
}
