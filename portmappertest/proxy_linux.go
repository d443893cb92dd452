package portmappertest

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userland-proxy/portmapper/internal/contract"
)

// defaultSplitDelay is the pause between the two writes of [Split].
const defaultSplitDelay = 50 * time.Millisecond

func init() {
	if filepath.Base(os.Args[0]) != fakeName {
		return
	}
	fds := inheritedFDs()
	dir := filepath.Dir(os.Args[0])
	data, err := os.ReadFile(filepath.Join(dir, behaviorFile))
	if err != nil {
		return
	}
	var b Behavior
	if err := json.Unmarshal(data, &b); err != nil {
		fmt.Fprintf(os.Stderr, "fake proxy: reading behaviour: %v\n", err)
		unix.Exit(3)
	}
	f := &fakeProcess{b: b, record: recordFile(dir, os.Getpid()), fds: fds}
	f.run()
}

// fakeProcess is the proxy side of a fake: one process playing b.
type fakeProcess struct {
	b      Behavior
	record string
	fds    []int
	flags  proxyFlags
	status *os.File
}

// proxyFlags are the contract's flags, as the fake parsed them.
type proxyFlags struct {
	proto, hostIP, containerIP string
	hostPort, containerPort    int
	useListenFD                bool
}

func (f *fakeProcess) run() {
	unix.CloseOnExec(contract.StatusFD)
	unix.CloseOnExec(contract.ListenFD)
	f.status = os.NewFile(contract.StatusFD, "status")

	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	f.recordStart()
	if f.b.Stderr != "" {
		fmt.Fprintln(os.Stderr, f.b.Stderr)
	}

	if f.b.Mode == Silent {
		f.complainOutdated()
		f.exit(2)
	}
	if err := f.parseFlags(); err != nil {
		f.exit(2)
	}

	f.play()
	f.serveSignals(signals)
}

func (f *fakeProcess) parseFlags() error {
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.StringVar(&f.flags.proto, contract.FlagProto, "tcp", "")
	fs.StringVar(&f.flags.hostIP, contract.FlagHostIP, "", "")
	fs.IntVar(&f.flags.hostPort, contract.FlagHostPort, 0, "")
	fs.StringVar(&f.flags.containerIP, contract.FlagContainerIP, "", "")
	fs.IntVar(&f.flags.containerPort, contract.FlagContainerPort, 0, "")
	fs.BoolVar(&f.flags.useListenFD, contract.FlagUseListenFD, false, "")
	return fs.Parse(os.Args[1:])
}

// play does what the mode asks before the fake waits for signals. Modes
// that end by themselves exit here.
func (f *fakeProcess) play() {
	switch f.b.Mode {
	case Fail:
		f.report(contract.FailurePrefix + f.b.Message)
		f.exit(1)
	case Hang:
	case Split:
		f.write("0")
		time.Sleep(cmp.Or(f.b.Delay, defaultSplitDelay))
		f.report("\n")
	case Chatty:
		f.report(contract.Ready + f.b.Message)
	case Flood:
		f.flood()
	case FailHeld:
		f.write(contract.FailurePrefix + f.b.Message)
		f.holdPipes()
		f.exit(1)
	case Dies:
		f.report(contract.Ready)
		time.Sleep(f.b.Delay)
		fmt.Fprintln(os.Stderr, f.b.Message)
		f.exit(f.b.ExitCode)
	case Echo, Forward:
		f.serve()
	default:
		f.report(contract.Ready)
	}
}

// serveSignals ends the fake on SIGINT or SIGTERM, recording each one; a
// [Deaf] fake lets SIGINT pass.
func (f *fakeProcess) serveSignals(signals <-chan os.Signal) {
	for sig := range signals {
		f.appendEvent(event{Kind: "signal", Signal: sig.String()})
		if f.b.Mode == Deaf && sig == syscall.SIGINT {
			continue
		}
		f.exit(0)
	}
}

// report writes msg on the status pipe and closes it.
func (f *fakeProcess) report(msg string) {
	f.write(msg)
	f.status.Close()
}

func (f *fakeProcess) write(msg string) {
	_, _ = io.WriteString(f.status, msg)
}

// flood reports a failure and keeps writing until the launcher stops
// reading, then exits.
func (f *fakeProcess) flood() {
	f.write(contract.FailurePrefix)
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for {
		if _, err := f.status.Write(chunk); err != nil {
			f.exit(1)
		}
	}
}

// holdPipes starts a child that keeps the status pipe and stderr open
// after the fake has exited.
func (f *fakeProcess) holdPipes() {
	cmd := exec.Command("sleep", "60")
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{f.status}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "fake proxy: starting pipe holder: %v\n", err)
		return
	}
	f.appendEvent(event{Kind: "holder", Pid: cmd.Process.Pid})
}

// exit records the end and leaves at once. It bypasses os.Exit, which
// under the race detector waits a second before the process ends.
func (f *fakeProcess) exit(code int) {
	f.appendEvent(event{Kind: "exit", Code: code})
	unix.Exit(code)
}

func (f *fakeProcess) recordStart() {
	l := &Launch{Pid: os.Getpid(), Args: os.Args, FDs: f.fds}
	l.NetNS, _ = os.Readlink("/proc/self/ns/net")
	for _, fd := range f.fds {
		if fd == contract.ListenFD {
			l.ListenSocket = describeSocket(fd)
		}
	}
	f.appendEvent(event{Kind: "start", Start: l})
}

func (f *fakeProcess) appendEvent(e event) {
	if err := appendEvent(f.record, e); err != nil {
		fmt.Fprintf(os.Stderr, "fake proxy: recording: %v\n", err)
	}
}

// inheritedFDs lists the descriptors this process inherited: those open
// without close-on-exec. What the Go runtime opens for itself is marked
// close-on-exec, and an exec drops every descriptor that was so marked.
func inheritedFDs() []int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)

	var fds []int
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || uintptr(fd) == d.Fd() {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil &&
			flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds
}

// describeSocket says what kind of socket fd is, or nil if it is none.
func describeSocket(fd int) *Socket {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil
	}
	proto, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	domain, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)

	s := &Socket{Proto: protoName(proto, typ), Family: "ipv4", Listening: listening == 1}
	if domain == unix.AF_INET6 {
		s.Family = "ipv6"
	}
	sa, _ := unix.Getsockname(fd)
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		s.Addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		s.Addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return s
}

func protoName(proto, typ int) string {
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_MPTCP:
		// Go listens with MPTCP where the kernel has it; to a proxy it
		// is TCP.
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprintf("protocol %d, type %d", proto, typ)
}

// complainOutdated writes what an outdated proxy writes when it meets a
// flag it does not know.
func (f *fakeProcess) complainOutdated() {
	flag := "-" + contract.FlagUseListenFD
	if !slices.Contains(os.Args, flag) {
		flag = "-fake-proxy-silent"
	}
	fmt.Fprintf(os.Stderr, "flag provided but not defined: %s\n", flag)
}
