//go:build linux

package portmapper

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/userland-proxy/portmapper/portmappertest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(daemonEnv); path != "" {
		runDaemon(path)
		return
	}
	goleak.VerifyTestMain(m)
}

func TestStartProxyArgvAndStop(t *testing.T) {
	tests := []struct {
		name   string
		listen bool
		want   []string
	}{
		{name: "proxy binds itself", want: []string{
			"-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "PORT",
			"-container-ip", "127.0.0.1", "-container-port", "9"}},
		{name: "listen fd", listen: true, want: []string{
			"-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "PORT",
			"-container-ip", "127.0.0.1", "-container-port", "9", "-use-listen-fd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := portmappertest.New(t, portmappertest.Behavior{})
			sock, port := listenTCP(t)
			if !tc.listen {
				sock = nil
			}

			stop, err := StartProxy(tcpBinding(port), fake.Path(), sock)
			assert.NilError(t, err)
			launches := fake.Launches()
			assert.Assert(t, is.Len(launches, 1))
			assert.NilError(t, stop())

			l := fake.Launch(launches[0].Pid)
			want := append([]string{fake.Path()}, tc.want...)
			want[6] = strconv.Itoa(int(port))
			assert.DeepEqual(t, l.Args, want)
			assert.DeepEqual(t, l.Signals, []string{"interrupt"})
			assert.Check(t, l.Exited && l.ExitCode == 0, "launch: %+v", l)
			assert.Check(t, !alive(l.Pid))
		})
	}
}

func TestStartProxyNoPath(t *testing.T) {
	stop, err := StartProxy(tcpBinding(1), "", nil)
	assert.Check(t, stop == nil)
	assert.Check(t, errors.Is(err, ErrNoProxyPath))
	assert.Error(t, err, "no path provided for userland-proxy binary")
}

func TestStartProxyMissingBinary(t *testing.T) {
	before := openFDs(t)
	_, err := StartProxy(tcpBinding(1), "/nonexistent/userland-proxy", nil)
	assert.ErrorContains(t, err, "/nonexistent/userland-proxy")
	assert.Check(t, errors.Is(err, os.ErrNotExist), "err: %v", err)
	assert.Equal(t, openFDs(t), before)
}

func TestStatusIsAStream(t *testing.T) {
	tests := []struct {
		name string
		b    portmappertest.Behavior
	}{
		{name: "split ready", b: portmappertest.Behavior{Mode: portmappertest.Split}},
		{name: "bytes after ready", b: portmappertest.Behavior{
			Mode: portmappertest.Chatty, Message: "and some more"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := portmappertest.New(t, tc.b)
			stop, err := StartProxy(tcpBinding(1), fake.Path(), nil)
			assert.NilError(t, err)
			assert.NilError(t, stop())
		})
	}
}

func TestStartFailures(t *testing.T) {
	long := strings.Repeat("y", MaxStatusBytes+100)
	tests := []struct {
		name    string
		b       portmappertest.Behavior
		listen  bool
		wantErr string   // the whole text, or its start when wantIn is set
		wantIn  []string // what the text must also hold
		wantIs  error
	}{
		{
			name:    "reported failure",
			b:       portmappertest.Behavior{Mode: portmappertest.Fail, Message: "bind: address in use"},
			wantErr: "error starting userland proxy: bind: address in use",
		},
		{
			name:    "reported failure, pipe held open",
			b:       portmappertest.Behavior{Mode: portmappertest.FailHeld, Message: "no route"},
			wantErr: "error starting userland proxy: no route",
		},
		{
			name:    "long failure is cut",
			b:       portmappertest.Behavior{Mode: portmappertest.Fail, Message: long},
			wantErr: "error starting userland proxy: yyy",
			wantIn:  []string{"[cut at 65536 bytes]"},
		},
		{
			name:    "flood",
			b:       portmappertest.Behavior{Mode: portmappertest.Flood},
			wantErr: "error starting userland proxy: xxx",
			wantIn:  []string{"[cut at 65536 bytes]"},
		},
		{
			name:    "outdated proxy",
			b:       portmappertest.Behavior{Mode: portmappertest.Silent},
			listen:  true,
			wantErr: "failed to start docker-proxy, check that the current version is in your $PATH",
			wantIn:  []string{"exited with status 2", "flag provided but not defined: -use-listen-fd"},
			wantIs:  ErrOutdatedProxy,
		},
		{
			name:    "silent exit without listen fd",
			b:       portmappertest.Behavior{Mode: portmappertest.Silent},
			wantErr: "error starting userland proxy: no status reported",
			wantIn:  []string{"exited with status 2", "flag provided but not defined"},
		},
		{
			name:    "failure without a reason",
			b:       portmappertest.Behavior{Mode: portmappertest.Fail},
			wantErr: "error starting userland proxy: failure reported without a reason",
			wantIn:  []string{"exited with status 1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := portmappertest.New(t, tc.b)
			sock, port := listenTCP(t)
			if !tc.listen {
				sock = nil
			}
			before := openFDs(t)

			p, err := Start(context.Background(), Config{
				Binding: tcpBinding(port), ProxyPath: fake.Path(), ListenSock: sock,
				StartTimeout: time.Minute,
			})
			assert.Check(t, p == nil)
			assert.Assert(t, err != nil)
			text := err.Error()
			if tc.wantIn == nil {
				assert.Equal(t, text, tc.wantErr)
			} else {
				assert.Check(t, strings.HasPrefix(text, tc.wantErr), "error: %.300s", text)
			}
			for _, want := range tc.wantIn {
				assert.Check(t, is.Contains(text, want))
			}
			assert.Check(t, len(text) < MaxStatusBytes+1024, "error is %d bytes", len(text))

			var se *StartError
			assert.Check(t, errors.As(err, &se))
			assert.Check(t, !errors.Is(err, ErrStartTimeout))
			if tc.wantIs != nil {
				assert.Check(t, errors.Is(err, tc.wantIs))
			}
			assertGone(t, fake)
			assert.Check(t, is.Equal(openFDs(t), before))
		})
	}
}

