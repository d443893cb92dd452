//go:build linux

package main

import (
	"fmt"
	"strings"
)

// markdown renders the report: the machine, the table, what each peer got,
// how the figures were taken and how to rerun them.
func (r *report) markdown() string {
	var b strings.Builder
	r.header(&b)
	r.table(&b)
	r.peerNotes(&b)
	r.failures(&b)
	fmt.Fprintf(&b, "\nMethod:\n\n")
	for _, m := range r.Method {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	fmt.Fprintf(&b, "\nTo rerun: `make bench` (this table, about %s), or `go run ./bench -quick`"+
		" for a smoke run. Results are written to bench/out/results.md and"+
		" bench/out/results.json.\n", r.Duration)
	return b.String()
}

func (r *report) header(b *strings.Builder) {
	m := r.Machine
	fmt.Fprintf(b, "## Benchmark: launcher and proxy against their peers\n\n")
	if r.Quick {
		fmt.Fprintf(b, "**Smoke run (-quick): small counts, one repetition; the figures"+
			" are not comparable with the goals.**\n\n")
	}
	fmt.Fprintf(b, "Measured %s on Linux %s, %s (%d cores), %.0f GiB, %s;"+
		" load average %s before the run, %s after.\n",
		r.Date, m.Kernel, m.CPU, m.Cores, m.MemGiB, m.Go, m.LoadFrom, m.LoadTo)
	fmt.Fprintf(b, "Each figure is the median of %s (%d for the rows that"+
		" start hundreds of processes or open thousands of flows), with min-max in"+
		" brackets; peers ran interleaved. A ratio (xN) is to the direct / floor"+
		" column, taken repetition by repetition.\n\n", plural(r.Reps, "repetition"), r.Heavy)
}

var columns = []string{peerDirect + " / " + peerFloor, peerDocker, peerSocat, peerOurs}

func (r *report) table(b *strings.Builder) {
	fmt.Fprintf(b, "| figure | %s | goal for ours | met? |"+
		" ahead of docker-proxy? (ours / docker-proxy) |\n",
		strings.Join(columns, " | "))
	fmt.Fprintf(b, "|%s\n", strings.Repeat("---|", len(columns)+4))
	for _, rw := range r.Rows {
		cells := []string{rw.Title, rw.refCell()}
		for _, name := range []string{peerDocker, peerSocat, peerOurs} {
			cells = append(cells, rw.peerCell(name))
		}
		goal := rw.Goal
		if goal == "" {
			goal = "-"
		}
		met := rw.Met
		if met == "" {
			met = "-"
		}
		cells = append(cells, goal, met, rw.Ahead)
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
}

// refCell shows the reference peer's value, named.
func (rw *row) refCell() string {
	if rw.Ref == "" {
		return "-"
	}
	c := rw.Cells[rw.Ref]
	if c == nil {
		return "-"
	}
	if c.Value == nil {
		return rw.Ref + " " + statusText(c)
	}
	return rw.Ref + " " + rw.valueText(c.Value)
}

// peerCell shows a ratio with the value after it, or the value alone.
func (rw *row) peerCell(name string) string {
	c := rw.Cells[name]
	switch {
	case c == nil:
		return "-"
	case c.Value == nil:
		return statusText(c)
	case rw.fig.ratio && c.Ratio != nil:
		return fmt.Sprintf("x%.2f%s, %s", c.Ratio.Median,
			spread(c.Ratio, 2, ""), rw.number(c.Value.Median))
	}
	return rw.valueText(c.Value)
}

func statusText(c *cell) string {
	switch c.Status {
	case "not measured":
		return "-"
	case "n/a":
		return "n/a"
	}
	return c.Status
}

// valueText is "median unit (min–max)".
func (rw *row) valueText(s *stat) string {
	return rw.number(s.Median) + spread(s, rw.fig.digits, rw.Unit)
}

// number is a value with its unit.
func (rw *row) number(v float64) string {
	switch {
	case rw.Unit == "" && rw.fig.digits == 0:
		return thousands(v)
	case rw.Unit == "":
		return fmt.Sprintf("%.*f", rw.fig.digits, v)
	case rw.Unit == "/s":
		return thousands(v) + "/s"
	case rw.Unit == "%":
		return fmt.Sprintf("%.*f %%", rw.fig.digits, v)
	}
	return fmt.Sprintf("%.*f %s", rw.fig.digits, v, rw.Unit)
}

// spread is " (min–max)" when there are several repetitions.
func spread(s *stat, digits int, unit string) string {
	if s.N < 2 {
		return ""
	}
	f := func(v float64) string {
		if unit == "/s" || (unit == "" && digits == 0) {
			return thousands(v)
		}
		return fmt.Sprintf("%.*f", digits, v)
	}
	return fmt.Sprintf(" (%s–%s)", f(s.Min), f(s.Max))
}

// peerNotes says what each peer is and what it was handed.
func (r *report) peerNotes(b *strings.Builder) {
	fmt.Fprintf(b, "\nPeers:\n\n")
	for _, p := range r.peers {
		switch {
		case p.missing != "":
			fmt.Fprintf(b, "- %s: n/a, %s.\n", p.name, p.missing)
		case p.name == peerDirect || p.name == peerSocat:
			fmt.Fprintf(b, "- %s: %s.\n", p.name, p.about)
		case p.listenFD:
			fmt.Fprintf(b, "- %s: %s; handed its listening socket (-use-listen-fd),"+
				" as a current daemon does.\n", p.name, p.about)
		default:
			fmt.Fprintf(b, "- %s: %s; binds its port itself (it has no"+
				" -use-listen-fd).\n", p.name, p.about)
		}
	}
}

// failures lists the first error of each peer that failed a measurement.
func (r *report) failures(b *strings.Builder) {
	var lines []string
	for _, rw := range r.Rows {
		for _, name := range allPeers {
			if c := rw.Cells[name]; c != nil && len(c.Errors) > 0 {
				lines = append(lines, fmt.Sprintf("- %s, %s: %d of %d repetitions failed: %s",
					rw.Title, name, len(c.Errors), len(c.Errors)+len(c.Values), c.Errors[0]))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "\nFailures:\n\n%s\n", strings.Join(lines, "\n"))
}

// methodNotes says how each figure was taken.
func methodNotes(cfg config) []string {
	return []string{
		"Every proxy is started through the same launcher, the way a daemon starts" +
			" it: status pipe on fd 3, parent-death signal, stop by SIGINT to its pid.",
		fmt.Sprintf("Start to ready: %d starts one after the other per repetition, each"+
			" timed from creating the listening socket (or from exec, for a peer that binds"+
			" its port itself) to reading \"0\\n\" on fd 3; a repetition gives their median."+
			" In the row where every peer binds its own port, floor binds nothing.",
			cfg.starts),
		fmt.Sprintf("Idle memory: %d TCP proxies alive at once, PSS from"+
			" /proc/PID/smaps_rollup summed over all of them after %v.", cfg.proxies, cfg.settle),
		"Clients and backends (sink, echo) run as goroutines in the bench process, for" +
			" every peer alike, on 127.0.0.1, so they share the 2 cores with the proxy.",
		fmt.Sprintf("TCP bulk: uploads of 1 MiB writes for %v, from the first dial to the"+
			" backend reading the last byte.", cfg.bulkFor),
		fmt.Sprintf("Short connections: %d clients for %v, each connection sends %d bytes,"+
			" reads their echo and closes.", shortWorkers, cfg.shortFor, shortMessage),
		fmt.Sprintf("UDP request/response: %d clients for %v, one %d-byte datagram in flight"+
			" each; an answer later than %v counts as lost.", rrWorkers, cfg.rrFor,
			datagramSize, rrTimeout),
		fmt.Sprintf("UDP burst: %s sockets each send one datagram as fast as one"+
			" goroutine can; answers are counted for %v; nothing is resent.",
			thousands(float64(cfg.burstFlows)), answerWait),
		fmt.Sprintf("UDP paced: %s flows opened at %s a second, resent once if"+
			" unanswered, then the proxy's PSS and open fds are read with every flow alive.",
			thousands(float64(cfg.pacedFlows)), thousands(float64(cfg.pacedRate))),
		fmt.Sprintf("Idle TCP connections: %s connections with one byte echoed on each;"+
			" growth of the proxy's PSS and fds over its own baseline, divided by %s.",
			thousands(float64(cfg.idleConns)), thousands(float64(cfg.idleConns))),
		"socat forks a process per connection, so it is measured on the TCP forwarding" +
			" rows only.",
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
