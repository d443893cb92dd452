package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// greeting is what the demo's HTTP server answers.
const greeting = "hello from the demo backend\n"

// readHeaderTimeout bounds how long the HTTP server waits for a request.
const readHeaderTimeout = 5 * time.Second

// backend is the service the demo publishes: an HTTP server, a TCP echo
// and a UDP echo, on ports of 127.0.0.1 the kernel picks.
type backend struct {
	http, tcpEcho, udpEcho netip.AddrPort

	server *http.Server
	echoLn net.Listener
	echoPC net.PacketConn
}

// startBackend starts the three servers.
func startBackend() (_ *backend, err error) {
	b := &backend{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()

	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the http backend: %w", err)
	}
	b.server = &http.Server{Handler: http.HandlerFunc(greet), ReadHeaderTimeout: readHeaderTimeout}
	go b.server.Serve(httpLn)
	b.http = httpLn.Addr().(*net.TCPAddr).AddrPort()

	if b.echoLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("starting the tcp echo backend: %w", err)
	}
	go serveTCPEcho(b.echoLn)
	b.tcpEcho = b.echoLn.Addr().(*net.TCPAddr).AddrPort()

	if b.echoPC, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("starting the udp echo backend: %w", err)
	}
	go serveUDPEcho(b.echoPC)
	b.udpEcho = b.echoPC.LocalAddr().(*net.UDPAddr).AddrPort()
	return b, nil
}

// close stops whatever servers were started.
func (b *backend) close() {
	if b.server != nil {
		b.server.Close()
	}
	if b.echoLn != nil {
		b.echoLn.Close()
	}
	if b.echoPC != nil {
		b.echoPC.Close()
	}
}

func greet(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, greeting)
}

// serveTCPEcho echoes each connection on ln until its client closes.
func serveTCPEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		go echoConn(c)
	}
}

func echoConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(readHeaderTimeout))
	_, _ = io.Copy(c, c)
}

// serveUDPEcho sends every datagram on pc back to where it came from.
func serveUDPEcho(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}
}
