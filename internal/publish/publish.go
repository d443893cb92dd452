// Package publish publishes ports as a container daemon does: for every
// binding it creates, binds and (for stream protocols) listens on the host
// socket itself, hands it to a userland proxy started with
// [portmapper.Start], and keeps the proxy running until told to stop.
//
// The publisher keeps its own copy of each socket for as long as the
// binding is published. A proxy that dies is restarted on the same socket,
// so the port stays reserved, a port the kernel picked stays the same,
// and TCP clients that connect in between wait in the accept queue instead
// of being refused.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/docker/docker/libnetwork/types"

	"github.com/userland-proxy/portmapper"
	"github.com/userland-proxy/portmapper/internal/portspec"
)

// Restart backoff, used where a [Config] field is zero.
const (
	// DefaultRestartDelay is the wait before the first restart of a proxy
	// that died. Each further death or failed start doubles it.
	DefaultRestartDelay = 100 * time.Millisecond

	// DefaultMaxRestartDelay caps the wait between restarts. A proxy
	// that ran at least this long counts as healthy: when it dies, the
	// wait starts over at the restart delay.
	DefaultMaxRestartDelay = 10 * time.Second
)

// Config says how to publish. Only ProxyPath is required.
type Config struct {
	// ProxyPath is the userland proxy binary.
	ProxyPath string

	// Restart restarts a proxy that dies, with backoff. When false, the
	// first proxy to die ends the publishing: [Publisher.Wait] stops the
	// others and returns how it died.
	Restart bool

	// RestartDelay is the first wait before a restart; zero means
	// [DefaultRestartDelay].
	RestartDelay time.Duration

	// MaxRestartDelay caps the wait between restarts; zero means
	// [DefaultMaxRestartDelay].
	MaxRestartDelay time.Duration

	// StartTimeout and StopGrace are passed to [portmapper.Start] for each
	// proxy; zero means the launcher's defaults.
	StartTimeout, StopGrace time.Duration

	// Logger receives the events of every binding (started, restarted,
	// stopped) and the launcher's own, deaths included; nil means
	// [slog.Default].
	Logger *slog.Logger
}

func (c *Config) restartDelay() time.Duration {
	if c.RestartDelay > 0 {
		return c.RestartDelay
	}
	return DefaultRestartDelay
}

func (c *Config) maxRestartDelay() time.Duration {
	if c.MaxRestartDelay > 0 {
		return c.MaxRestartDelay
	}
	return DefaultMaxRestartDelay
}

// Binding is one published socket, served by one proxy.
type Binding struct {
	// Spec is the text of the spec the binding comes from.
	Spec string

	// Proto is "tcp", "udp" or "sctp".
	Proto string

	// Host is the address and port bound on the host; the port is the
	// real one, also when the kernel picked it.
	Host netip.AddrPort

	// Backend is where the proxy forwards to.
	Backend netip.AddrPort
}

// String gives the binding as "tcp 127.0.0.1:8080 -> 127.0.0.1:80".
func (b Binding) String() string {
	return fmt.Sprintf("%s %s -> %s", b.Proto, b.Host, b.Backend)
}

// portBinding is b as the launcher takes it.
func (b Binding) portBinding() types.PortBinding {
	return types.PortBinding{
		Proto:    types.ParseProtocol(b.Proto),
		IP:       b.Backend.Addr().AsSlice(),
		Port:     b.Backend.Port(),
		HostIP:   b.Host.Addr().AsSlice(),
		HostPort: b.Host.Port(),
	}
}

// binding is a Binding with the socket the publisher holds for it.
type binding struct {
	Binding
	sock *os.File
}

// Publisher holds published bindings and supervises their proxies. Its
// methods are safe for concurrent use.
type Publisher struct {
	cfg      Config
	log      *slog.Logger
	bindings []*binding

	// start launches one proxy; tests replace it.
	start func(context.Context, portmapper.Config) (*portmapper.Proxy, error)

	// everyAddr is what an absent host IP binds, IPv4 then IPv6; tests
	// use loopback.
	everyAddr [2]netip.Addr

	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per supervisor
	died   chan error     // the first death when restarts are off

	stopOnce sync.Once
	mu       sync.Mutex // guards stopErr until stopOnce is done
	stopErr  error
}

func newPublisher(cfg Config) *Publisher {
	ctx, cancel := context.WithCancel(context.Background())
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Publisher{
		cfg:       cfg,
		log:       log,
		start:     portmapper.Start,
		everyAddr: [2]netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()},
		ctx:       ctx,
		cancel:    cancel,
		died:      make(chan error, 1),
	}
}

// Publish binds every spec's sockets, then starts a proxy for each
// binding, in order. If anything fails, what was started is stopped, every
// socket is closed, and the error names the spec and says why; ctx
// cancels the start. Once Publish has returned, ctx no longer matters:
// use [Publisher.Wait] and [Publisher.Stop].
func Publish(ctx context.Context, cfg Config, specs []portspec.Spec) (*Publisher, error) {
	return newPublisher(cfg).publish(ctx, specs)
}

func (p *Publisher) publish(ctx context.Context, specs []portspec.Spec) (*Publisher, error) {
	if err := p.bindAll(specs); err != nil {
		p.closeSockets()
		return nil, err
	}

	for _, b := range p.bindings {
		if err := p.startFirst(ctx, b); err != nil {
			_ = p.Stop()
			return nil, fmt.Errorf("publishing %q: starting the proxy for %s: %w",
				b.Spec, b, err)
		}
	}
	return p, nil
}

// Bindings returns what is published, in the order of the specs.
func (p *Publisher) Bindings() []Binding {
	out := make([]Binding, len(p.bindings))
	for i, b := range p.bindings {
		out[i] = b.Binding
	}
	return out
}

// Wait returns when ctx is done, or, with restarts off, when a proxy has
// died; either way every proxy has then been stopped. It returns nil for
// ctx and how the proxy died otherwise.
func (p *Publisher) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return p.Stop()
	case err := <-p.died:
		_ = p.Stop()
		return err
	}
}

// Stop stops every proxy, in parallel, and closes every socket. It
// returns what went wrong stopping them, if anything; a proxy that had
// already died is not an error here. Calling Stop again returns the same.
func (p *Publisher) Stop() error {
	p.stopOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.closeSockets()
	})
	return p.stopErr
}

func (p *Publisher) closeSockets() {
	for _, b := range p.bindings {
		b.sock.Close()
	}
}

// startFirst starts the first proxy of b and hands it to a supervisor.
func (p *Publisher) startFirst(ctx context.Context, b *binding) error {
	proxy, err := p.startProxy(ctx, b)
	if err != nil {
		return err
	}

	p.log.Info("proxy started", "binding", b.String(), "pid", proxy.Pid())
	p.wg.Add(1)
	go p.supervise(b, proxy)
	return nil
}

func (p *Publisher) startProxy(ctx context.Context, b *binding) (*portmapper.Proxy, error) {
	return p.start(ctx, portmapper.Config{
		Binding:      b.portBinding(),
		ProxyPath:    p.cfg.ProxyPath,
		ListenSock:   b.sock,
		StartTimeout: p.cfg.StartTimeout,
		StopGrace:    p.cfg.StopGrace,
		Logger:       p.log.With("spec", b.Spec),
	})
}

// addStopError records what went wrong stopping a proxy.
func (p *Publisher) addStopError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopErr = errors.Join(p.stopErr, err)
}
