package main

import "syscall"

// sysProcAttr makes portmap get SIGTERM if the demo dies first, so that it
// stops its proxies rather than leave them running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
