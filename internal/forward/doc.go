// Package forward moves traffic between a frontend socket on the host and
// a backend address, for the userland-proxy binary.
//
// A [Forwarder] serves one port mapping of one protocol:
//
//   - TCP: one backend connection per client connection. Bytes move between
//     the two sockets with splice(2) through a pipe that is borrowed from a
//     small pool only while data is moving, so an idle connection costs its
//     two sockets and a few hundred bytes of bookkeeping: no goroutine, no
//     pipe, no buffer. Half-close is carried both ways, and a reset is
//     passed on as a reset.
//   - UDP: one connected backend socket per client address and port (a
//     flow). Replies leave from the local address the client sent to.
//     Flows expire when idle, and their number is bounded.
//   - SCTP: one backend association per client association, message by
//     message, keeping stream numbers and payload protocol identifiers.
//
// Waiting is done by one event loop per forwarder: an epoll instance that
// itself waits in the Go runtime's poller (poller_linux.go, sock_linux.go).
// A ready socket's small work, such as a request and its reply, runs on
// the loop's goroutine; a transfer with more to move gets a goroutine of
// its own until it waits again. The event loop, its epoll instance and
// every buffer are made with the first traffic, so that an idle proxy
// costs little more than a Go process that does nothing.
//
// For the same reason the package keeps away from fmt, net and net/netip:
// fmt brings in reflect; net makes the binary a dynamically linked cgo
// program whose start takes half as long again; netip brings in package
// unique and its goroutine. [IP] and [Endpoint] stand in for netip, and
// errors carry what was attempted in a small wrapping type.
//
// The package is Linux only; elsewhere [New] returns an error wrapping
// [errors.ErrUnsupported]. Log lines go to [Config.Log], one line per
// event, rate-limited per kind of event so that a flood cannot flood the
// log.
package forward
