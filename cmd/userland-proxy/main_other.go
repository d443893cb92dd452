//go:build !linux

// Command userland-proxy forwards one port mapping from the host to a
// container. It runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "userland-proxy: Linux only")
	os.Exit(1)
}
