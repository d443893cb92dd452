package portmappertest

import (
	"encoding/json"
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

// Fake is a fake proxy binary for one test.
type Fake struct {
	tb   testing.TB
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

	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("finding the test executable: %v", err)
	}
	data, err := json.Marshal(b)
	if err != nil {
		tb.Fatalf("encoding fake proxy behaviour: %v", err)
	}

	f := &Fake{tb: tb, dir: tb.TempDir()}
	f.path = filepath.Join(f.dir, fakeName)
	if err := os.WriteFile(filepath.Join(f.dir, behaviorFile), data, 0o600); err != nil {
		tb.Fatalf("writing fake proxy behaviour: %v", err)
	}
	if err := os.Symlink(exe, f.path); err != nil {
		tb.Fatalf("linking fake proxy: %v", err)
	}
	tb.Cleanup(f.killLeftovers)
	return f
}

// Path is the proxy path to hand to the launcher.
func (f *Fake) Path() string {
	return f.path
}

// Launches returns what every process started from this fake has recorded
// so far, ordered by pid. A fake records its start before it reports on
// the status pipe, and its signals and exit as they happen.
func (f *Fake) Launches() []Launch {
	f.tb.Helper()
	launches, err := readLaunches(f.dir)
	if err != nil {
		f.tb.Fatalf("%v", err)
	}
	return launches
}

// Launch returns the record of the fake process with pid, failing the
// test if there is none.
func (f *Fake) Launch(pid int) Launch {
	f.tb.Helper()
	for _, l := range f.Launches() {
		if l.Pid == pid {
			return l
		}
	}
	f.tb.Fatalf("fake proxy %s has no record of pid %d", f.path, pid)
	return Launch{}
}

// killLeftovers kills the fake processes, and the children they left
// holding pipes, that are still running.
func (f *Fake) killLeftovers() {
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
