package portmappertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The names that make a test binary play a fake proxy: the link [New]
// creates, and the behaviour file beside it.
const (
	fakeName     = "fake-userland-proxy"
	behaviorFile = "fake-behavior.json"
)

// Fake is a fake proxy binary.
type Fake struct {
	tb   testing.TB // nil for a Fake from NewInDir
	dir  string
	path string
}

// New returns a fake proxy that behaves as b each time it is started.
// The fake's files live in a directory of tb's own; processes still
// running when tb ends are killed. On platforms other than Linux, New
// skips the test.
func New(tb testing.TB, b Behavior) *Fake {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skipf("fake userland proxies need Linux, not %s", runtime.GOOS)
	}

	f, err := NewInDir(tb.TempDir(), b)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	f.tb = tb
	tb.Cleanup(f.Close)
	return f
}

// NewInDir is [New] for code without a [testing.TB], such as TestMain or
// an example: the fake's files go in dir, which should be empty and is
// the caller's to remove, and Close kills what is left running.
func NewInDir(dir string, b Behavior) (*Fake, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the test executable: %w", err)
	}
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding fake proxy behaviour: %w", err)
	}

	f := &Fake{dir: dir, path: filepath.Join(dir, fakeName)}
	if err := os.WriteFile(filepath.Join(dir, behaviorFile), data, 0o600); err != nil {
		return nil, fmt.Errorf("writing fake proxy behaviour: %w", err)
	}
	if err := os.Symlink(exe, f.path); err != nil {
		return nil, fmt.Errorf("linking fake proxy: %w", err)
	}
	return f, nil
}

// Path is the proxy path to hand to the launcher.
func (f *Fake) Path() string {
	return f.path
}

// Launches returns what every process started from this fake has recorded
// so far, ordered by pid. A fake records its start before it reports on
// the status pipe, and its signals and exit as they happen. A record that
// cannot be read fails the test (a Fake from NewInDir panics).
func (f *Fake) Launches() []Launch {
	if f.tb != nil {
		f.tb.Helper()
	}
	launches, err := readLaunches(f.dir)
	if err != nil {
		f.fatalf("%v", err)
	}
	return launches
}

func (f *Fake) fatalf(format string, args ...any) {
	if f.tb == nil {
		panic(fmt.Sprintf(format, args...))
	}
	f.tb.Helper()
	f.tb.Fatalf(format, args...)
}

// Launch returns the record of the fake process with pid, failing the
// test if there is none.
func (f *Fake) Launch(pid int) Launch {
	if f.tb != nil {
		f.tb.Helper()
	}
	for _, l := range f.Launches() {
		if l.Pid == pid {
			return l
		}
	}
	f.fatalf("fake proxy %s has no record of pid %d", f.path, pid)
	return Launch{}
}

// Close kills the fake processes, and the children they left holding
// pipes, that are still running. [New] arranges for it to run when the
// test ends.
func (f *Fake) Close() {
	launches, _ := readLaunches(f.dir)
	for _, l := range launches {
		if !l.Exited {
			killIf(l.Pid, f.path)
		}
		if l.HolderPid != 0 {
			killIf(l.HolderPid, "sleep")
		}
	}
}

// killIf sends SIGKILL to pid if its argv[0] is still argv0, so that a
// reused pid is left alone.
func killIf(pid int, argv0 string) {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(cmdline), "\x00")
	if first == argv0 {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
			_ = p.Release()
		}
	}
}
