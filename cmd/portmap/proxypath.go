package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// proxyName is the proxy binary portmap looks for.
const proxyName = "userland-proxy"

// findProxy returns the absolute path of the proxy binary: flagPath if
// given, else userland-proxy beside the portmap executable, else the
// first in $PATH.
func findProxy(flagPath string) (string, error) {
	if flagPath != "" {
		if err := checkExecutable(flagPath); err != nil {
			return "", fmt.Errorf("using -proxy %s: %w", flagPath, err)
		}
		return filepath.Abs(flagPath)
	}

	var looked []string
	if exe, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(exe), proxyName)
		if checkExecutable(beside) == nil {
			return beside, nil
		}
		looked = append(looked, beside)
	}
	if p, err := exec.LookPath(proxyName); err == nil {
		return filepath.Abs(p)
	}
	looked = append(looked, "$PATH ("+os.Getenv("PATH")+")")
	return "", fmt.Errorf("no %s found: looked at %s; build it, or give its path with -proxy",
		proxyName, strings.Join(looked, " and in "))
}

// checkExecutable tells why path is not an executable file, if it is not.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
