//go:build !linux

package publish

import (
	"errors"
	"net/netip"
	"os"
)

// listen is not implemented beyond Linux, where the proxies run.
func listen(proto string, addr netip.AddrPort) (*os.File, netip.AddrPort, error) {
	return nil, addr, errors.ErrUnsupported
}

func canBindIPv6() bool {
	return false
}
