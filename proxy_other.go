//go:build !linux

package portmapper

import "context"

// Start returns [ErrUnsupported]: userland proxies run on Linux only.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.ProxyPath == "" {
		return nil, ErrNoProxyPath
	}
	return nil, ErrUnsupported
}
