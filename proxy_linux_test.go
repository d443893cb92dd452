package portmapper

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/userland-proxy/portmapper/portmappertest"
)

// daemonEnv, when set to a proxy path, makes the test binary play a daemon:
// it starts that proxy, prints its pid, and runs until stdin closes.
const daemonEnv = "PORTMAPPER_TEST_DAEMON_PROXY"

func runDaemon(path string) {
	p, err := Start(context.Background(), Config{Binding: tcpBinding(1), ProxyPath: path})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(p.Pid())
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func TestProxyDiesWithDaemon(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	exe, err := os.Executable()
	assert.NilError(t, err)

	daemon := exec.Command(exe, "-test.run=^$")
	daemon.Env = append(os.Environ(), daemonEnv+"="+fake.Path())
	stdin, err := daemon.StdinPipe()
	assert.NilError(t, err)
	defer stdin.Close()
	stdout, err := daemon.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, daemon.Start())

	line, err := bufio.NewReader(stdout).ReadString('\n')
	assert.NilError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	assert.NilError(t, err, "daemon said %q", line)
	pidfd, err := unix.PidfdOpen(pid, 0)
	assert.NilError(t, err)
	defer unix.Close(pidfd)

	assert.NilError(t, daemon.Process.Kill())
	_ = daemon.Wait()

	assert.Assert(t, waitPidfd(pidfd, 2*time.Second), "proxy %d outlived its daemon by 2s", pid)
	assert.DeepEqual(t, fake.Launch(pid).Signals, []string{"terminated"})
}

// waitPidfd reports whether the process behind pidfd ends within d.
func waitPidfd(pidfd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d.Milliseconds()))
		if err != unix.EINTR {
			return err == nil && n == 1
		}
	}
}

func TestUnrelatedThreadExitsSpareProxies(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	var proxies []*Proxy
	for i := range 4 {
		p, err := Start(context.Background(), Config{
			Binding: tcpBinding(uint16(20000 + i)), ProxyPath: fake.Path(),
		})
		assert.NilError(t, err)
		proxies = append(proxies, p)
	}

	// A goroutine that exits while locked takes its thread with it.
	for range 200 {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}

	for _, p := range proxies {
		assert.Check(t, alive(p.Pid()), "proxy %d was killed", p.Pid())
		assert.Check(t, p.Stop())
	}
}

func TestOnlyContractFDsReachProxy(t *testing.T) {
	// As a daemon might have inherited it: open without close-on-exec.
	stray, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
	assert.NilError(t, err)
	defer unix.Close(stray)

	tests := []struct {
		name    string
		listen  bool
		wantFDs []int
	}{
		{name: "without socket", wantFDs: []int{0, 1, 2, StatusFD}},
		{name: "with socket", listen: true, wantFDs: []int{0, 1, 2, StatusFD, ListenFD}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := portmappertest.New(t, portmappertest.Behavior{})
			sock, port := listenTCP(t)
			if !tc.listen {
				sock = nil
			}

			p, err := Start(context.Background(), Config{
				Binding: tcpBinding(port), ProxyPath: fake.Path(), ListenSock: sock,
			})
			assert.NilError(t, err)
			defer p.Stop()

			l := fake.Launch(p.Pid())
			assert.DeepEqual(t, l.FDs, tc.wantFDs)
			if tc.listen {
				assert.DeepEqual(t, l.ListenSocket, &portmappertest.Socket{
					Proto: "tcp", Family: "ipv4", Listening: true,
					Addr: "127.0.0.1:" + strconv.Itoa(int(port)),
				})
				_, err := sock.Stat()
				assert.Check(t, err, "the caller's socket was closed")
			}
		})
	}
}

func TestStartInNetNS(t *testing.T) {
	ns := newNetNS(t)
	fake := portmappertest.New(t, portmappertest.Behavior{})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own := threadNetNS(t)

	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(), NetNS: ns,
	})
	assert.NilError(t, err)

	want, err := os.Readlink(ns)
	assert.NilError(t, err)
	assert.Check(t, want != own)
	assert.Check(t, is.Equal(fake.Launch(p.Pid()).NetNS, want))
	assert.Check(t, is.Equal(threadNetNS(t), own), "the caller's thread changed namespace")
	assert.Check(t, p.Stop())
}

// threadNetNS names the network namespace of the calling thread.
func threadNetNS(t *testing.T) string {
	t.Helper()
	ns, err := os.Readlink("/proc/thread-self/ns/net")
	assert.NilError(t, err)
	return ns
}

func TestStartInMissingNetNS(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	_, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(), NetNS: "/nonexistent/netns",
	})
	assert.ErrorContains(t, err, "/nonexistent/netns")
	assert.Check(t, is.Len(fake.Launches(), 0))
}

// newNetNS returns the path of a new network namespace that lives until
// the test ends: that of a locked thread that unshared it.
func newNetNS(t *testing.T) string {
	t.Helper()
	path := make(chan string, 1)
	end := make(chan struct{})
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			path <- "error: " + err.Error()
			return
		}
		path <- fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		<-end
	}()
	t.Cleanup(func() { close(end); <-gone })

	p := <-path
	if strings.HasPrefix(p, "error: ") {
		t.Skipf("cannot create a network namespace: %s", p)
	}
	return p
}

func TestPanicKillsChild(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	var pid int
	testHookLaunched = func(p int) {
		pid = p
		panic("injected")
	}
	defer func() { testHookLaunched = nil }()

	func() {
		defer func() { assert.Check(t, is.Equal(recover(), "injected")) }()
		_, _ = StartProxy(tcpBinding(1), fake.Path(), nil)
	}()
	assert.Assert(t, pid != 0)
	_, state := procStat(pid)
	assert.Check(t, is.Equal(state, ""), "pid %d left behind", pid)
}

func TestStartStopCyclesLeakNothing(t *testing.T) {
	cycles := 1000
	if testing.Short() {
		cycles = 100
	}
	fake := portmappertest.New(t, portmappertest.Behavior{})
	sock, port := listenTCP(t)
	cycle := func() {
		stop, err := StartProxy(tcpBinding(port), fake.Path(), sock)
		assert.NilError(t, err)
		assert.NilError(t, stop())
	}

	cycle()
	fds, kids := openFDs(t), children(t)
	ignore := goleak.IgnoreCurrent()
	for range cycles {
		cycle()
	}

	assert.Check(t, is.Equal(openFDs(t), fds))
	assert.Check(t, is.DeepEqual(children(t), kids))
	goleak.VerifyNone(t, ignore)
}
