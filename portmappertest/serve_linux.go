package portmappertest

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/userland-proxy/portmapper/internal/contract"
)

// serve opens the fake's socket, reports, and serves it in the background
// until the fake exits. A socket that cannot be opened is reported as a
// failure, as a real proxy would.
func (f *fakeProcess) serve() {
	var err error
	switch f.flags.proto {
	case "tcp":
		err = f.serveTCP()
	case "udp":
		err = f.serveUDP()
	default:
		err = fmt.Errorf("fake proxy cannot serve %q", f.flags.proto)
	}
	if err != nil {
		f.report(contract.FailurePrefix + err.Error())
		f.exit(1)
	}
	f.report(contract.Ready)
}

func (f *fakeProcess) hostAddr() string {
	return net.JoinHostPort(f.flags.hostIP, strconv.Itoa(f.flags.hostPort))
}

func (f *fakeProcess) containerAddr() string {
	return net.JoinHostPort(f.flags.containerIP, strconv.Itoa(f.flags.containerPort))
}

func (f *fakeProcess) listenSocket() *os.File {
	return os.NewFile(contract.ListenFD, "listen")
}

func (f *fakeProcess) serveTCP() error {
	var ln net.Listener
	var err error
	if f.flags.useListenFD {
		ln, err = net.FileListener(f.listenSocket())
	} else {
		ln, err = net.Listen("tcp", f.hostAddr())
	}
	if err != nil {
		return err
	}

	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.handleTCP(c.(*net.TCPConn))
		}
	}()
	return nil
}

func (f *fakeProcess) handleTCP(c *net.TCPConn) {
	defer c.Close()
	if f.b.Mode == Echo {
		_, _ = io.Copy(c, c)
		return
	}

	backend, err := net.Dial("tcp", f.containerAddr())
	if err != nil {
		return
	}
	defer backend.Close()

	var wg sync.WaitGroup
	wg.Go(func() { pipeHalf(backend.(*net.TCPConn), c) })
	pipeHalf(c, backend.(*net.TCPConn))
	wg.Wait()
}

// pipeHalf copies src to dst and passes the end of src on as a FIN.
func pipeHalf(dst, src *net.TCPConn) {
	_, _ = io.Copy(dst, src)
	_ = dst.CloseWrite()
}

func (f *fakeProcess) serveUDP() error {
	var pc net.PacketConn
	var err error
	if f.flags.useListenFD {
		pc, err = net.FilePacketConn(f.listenSocket())
	} else {
		pc, err = net.ListenPacket("udp", f.hostAddr())
	}
	if err != nil {
		return err
	}

	go f.relayUDP(pc)
	return nil
}

// relayUDP echoes datagrams, or forwards each client's to the backend
// through a socket of its own and sends the replies back.
func (f *fakeProcess) relayUDP(pc net.PacketConn) {
	flows := map[string]net.Conn{}
	buf := make([]byte, 65535)
	for {
		n, client, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if f.b.Mode == Echo {
			_, _ = pc.WriteTo(buf[:n], client)
			continue
		}

		backend, ok := flows[client.String()]
		if !ok {
			if backend, err = net.Dial("udp", f.containerAddr()); err != nil {
				continue
			}
			flows[client.String()] = backend
			go replyUDP(pc, backend, client)
		}
		_, _ = backend.Write(buf[:n])
	}
}

func replyUDP(pc net.PacketConn, backend net.Conn, client net.Addr) {
	buf := make([]byte, 65535)
	for {
		n, err := backend.Read(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], client)
	}
}
