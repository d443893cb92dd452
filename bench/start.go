//go:build linux

package main

import (
	"context"
	"net/netip"
	"time"
)

// startToReady starts and stops cfg.starts proxies of p one after the
// other, after one untimed start that warms the page cache. Each start is
// timed from creating the frontend socket (for a peer handed one) or from
// exec (for a peer that binds its port itself) to reading the ready
// message; the sample is the median, in ms. A stop that reports an error
// is counted, not failed: this figure is about starting.
func startToReady(ctx context.Context, e *env, p *peer) (sample, error) {
	backend := netip.AddrPortFrom(loopback, 9) // never dialled
	times := make([]float64, 0, e.cfg.starts)
	unclean := 0
	for i := -1; i < e.cfg.starts; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		in, err := p.start("tcp", backend)
		took := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if err := in.close(); err != nil {
			unclean++
		}
		if i >= 0 {
			times = append(times, float64(took)/float64(time.Millisecond))
		}
	}
	return sample{"ms": median(times), "unclean_stops": float64(unclean)}, nil
}

// startSelfBound is startToReady with no socket handed over, so that every
// peer binds its own port, as under a daemon that predates -use-listen-fd.
func startSelfBound(ctx context.Context, e *env, p *peer) (sample, error) {
	self := *p
	self.listenFD = false
	return startToReady(ctx, e, &self)
}
