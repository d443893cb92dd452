//go:build !linux

package forward

import (
	"errors"
	"fmt"
	"runtime"
)

// New returns an error wrapping [errors.ErrUnsupported]: forwarding needs
// Linux.
func New(cfg Config) (Forwarder, error) {
	return nil, fmt.Errorf("userland proxy on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
