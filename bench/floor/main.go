// Command floor is the least a userland proxy written in Go can cost: it
// reports ready on the status pipe at once, forwards nothing, and exits 0
// when interrupted. The bench measures start time and memory against it.
//
// It accepts and ignores the proxy command line, and leaves any listening
// socket handed to it untouched.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/userland-proxy/portmapper/internal/contract"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	status := os.NewFile(contract.StatusFD, "status")
	if status == nil {
		os.Exit(1)
	}
	if _, err := status.WriteString(contract.Ready); err != nil {
		os.Exit(1)
	}
	status.Close()

	<-stop
}
