//go:build !linux

// Command bench measures the project's launcher and proxy against their
// peers. It reads /proc and starts processes the Linux way, so it runs on
// Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: runs on Linux only")
	os.Exit(1)
}
