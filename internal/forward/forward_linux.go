//go:build linux

package forward

import "strconv"

// New opens the frontend of cfg, binding it or adopting cfg.Listener, and
// returns a Forwarder ready to Serve. Errors say what is wrong with cfg or
// the socket, in words meant for the person who configured the mapping.
func New(cfg Config) (Forwarder, error) {
	k, ok := kindOf(cfg.Proto)
	if !ok {
		return nil, textError("unsupported protocol " + strconv.Quote(cfg.Proto))
	}
	if err := checkAddrs(&cfg); err != nil {
		return nil, err
	}

	fd, err := frontendSocket(&cfg, k)
	if err != nil {
		return nil, err
	}
	// Each constructor owns fd from here on, and closes it if it fails.
	switch cfg.Proto {
	case "tcp":
		return newTCPForwarder(&cfg, fd)
	case "udp":
		return newUDPForwarder(&cfg, fd)
	default:
		return newSCTPForwarder(&cfg, fd)
	}
}

// logPrefix starts the log lines of a forwarder: protocol, frontend and
// backend.
func logPrefix(proto string, front, back Endpoint) func() string {
	return func() string {
		return proto + " " + front.String() + " -> " + back.String() + ": "
	}
}

// checkAddrs rejects addresses that cannot be served or reached.
func checkAddrs(cfg *Config) error {
	if b := cfg.Backend; b.IP.IsUnspecified() || b.Port == 0 {
		return textError("invalid backend address " + b.String())
	}
	return nil
}
