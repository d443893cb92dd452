package publish

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/userland-proxy/portmapper/internal/portspec"
)

// dualStackAttempts is how many ports the kernel may pick for a spec
// without a host address before giving up: each time, the port it picks
// for IPv4 may already be taken on IPv6.
const dualStackAttempts = 8

// hostHasIPv6 tells whether this host can bind IPv6 sockets; it is asked
// once.
var hostHasIPv6 = sync.OnceValue(canBindIPv6)

// bindAll binds the sockets of every spec, in order, and records them.
func (p *Publisher) bindAll(specs []portspec.Spec) error {
	for _, s := range specs {
		for _, m := range s.Mappings() {
			if err := p.bindMapping(s, m); err != nil {
				return fmt.Errorf("publishing %q: %w", s.Text, err)
			}
		}
	}
	return nil
}

// bindMapping binds one port of s: on its host address, or, without one,
// on every IPv4 address and, if the host has IPv6, every IPv6 address.
func (p *Publisher) bindMapping(s portspec.Spec, m portspec.Mapping) error {
	backend := netip.AddrPortFrom(s.BackendIP, m.BackendPort)
	if s.HostIP.IsValid() {
		return p.bindOne(s, netip.AddrPortFrom(s.HostIP, m.HostPort), backend)
	}

	any4 := netip.AddrPortFrom(p.everyAddr[0], m.HostPort)
	if !hostHasIPv6() {
		return p.bindOne(s, any4, backend)
	}
	if m.HostPort != 0 {
		if err := p.bindOne(s, any4, backend); err != nil {
			return err
		}
		return p.bindOne(s, netip.AddrPortFrom(p.everyAddr[1], m.HostPort), backend)
	}
	return p.bindDualEphemeral(s, backend)
}

// bindOne binds host for s and records the binding.
func (p *Publisher) bindOne(s portspec.Spec, host, backend netip.AddrPort) error {
	b, err := bind(s, host, backend)
	if err != nil {
		return err
	}
	p.bindings = append(p.bindings, b)
	return nil
}

// bindDualEphemeral binds IPv4 on a port the kernel picks, then IPv6 on
// the same port; if that port is taken on IPv6, it tries another.
func (p *Publisher) bindDualEphemeral(s portspec.Spec, backend netip.AddrPort) error {
	var err error
	for range dualStackAttempts {
		var b4, b6 *binding
		b4, err = bind(s, netip.AddrPortFrom(p.everyAddr[0], 0), backend)
		if err != nil {
			return err
		}

		port := b4.Host.Port()
		b6, err = bind(s, netip.AddrPortFrom(p.everyAddr[1], port), backend)
		if err == nil {
			p.bindings = append(p.bindings, b4, b6)
			return nil
		}
		b4.sock.Close()
		if !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
	return fmt.Errorf("finding a port free on both IPv4 and IPv6 (%d tries): %w",
		dualStackAttempts, err)
}

// bind creates the socket for one binding of s on host.
func bind(s portspec.Spec, host, backend netip.AddrPort) (*binding, error) {
	sock, bound, err := listen(s.Proto, host)
	if err != nil {
		return nil, fmt.Errorf("binding %s %s: %w", s.Proto, host, err)
	}
	return &binding{
		Binding: Binding{Spec: s.Text, Proto: s.Proto, Host: bound, Backend: backend},
		sock:    sock,
	}, nil
}
