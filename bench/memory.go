//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sync"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// pss returns the proportional set size of pid in bytes: its private pages
// plus its share of the pages it shares, so that summing it over several
// copies of one binary counts the shared text once.
func pss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "Pss: %d kB", &kb); n == 1 {
			return kb * kib, nil
		}
	}
	return 0, fmt.Errorf("no Pss line for pid %d", pid)
}

// fdCount returns how many file descriptors pid holds.
func fdCount(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// footprint is a process's memory and descriptors at one moment.
type footprint struct {
	pss int64
	fds int
}

func footprintOf(pid int) (footprint, error) {
	p, err := pss(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return footprint{}, fmt.Errorf("the proxy (pid %d) has exited", pid)
	}
	if err != nil {
		return footprint{}, err
	}
	n, err := fdCount(pid)
	return footprint{pss: p, fds: n}, err
}

// idleMemory starts cfg.proxies idle TCP proxies of p, lets them settle and
// sums their PSS, in MiB.
func idleMemory(ctx context.Context, e *env, p *peer) (sample, error) {
	// No traffic flows, so the backend is never dialled.
	backend := netip.AddrPortFrom(loopback, 9)
	fleet := make([]*instance, 0, e.cfg.proxies)
	defer func() { stopAll(fleet) }()
	for i := 0; i < e.cfg.proxies; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := p.start("tcp", backend)
		if err != nil {
			return nil, fmt.Errorf("starting proxy %d: %w", i+1, err)
		}
		fleet = append(fleet, in)
	}
	if err := sleep(ctx, e.cfg.settle); err != nil {
		return nil, err
	}

	total, err := totalPSS(fleet)
	if err != nil {
		return nil, err
	}
	return sample{"mib": float64(total) / mib}, nil
}

// totalPSS sums the PSS of the processes behind fleet.
func totalPSS(fleet []*instance) (int64, error) {
	pids, err := proxyPIDs()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, in := range fleet {
		key := fmt.Sprintf("%s/%d", in.proto, in.addr.Port())
		pid, ok := pids[key]
		if !ok {
			return 0, fmt.Errorf("no process serves %s", key)
		}
		n, err := pss(pid)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// stopAll stops every instance, a few at a time.
func stopAll(fleet []*instance) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, in := range fleet {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.close()
			<-sem
		}()
	}
	wg.Wait()
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
