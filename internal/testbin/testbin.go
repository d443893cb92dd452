// Package testbin is for black-box tests of the project's commands: it
// builds them once per test binary and runs the tests with goroutine leak
// checks.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// Main builds pkgs (paths as the go command takes them, relative to the
// test's package) into a temporary directory, hands its path to use, runs
// the tests, checks for leaked goroutines, removes the directory and exits
// with the tests' status. It is meant to be all of a TestMain.
func Main(m *testing.M, use func(dir string), pkgs ...string) {
	dir, err := os.MkdirTemp("", "portmapper-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		os.Exit(2)
	}

	code := 2
	if build(dir, pkgs) {
		use(dir)
		code = run(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string, pkgs []string) bool {
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbin: building %v: %v\n%s", pkgs, err, out)
		return false
	}
	return true
}

func run(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return 0
}
