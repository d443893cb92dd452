//go:build linux

package portmappertest_test

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/libnetwork/types"
	"go.uber.org/goleak"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/portmappertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// publish starts fake for a loopback binding of proto, handing it a socket
// as a daemon does, and returns the published address.
func publish(t *testing.T, fake *portmappertest.Fake, proto string, backend *net.TCPAddr) net.Addr {
	t.Helper()
	var sock *os.File
	var addr net.Addr
	var err error
	if proto == "tcp" {
		ln, lerr := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		assert.NilError(t, lerr)
		sock, err = ln.File()
		addr = ln.Addr()
		ln.Close()
	} else {
		pc, lerr := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		assert.NilError(t, lerr)
		sock, err = pc.File()
		addr = pc.LocalAddr()
		pc.Close()
	}
	assert.NilError(t, err)
	defer sock.Close()

	pb := types.PortBinding{Proto: types.ParseProtocol(proto), HostIP: net.IPv4(127, 0, 0, 1)}
	if backend != nil {
		pb.IP, pb.Port = backend.IP, uint16(backend.Port)
	}
	p, err := portmapper.Start(context.Background(), portmapper.Config{
		Binding: pb, ProxyPath: fake.Path(), ListenSock: sock,
	})
	assert.NilError(t, err)
	t.Cleanup(func() { assert.Check(t, p.Stop()) })
	return addr
}

// roundTrip sends msg to addr over proto and returns the answer.
func roundTrip(t *testing.T, proto string, addr net.Addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout(proto, addr.String(), 5*time.Second)
	assert.NilError(t, err)
	defer c.Close()
	assert.NilError(t, c.SetDeadline(time.Now().Add(5*time.Second)))

	_, err = c.Write([]byte(msg))
	assert.NilError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	assert.NilError(t, err)
	return string(buf)
}

func TestEchoServesHandedOverSocket(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Echo})
			addr := publish(t, fake, proto, nil)

			assert.Equal(t, roundTrip(t, proto, addr, "ping"), "ping")
			l := fake.Launches()[0]
			assert.Check(t, is.DeepEqual(l.FDs, []int{0, 1, 2, 3, 4}))
			assert.Check(t, is.Equal(l.ListenSocket.Proto, proto))
			assert.Check(t, is.Equal(l.ListenSocket.Addr, addr.String()))
			assert.Check(t, is.Equal(l.ListenSocket.Listening, proto == "tcp"))
		})
	}
}

func TestForwardReachesBackend(t *testing.T) {
	backend, err := net.Listen("tcp4", "127.0.0.1:0")
	assert.NilError(t, err)
	defer backend.Close()
	go func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("pong"))
	}()

	fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Forward})
	addr := publish(t, fake, "tcp", backend.Addr().(*net.TCPAddr))
	assert.Equal(t, roundTrip(t, "tcp", addr, "ping"), "pong")
}

func TestRecordsSignalsAndExit(t *testing.T) {
	fake := portmappertest.New(t, portmappertest.Behavior{Mode: portmappertest.Deaf})
	p, err := portmapper.Start(context.Background(), portmapper.Config{
		Binding:   types.PortBinding{Proto: types.TCP, HostIP: net.IPv4zero, HostPort: 1, IP: net.IPv4zero, Port: 2},
		ProxyPath: fake.Path(),
		StopGrace: 10 * time.Millisecond,
	})
	assert.NilError(t, err)
	assert.NilError(t, p.Stop())

	l := fake.Launch(p.Pid())
	assert.Check(t, is.DeepEqual(l.Signals, []string{"interrupt"}))
	assert.Check(t, !l.Exited, "a deaf fake ends only by SIGKILL")
}
