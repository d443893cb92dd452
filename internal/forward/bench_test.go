//go:build linux

package forward

import (
	"io"
	"net"
	"net/netip"
	"testing"
)

// The benchmarks below run each hot path twice: straight to the backend
// ("direct") and through a forwarder ("proxy"), so that benchstat shows
// the proxy's cost next to the floor.

// benchTargets returns the direct and the proxied address of backend.
func benchTargets(b *testing.B, proto string, backend netip.AddrPort) map[string]netip.AddrPort {
	f, _ := serve(b, Config{Proto: proto, Frontend: ep(frontend("4")), Backend: ep(backend)})
	return map[string]netip.AddrPort{"direct": backend, "proxy": addrOf(f)}
}

func BenchmarkTCPBulk(b *testing.B) {
	sink := serveTCP(b, "tcp4", func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	chunk := make([]byte, 1<<20)
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			c := dialTCP(b, benchTargets(b, "tcp", sink)[name])
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTCPRoundTrip(b *testing.B) {
	backend := echoTCP(b, "tcp4")
	msg := make([]byte, 64)
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			c := dialTCP(b, benchTargets(b, "tcp", backend)[name])
			buf := make([]byte, len(msg))
			for b.Loop() {
				c.Write(msg)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTCPShortConnections(b *testing.B) {
	backend := echoTCP(b, "tcp4")
	msg := []byte("GET / HTTP/1.0\r\n\r\n")
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			addr := benchTargets(b, "tcp", backend)[name]
			for b.Loop() {
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					b.Fatal(err)
				}
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
}

func BenchmarkUDPRoundTrip(b *testing.B) {
	backend := startUDPBackend(b, "4", echo)
	msg := make([]byte, 64)
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			addr := benchTargets(b, "udp", backend.addr)[name]
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 2048)
			for b.Loop() {
				c.Write(msg)
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSplice measures one direction of the TCP hot path alone: a
// pump's carrier moving 256 KiB from one socket to another.
func BenchmarkSplice(b *testing.B) {
	src, dst := socketPair(b), socketPair(b)
	var pool pipePool
	defer pool.close()
	data := make([]byte, pipeSize)
	sink := make([]byte, pipeSize)

	b.SetBytes(int64(len(data)))
	for b.Loop() {
		src[1].Write(data)
		car := newCarrier(&pool)
		for moved := 0; moved < len(data); {
			n, err := car.fill(int(fdOf(b, src[0])))
			if err != nil {
				b.Fatal(err)
			}
			for car.buffered() > 0 {
				if _, err := car.drain(int(fdOf(b, dst[0]))); err != nil {
					b.Fatal(err)
				}
			}
			moved += n
		}
		car.release()
		io.ReadFull(dst[1], sink)
	}
}

// socketPair returns two connected TCP sockets on loopback; the first is
// read and written by raw descriptor in BenchmarkSplice.
func socketPair(b *testing.B) [2]*net.TCPConn {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c1 := dialTCP(b, ln.Addr().(*net.TCPAddr).AddrPort())
	c2, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c2.Close() })
	return [2]*net.TCPConn{c2.(*net.TCPConn), c1}
}

func fdOf(b *testing.B, c *net.TCPConn) uintptr {
	raw, err := c.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var fd uintptr
	raw.Control(func(s uintptr) { fd = s })
	return fd
}
