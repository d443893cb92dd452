//go:build !linux

package forward

import (
	"errors"
	"runtime"
)

// New returns an error wrapping [errors.ErrUnsupported]: forwarding needs
// Linux.
func New(cfg Config) (Forwarder, error) {
	return nil, wrap("userland proxy on "+runtime.GOOS, errors.ErrUnsupported)
}