// assertGone checks that every process started from fake has ended and
// been reaped.
func assertGone(t *testing.T, fake *portmappertest.Fake) {
	t.Helper()
	launches := fake.Launches()
	assert.Check(t, len(launches) > 0, "no launch recorded")
	for _, l := range launches {
		_, state := procStat(l.Pid)
		assert.Check(t, state == "", "pid %d still there, state %q", l.Pid, state)
	}
}

func TestStartTimeout(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Hang})
	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(), StartTimeout: 100 * time.Millisecond,
	})
	assert.Check(t, p == nil)
	assert.Check(t, errors.Is(err, ErrStartTimeout))
	assert.Check(t, strings.HasPrefix(err.Error(), "timed out starting the userland proxy"), err.Error())
	assertGone(t, fake)
}

func TestStartCancelled(t *testing.T) {
	t.Run("before start", func(t *testing.T) {
		fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Hang})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()

		p, err := Start(ctx, Config{Binding: tcpBinding(1), ProxyPath: fake.Path()})
		assert.Check(t, p == nil)
		assert.Check(t, errors.Is(err, ErrStartTimeout))
		assert.Check(t, errors.Is(err, context.Canceled))
		assert.Check(t, is.Len(fake.Launches(), 0))
	})
	t.Run("while waiting", func(t *testing.T) {
		fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Hang})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var pid int
		testHookLaunched = func(p int) {
			pid = p
			cancel()
		}
		defer func() { testHookLaunched = nil }()

		p, err := Start(ctx, Config{Binding: tcpBinding(1), ProxyPath: fake.Path()})
		assert.Check(t, p == nil)
		assert.Check(t, errors.Is(err, ErrStartTimeout))
		assert.Check(t, errors.Is(err, context.Canceled))
		assert.Check(t, is.Contains(err.Error(), "context canceled"))
		_, state := procStat(pid)
		assert.Check(t, is.Equal(state, ""), "pid %d left behind", pid)
	})
}

func TestStopIsIdempotent(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	stop, err := StartProxy(tcpBinding(1), fake.Path(), nil)
	assert.NilError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = stop() })
	}
	wg.Wait()
	for _, err := range errs {
		assert.Check(t, err)
	}
	assert.NilError(t, stop())
	assert.DeepEqual(t, fake.Launches()[0].Signals, []string{"interrupt"})
}

func TestStopKillsDeafProxy(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Deaf})
	logs, logger := newLogBuffer()
	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(),
		StopGrace: 50 * time.Millisecond, Logger: logger,
	})
	assert.NilError(t, err)

	assert.NilError(t, p.Stop())
	l := fake.Launch(p.Pid())
	assert.DeepEqual(t, l.Signals, []string{"interrupt"})
	assert.Check(t, !l.Exited)
	assert.Check(t, is.Contains(logs.String(), "ignored SIGINT"))
	assertGone(t, fake)
}

func TestProxyDiesEarly(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Dies, Message: "backend vanished", ExitCode: 7,
	})
	logs, logger := newLogBuffer()
	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(), Logger: logger,
	})
	assert.NilError(t, err)

	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy's exit was not noticed")
	}
	assertGone(t, fake)

	var ee *ExitError
	assert.Assert(t, errors.As(p.Err(), &ee))
	assert.Check(t, is.Equal(ee.Pid, p.Pid()))
	assert.Check(t, is.Contains(p.Err().Error(), "exited with status 7"))
	assert.Check(t, is.Contains(p.Err().Error(), "backend vanished"))

	err = p.Stop()
	assert.Check(t, errors.Is(err, ErrAlreadyExited))
	assert.Check(t, is.Contains(err.Error(), "exited with status 7"))

	assert.Check(t, logs.waitFor("exited unexpectedly", 10*time.Second), logs.String())
	out := logs.String()
	assert.Check(t, is.Contains(out, "binding=127.0.0.1:1:127.0.0.1:9/tcp"))
	assert.Check(t, is.Contains(out, "exited with status 7"))
}

