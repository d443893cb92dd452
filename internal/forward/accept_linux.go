package forward

import (
	"errors"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pauses of the accept loop after a failure such as running out of
// descriptors: the first, and the longest, reached by doubling. The
// longest also bounds how late the proxy notices that descriptors freed up.
const (
	acceptPauseMin = 5 * time.Millisecond
	acceptPauseMax = 500 * time.Millisecond
)

// acceptor is the listening side the stream forwarders (TCP, SCTP) share:
// it accepts clients from the handed-over socket, and while accepting
// fails it backs off, logging once per burst of failures.
type acceptor struct {
	log     *logger
	lnRaw   syscall.RawConn
	closing chan struct{} // closed when the forwarder closes

	pause   time.Duration
	failed  int       // accept failures in the current burst
	failing time.Time // start of the current burst
}

// next waits for the next client and returns its socket. ok is false
// once the forwarder is closing; a failed accept has been waited out.
func (a *acceptor) next() (fd int, ok bool) {
	for {
		fd, err := a.accept()
		switch {
		case a.isClosing():
			if err == nil {
				unix.Close(fd)
			}
			return -1, false
		case errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			if !a.backOff(err) {
				return -1, false
			}
			continue
		}

		a.recovered()
		return fd, true
	}
}

// accept waits for a client and accepts it. It fails with the error of
// the listener once Close has closed it.
func (a *acceptor) accept() (fd int, err error) {
	rerr := a.lnRaw.Read(func(s uintptr) bool {
		fd, err = accept(int(s))
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return -1, rerr
	}
	return fd, err
}

func (a *acceptor) isClosing() bool {
	select {
	case <-a.closing:
		return true
	default:
		return false
	}
}

// backOff pauses after err, longer at each failure in a row, and reports
// false if the forwarder closed meanwhile.
func (a *acceptor) backOff(err error) bool {
	if a.failed == 0 {
		a.failing = time.Now()
		a.log.log(evAccept, "accept: "+err.Error()+"; pausing until it clears")
	}
	a.failed++
	a.pause = min(max(2*a.pause, acceptPauseMin), acceptPauseMax)

	t := time.NewTimer(a.pause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.closing:
		return false
	}
}

// recovered ends a burst of accept failures.
func (a *acceptor) recovered() {
	if a.failed == 0 {
		return
	}
	a.log.log(evAccept, "accepting again after "+strconv.Itoa(a.failed)+
		" failed attempts in "+time.Since(a.failing).Round(time.Millisecond).String())
	a.failed, a.pause = 0, 0
}
