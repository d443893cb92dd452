// Package forward moves traffic between a frontend socket on the host and
// a backend address, for the userland-proxy binary.
//
// A [Forwarder] serves one port mapping of one protocol:
//
//   - TCP: one backend connection per client connection. Bytes move between
//     the two sockets with splice(2) through a pipe that is borrowed from a
//     small pool only while data is moving, so an idle connection costs its
//     two sockets and a few hundred bytes of bookkeeping: no goroutine, no
//     pipe, no buffer. Half-close is carried both ways.
//   - UDP: one connected backend socket per client address and port (a
//     flow). Replies leave from the local address the client sent to. Flows
//     expire when idle and their number is bounded.
//   - SCTP: one backend association per client association, message by
//     message, keeping stream numbers and payload protocol identifiers.
//
// Waiting is done by one event loop per forwarder (an epoll instance that
// itself waits in the Go runtime's poller), which starts a goroutine only
// when a socket has work; see poller_linux.go. The package is Linux only;
// elsewhere [New] returns an error wrapping [errors.ErrUnsupported].
//
// Log lines go to [Config.Log], one line per event, rate-limited per kind
// of event so that a flood cannot flood the log.
package forward