func TestStderrGoesToLogger(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{
		Mode: portmappertest.Fail, Message: "boom",
	})
	logs, logger := newLogBuffer()
	_, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(), Logger: logger,
	})
	assert.Error(t, err, "error starting userland proxy: boom")
	assert.Check(t, !strings.Contains(logs.String(), "exited unexpectedly"), logs.String())
}

func TestConcurrentStarts(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{})
	const n = 64
	stops := make([]func() error, n)
	errs := make([]error, n)

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stops[i], errs[i] = StartProxy(tcpBinding(uint16(10000+i)), fake.Path(), nil)
		})
	}
	wg.Wait()

	for i := range n {
		assert.Check(t, errs[i], "start %d", i)
		if stops[i] != nil {
			wg.Go(func() { assert.Check(t, stops[i]()) })
		}
	}
	wg.Wait()
	assert.Check(t, is.Len(fake.Launches(), n))
	assertGone(t, fake)
}

// BenchmarkStartStop measures one start/stop cycle of a proxy that reports
// ready at once, with a socket handed over as a daemon does.
func BenchmarkStartStop(b *testing.B) {
	fake := portmappertest.New(b, portmappertest.Behavior{})
	sock, port := listenTCP(b)
	b.ReportAllocs()

	for b.Loop() {
		stop, err := StartProxy(tcpBinding(port), fake.Path(), sock)
		if err != nil {
			b.Fatal(err)
		}
		if err := stop(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHostileProxies(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		listen  bool
		wantErr []string // what the error holds; none: the start succeeds
		wantIs  error
	}{
		{
			name:    "blank failure reason",
			script:  `printf '1\n   \n' >&3; echo 'port is taken' >&2; exit 1`,
			wantErr: []string{"failure reported without a reason", "exited with status 1", "port is taken"},
		},
		{
			name:    "reason then silence",
			script:  `printf '1\nbind: address already in use' >&3; exec sleep 60`,
			wantErr: []string{"timed out starting the userland proxy", "proxy said: bind: address already in use"},
			wantIs:  ErrStartTimeout,
		},
		{
			name:    "control bytes in reason",
			script:  `printf '1\nbad\033[2Jbyte\001s' >&3; exit 1`,
			wantErr: []string{"error starting userland proxy: bad\uFFFD[2Jbyte\uFFFDs"},
		},
		{
			name: "descendant floods stderr after failing",
			script: `yes flood >&2 & echo $! >> "$PIDS"
				printf '1\nno luck' >&3; exit 1`,
			wantErr: []string{"error starting userland proxy: no luck"},
		},
		{
			name: "descendant floods stderr after exiting silently",
			script: `yes flood >&2 & echo $! >> "$PIDS"
				exit 0`,
			wantErr: []string{"no status reported", "exited with status 0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := scriptProxy(t, tc.script)
			p, err := Start(context.Background(), Config{
				Binding: tcpBinding(1), ProxyPath: path, StartTimeout: time.Second,
				Logger: slog.New(slog.DiscardHandler),
			})
			assert.Check(t, p == nil)
			assert.Assert(t, err != nil)
			for _, want := range tc.wantErr {
				assert.Check(t, is.Contains(err.Error(), want))
			}
			if tc.wantIs != nil {
				assert.Check(t, errors.Is(err, tc.wantIs))
			} else {
				assert.Check(t, !errors.Is(err, ErrStartTimeout), "err: %.300s", err)
			}
		})
	}
}

func TestStopWithDescendantFloodingStderr(t *testing.T) {
	path := scriptProxy(t, `yes flood >&2 & echo $! >> "$PIDS"
		printf '0\n' >&3; exec 3>&-
		trap 'exit 0' INT TERM
		while :; do sleep 0.1; done`)
	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: path, Logger: slog.New(slog.DiscardHandler),
	})
	assert.NilError(t, err)

	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop() }()
	select {
	case err := <-stopped:
		assert.Check(t, err)
	case <-time.After(DefaultStopGrace + 10*time.Second):
		t.Fatal("Stop did not return")
	}
}

func TestSlowLoggerHoldsNothingUp(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{Stderr: "listening"})
	release := make(chan struct{})
	defer close(release)
	p, err := Start(context.Background(), Config{
		Binding: tcpBinding(1), ProxyPath: fake.Path(),
		StopGrace: time.Minute, Logger: slog.New(blockingHandler{release}),
	})
	assert.NilError(t, err)

	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop() }()
	select {
	case err := <-stopped:
		assert.Check(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Stop waited for the logger")
	}
	l := fake.Launch(p.Pid())
	assert.Check(t, l.Exited && l.ExitCode == 0, "the fake was killed: %+v", l)
}
