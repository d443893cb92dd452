package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// udpTries is how many datagrams the UDP echo sends before giving up;
// one may be lost.
const udpTries = 4

// udpWait is how long the UDP echo waits for each reply.
const udpWait = time.Second

// result is what one exchange through a published port showed.
type result struct {
	what  string // "http GET http://127.0.0.1:8080/"
	reply string // what came back, shortened
	bytes int
	took  time.Duration
}

// httpGet fetches / through addr.
func httpGet(ctx context.Context, addr netip.AddrPort) (result, error) {
	url := "http://" + addr.String() + "/"
	r := result{what: "http GET " + url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.took = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("reading the reply to %s: %w", url, err)
	}

	r.bytes = len(body)
	r.reply = fmt.Sprintf("%s %q", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK || string(body) != greeting {
		return r, fmt.Errorf("unexpected reply to %s: %s", url, r.reply)
	}
	return r, nil
}

// tcpEcho sends msg through addr, closes its side, and reads the echo.
func tcpEcho(ctx context.Context, addr netip.AddrPort, msg string) (result, error) {
	r := result{what: "tcp echo via " + addr.String()}
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return r, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)

	if _, err := io.WriteString(c, msg); err != nil {
		return r, fmt.Errorf("sending to %s: %w", addr, err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return r, fmt.Errorf("closing the sending side to %s: %w", addr, err)
	}
	got, err := io.ReadAll(c)
	r.took = time.Since(start)
	return r.echoed(msg, string(got), err)
}

// udpEcho sends msg through addr and waits for the echo, sending again
// if a datagram seems lost.
func udpEcho(ctx context.Context, addr netip.AddrPort, msg string) (result, error) {
	r := result{what: "udp echo via " + addr.String()}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return r, err
	}
	defer c.Close()

	buf := make([]byte, 2048)
	for range udpTries {
		start := time.Now()
		if _, err := io.WriteString(c, msg); err != nil {
			return r, fmt.Errorf("sending to %s: %w", addr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(udpWait))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		r.took = time.Since(start)
		return r.echoed(msg, string(buf[:n]), err)
	}
	return r, fmt.Errorf("no echo from %s after %d datagrams", addr, udpTries)
}

// echoed fills in what came back and checks that it is what was sent.
func (r result) echoed(sent, got string, err error) (result, error) {
	r.bytes = len(got)
	r.reply = fmt.Sprintf("%q", got)
	if err != nil {
		return r, fmt.Errorf("%s: %w", r.what, err)
	}
	if got != sent {
		return r, fmt.Errorf("%s: sent %q, got %q back", r.what, sent, got)
	}
	return r, nil
}
