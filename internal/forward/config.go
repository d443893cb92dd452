package forward

import (
	"io"
	"os"
	"time"
)

// Defaults for the zero values of [Config].
const (
	// DefaultConnectTimeout bounds the connection to the backend of a new
	// TCP or SCTP client. When it runs out, the client is closed.
	DefaultConnectTimeout = 5 * time.Second

	// DefaultUDPIdleTimeout is how long a UDP flow lives without a datagram
	// in either direction. It matches docker-proxy.
	DefaultUDPIdleTimeout = 90 * time.Second

	// DefaultUDPMaxFlows bounds the UDP flow table. Each flow holds one
	// socket, so this also bounds the descriptors used for UDP.
	DefaultUDPMaxFlows = 16384
)

// Config describes one port mapping.
type Config struct {
	// Proto is "tcp", "udp" or "sctp".
	Proto string

	// Frontend is the host address to serve. Without Listener, New binds
	// it (port 0 picks a free port; see [Forwarder.Addr]); an IPv6
	// address, the unspecified one included, binds IPv6 only.
	// With Listener, only its family is used, to check the socket's.
	Frontend Endpoint

	// Backend is where every connection or flow is forwarded. Its family
	// may differ from Frontend's.
	Backend Endpoint

	// Listener, if not nil, is the socket to serve instead of binding
	// Frontend: listening for TCP and SCTP, bound for UDP. New duplicates
	// it; the caller keeps ownership of Listener and may close it once New
	// returns.
	Listener *os.File

	// ConnectTimeout bounds the backend connection of a TCP or SCTP
	// client. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// UDPIdleTimeout is how long a UDP flow lives without traffic. Zero
	// means DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration

	// UDPMaxFlows bounds the UDP flow table. Zero means
	// DefaultUDPMaxFlows.
	UDPMaxFlows int

	// Log receives one line per event worth a human's attention. Nil
	// discards them.
	Log io.Writer
}

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return c.ConnectTimeout
}

func (c *Config) udpIdleTimeout() time.Duration {
	if c.UDPIdleTimeout <= 0 {
		return DefaultUDPIdleTimeout
	}
	return c.UDPIdleTimeout
}

func (c *Config) udpMaxFlows() int {
	if c.UDPMaxFlows <= 0 {
		return DefaultUDPMaxFlows
	}
	return c.UDPMaxFlows
}

// A Forwarder serves one port mapping.
type Forwarder interface {
	// Addr is the frontend address being served.
	Addr() Endpoint

	// Serve forwards traffic until Close is called, then returns nil.
	// It returns an error only if the frontend socket fails for good.
	Serve() error

	// Close stops accepting, closes every socket of the mapping and
	// waits, for a bounded time, for work in flight to stop. It is safe
	// to call more than once.
	Close() error
}
