package publish

import (
	"errors"
	"fmt"
	"time"

	"github.com/userland-proxy/portmapper"
)

// outsideStopGrace is how long a proxy that exited with status 0 waits
// for the publisher's own stop before its exit counts as a death. A
// proxy exits cleanly only when signalled, and a Ctrl-C in a terminal
// signals the proxies and their publisher at the same moment.
const outsideStopGrace = 100 * time.Millisecond

// supervise watches the proxy of b until the publisher stops, restarting
// it when it dies, or reporting its death when restarts are off.
func (p *Publisher) supervise(b *binding, proxy *portmapper.Proxy) {
	defer p.wg.Done()

	delay := p.cfg.restartDelay()
	for {
		since := time.Now()
		select {
		case <-p.ctx.Done():
			p.stopProxy(b, proxy)
			return
		case <-proxy.Done():
		}
		if cleanExit(proxy) {
			p.sleep(outsideStopGrace)
		}
		if p.ctx.Err() != nil {
			p.stopProxy(b, proxy)
			return
		}

		if !p.cfg.Restart {
			p.reportDeath(b, proxy)
			return
		}
		if time.Since(since) >= p.cfg.maxRestartDelay() {
			delay = p.cfg.restartDelay()
		}
		// The launcher has logged the death, with the proxy's last words.
		p.log.Info("restarting proxy", "binding", b.String(), "in", delay)

		if proxy = p.restart(b, &delay); proxy == nil {
			return
		}
	}
}

// cleanExit tells whether proxy ended on its own with status 0.
func cleanExit(proxy *portmapper.Proxy) bool {
	var ee *portmapper.ExitError
	return errors.As(proxy.Err(), &ee) && ee.Err == nil
}

// reportDeath hands the death of b's proxy to Wait; the launcher has
// logged it.
func (p *Publisher) reportDeath(b *binding, proxy *portmapper.Proxy) {
	err := fmt.Errorf("proxy for %q (%s) exited early: %w", b.Spec, b, proxy.Err())
	select {
	case p.died <- err:
	default:
	}
}

// restart starts a new proxy for b after *delay, and keeps trying with a
// doubling delay. It returns nil if the publisher stops first.
func (p *Publisher) restart(b *binding, delay *time.Duration) *portmapper.Proxy {
	for {
		if !p.sleep(*delay) {
			return nil
		}
		*delay = min(2**delay, p.cfg.maxRestartDelay())

		proxy, err := p.startProxy(p.ctx, b)
		if err == nil {
			p.log.Info("proxy restarted", "binding", b.String(), "pid", proxy.Pid())
			return proxy
		}
		if p.ctx.Err() != nil {
			return nil
		}
		p.log.Warn("restarting proxy failed", "binding", b.String(), "err", err,
			"retry_in", *delay)
	}
}

// sleep waits for d and reports whether the publisher is still running.
func (p *Publisher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()

	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// stopProxy stops the proxy of b. One that died just before is no error.
func (p *Publisher) stopProxy(b *binding, proxy *portmapper.Proxy) {
	err := proxy.Stop()
	switch {
	case err == nil:
		p.log.Info("proxy stopped", "binding", b.String(), "pid", proxy.Pid())
	case errors.Is(err, portmapper.ErrAlreadyExited):
		p.log.Info("proxy had already exited", "binding", b.String(), "pid", proxy.Pid())
	default:
		p.log.Warn("stopping proxy failed", "binding", b.String(), "pid", proxy.Pid(),
			"err", err)
		p.addStopError(fmt.Errorf("stopping the proxy for %s: %w", b, err))
	}
}
