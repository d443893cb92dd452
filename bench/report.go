//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// A figure is one row of the table: one metric of one experiment.
type figure struct {
	id     string
	title  string
	exp    string
	metric string
	unit   string
	digits int // decimals when printed

	// ref is the peer shown in the reference column. With ratio set, the
	// other peers are shown as their ratio to it, repetition by repetition.
	ref   string
	ratio bool

	lowerBetter bool
	goal        *goal // nil for a row that only informs
}

// A goal is what ours must reach on a figure.
type goal struct {
	limit float64 // compared with the ratio, or the value when the row has none
	text  string
}

func (g *goal) met(v float64, lowerBetter bool) bool {
	if lowerBetter {
		return v <= g.limit
	}
	return v >= g.limit
}

func figures(cfg config) []figure {
	n := func(v int) string { return thousands(float64(v)) }
	return []figure{
		{id: "start", title: fmt.Sprintf("start to ready, median of %d starts, listen fd where"+
			" taken", cfg.starts),
			exp: "start", metric: "ms", unit: "ms", digits: 2, ref: peerFloor, ratio: true,
			lowerBetter: true, goal: &goal{1.10, "<= x1.10 floor"}},
		{id: "start-self", title: "start to ready, every peer binding its own port",
			exp: "start-self", metric: "ms", unit: "ms", digits: 2, ref: peerFloor,
			ratio: true, lowerBetter: true},
		{id: "memory", title: fmt.Sprintf("idle memory, %s proxies, total PSS", n(cfg.proxies)),
			exp: "memory", metric: "mib", unit: "MiB", digits: 0, ref: peerFloor, ratio: true,
			lowerBetter: true, goal: &goal{1.05, "<= x1.05 floor"}},
		{id: "tcp-bulk-1", title: "TCP bulk, 1 stream", exp: "bulk1", metric: "gbps",
			unit: "Gbit/s", digits: 1, ref: peerDirect, ratio: true,
			goal: &goal{0.75, ">= x0.75"}},
		{id: "tcp-bulk-4", title: "TCP bulk, 4 streams", exp: "bulk4", metric: "gbps",
			unit: "Gbit/s", digits: 1, ref: peerDirect, ratio: true,
			goal: &goal{0.80, ">= x0.80"}},
		{id: "tcp-short", title: "short TCP connections per second", exp: "short",
			metric: "per_s", unit: "/s", ref: peerDirect, ratio: true,
			goal: &goal{0.50, ">= x0.50"}},
		{id: "udp-rr", title: "UDP request/response per second", exp: "udp-rr",
			metric: "per_s", unit: "/s", ref: peerDirect, ratio: true,
			goal: &goal{0.35, ">= x0.35"}},
		{id: "udp-burst", title: fmt.Sprintf("UDP %s new flows in one burst, answered",
			n(cfg.burstFlows)), exp: "udp-burst", metric: "answered_pct", unit: "%",
			digits: 1, ref: peerDirect, goal: &goal{95, ">= 95 %"}},
		{id: "udp-paced-pss", title: fmt.Sprintf("UDP %s flows paced, proxy PSS",
			n(cfg.pacedFlows)), exp: "udp-paced", metric: "pss_mib", unit: "MiB",
			digits: 1, lowerBetter: true, goal: &goal{35, "<= 35 MiB"}},
		{id: "udp-paced-fds", title: fmt.Sprintf("UDP %s flows paced, proxy fds",
			n(cfg.pacedFlows)), exp: "udp-paced", metric: "fds", lowerBetter: true,
			goal: &goal{float64(cfg.pacedFlows + 100),
				"<= " + n(cfg.pacedFlows+100)}},
		{id: "udp-paced-answered", title: fmt.Sprintf("UDP %s flows paced, answered",
			n(cfg.pacedFlows)), exp: "udp-paced", metric: "answered_pct", unit: "%",
			digits: 1},
		{id: "tcp-idle-fds", title: fmt.Sprintf("%s idle TCP connections, fds per connection",
			n(cfg.idleConns)), exp: "tcp-idle", metric: "fds_per_conn", digits: 2,
			lowerBetter: true, goal: &goal{2 + 20/float64(cfg.idleConns),
				"<= 2 (+ a small constant)"}},
		{id: "tcp-idle-pss", title: fmt.Sprintf("%s idle TCP connections, PSS per connection",
			n(cfg.idleConns)), exp: "tcp-idle", metric: "pss_kib_per_conn", unit: "KiB",
			digits: 1, lowerBetter: true, goal: &goal{8, "<= 8 KiB"}},
	}
}

// stat is the median and range of some repetitions.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func statOf(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	return &stat{Median: median(v), Min: slices.Min(v), Max: slices.Max(v), N: len(v)}
}

// median of v; v is not modified.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s) == 0 {
		return math.NaN()
	}
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// cell is one peer's result on one figure.
type cell struct {
	Status string    `json:"status"` // measured, failed, n/a, not measured
	Reason string    `json:"reason,omitempty"`
	Values []float64 `json:"values,omitempty"`
	OfRep  []int     `json:"of_rep,omitempty"` // the repetition of each value
	Ratios []float64 `json:"ratios,omitempty"`
	Value  *stat     `json:"value,omitempty"`
	Ratio  *stat     `json:"ratio,omitempty"`
	Errors []string  `json:"errors,omitempty"`
}

// row is a figure with every peer's cell and the verdicts on ours.
type row struct {
	ID    string           `json:"id"`
	Title string           `json:"title"`
	Unit  string           `json:"unit,omitempty"`
	Ref   string           `json:"reference,omitempty"`
	Goal  string           `json:"goal,omitempty"`
	Met   string           `json:"met,omitempty"`   // yes, no, n/a
	Ahead string           `json:"ahead,omitempty"` // of docker-proxy: yes, no, n/a
	Cells map[string]*cell `json:"cells"`
	fig   figure
}

// counts are the sizes and windows of a run, for the JSON.
type counts struct {
	Starts     int     `json:"starts_per_rep"`
	Proxies    int     `json:"idle_proxies"`
	BulkSecs   float64 `json:"bulk_seconds"`
	ShortSecs  float64 `json:"short_seconds"`
	RRSecs     float64 `json:"udp_rr_seconds"`
	BurstFlows int     `json:"udp_burst_flows"`
	PacedFlows int     `json:"udp_paced_flows"`
	PacedRate  int     `json:"udp_paced_per_second"`
	IdleConns  int     `json:"idle_tcp_connections"`
}

func countsOf(cfg config) counts {
	return counts{cfg.starts, cfg.proxies, cfg.bulkFor.Seconds(), cfg.shortFor.Seconds(),
		cfg.rrFor.Seconds(), cfg.burstFlows, cfg.pacedFlows, cfg.pacedRate, cfg.idleConns}
}

type peerInfo struct {
	Name     string `json:"name"`
	Path     string `json:"path,omitempty"`
	About    string `json:"about,omitempty"`
	ListenFD bool   `json:"listen_fd"`
	Missing  string `json:"missing,omitempty"`
}

type machine struct {
	Kernel string  `json:"kernel"`
	CPU    string  `json:"cpu"`
	Cores  int     `json:"cores"`
	MemGiB float64 `json:"memory_gib"`
	Go     string  `json:"go"`

	LoadFrom string `json:"load_before"` // 1-minute load average, before the run
	LoadTo   string `json:"load_after"`
}

type report struct {
	Date     string     `json:"date"`
	Duration string     `json:"duration"`
	Quick    bool       `json:"quick"`
	Reps     int        `json:"reps"`
	Heavy    int        `json:"reps_heavy"`
	Counts   counts     `json:"counts"`
	Machine  machine    `json:"machine"`
	Peers    []peerInfo `json:"peers"`
	Rows     []*row     `json:"figures"`
	Method   []string   `json:"method"`
	cfg      config
	peers    []*peer
}

func newReport(cfg config, peers []*peer, res results, began time.Time,
	took time.Duration) *report {
	r := &report{
		Date:     began.UTC().Format("2006-01-02 15:04 UTC"),
		Duration: took.Round(time.Second).String(),
		Quick:    cfg.quick,
		Reps:     cfg.reps,
		Heavy:    cfg.heavyReps,
		Counts:   countsOf(cfg),
		Machine:  readMachine(cfg.loadBefore),
		cfg:      cfg,
		peers:    peers,
	}
	for _, p := range peers {
		r.Peers = append(r.Peers, peerInfo{p.name, p.path, p.about, p.listenFD, p.missing})
	}
	exps := make(map[string]experiment)
	for _, x := range experiments(cfg) {
		exps[x.name] = x
	}
	for _, f := range figures(cfg) {
		if x, ok := exps[f.exp]; ok {
			r.Rows = append(r.Rows, newRow(f, x, peers, res[f.exp]))
		}
	}
	r.Method = methodNotes(cfg)
	return r
}

func newRow(f figure, x experiment, peers []*peer, out map[string][]outcome) *row {
	rw := &row{ID: f.id, Title: f.title, Unit: f.unit, Ref: f.ref,
		Cells: make(map[string]*cell), fig: f}
	if f.goal != nil {
		rw.Goal = f.goal.text
	}
	for _, p := range peers {
		rw.Cells[p.name] = newCell(f, x, p, out)
	}
	rw.Met, rw.Ahead = verdicts(f, rw.Cells)
	return rw
}

func newCell(f figure, x experiment, p *peer, out map[string][]outcome) *cell {
	switch {
	case !slices.Contains(x.peers, p.name):
		return &cell{Status: "not measured"}
	case p.missing != "":
		return &cell{Status: "n/a", Reason: p.missing}
	}
	c := &cell{Status: "measured"}
	ref := valuesByRep(out[f.ref], f.metric)
	for _, o := range out[p.name] {
		if o.err != nil {
			c.Errors = append(c.Errors, o.err.Error())
			continue
		}
		v := o.values[f.metric]
		c.Values = append(c.Values, v)
		c.OfRep = append(c.OfRep, o.rep)
		if rv, ok := ref[o.rep]; ok && f.ratio && rv != 0 {
			c.Ratios = append(c.Ratios, v/rv)
		}
	}
	c.Value, c.Ratio = statOf(c.Values), statOf(c.Ratios)
	if c.Value == nil {
		c.Status = "failed"
	}
	return c
}

func valuesByRep(out []outcome, metric string) map[int]float64 {
	m := make(map[int]float64)
	for _, o := range out {
		if o.err == nil {
			m[o.rep] = o.values[metric]
		}
	}
	return m
}

// verdicts says whether ours met the goal, judged on its median, and
// whether it is ahead of docker-proxy, judged on the median of their
// ratio repetition by repetition (ours / docker-proxy), which it shows.
func verdicts(f figure, cells map[string]*cell) (met, ahead string) {
	ours := score(f, cells[peerOurs])
	switch {
	case f.goal == nil:
	case math.IsNaN(ours):
		met = "n/a"
	case f.goal.met(ours, f.lowerBetter):
		met = "yes"
	case f.ratio:
		met = fmt.Sprintf("NO (x%.3f)", ours)
	default:
		met = "NO"
	}

	vs := headToHead(cells[peerOurs], cells[peerDocker])
	switch {
	case math.IsNaN(vs):
		ahead = "n/a"
	case vs == 1:
		ahead = "even"
	case (vs < 1) == f.lowerBetter:
		ahead = "yes (x" + ratioText(vs) + ")"
	default:
		ahead = "NO (x" + ratioText(vs) + ")"
	}
	return met, ahead
}

// ratioText prints a ratio with two decimals, or three when two would
// read as an even 1.00.
func ratioText(v float64) string {
	if s := fmt.Sprintf("%.2f", v); s != "1.00" {
		return s
	}
	return fmt.Sprintf("%.3f", v)
}

// headToHead is the median over repetitions of a's value divided by b's in
// the same repetition; NaN when they share none.
func headToHead(a, b *cell) float64 {
	if a == nil || b == nil {
		return math.NaN()
	}
	theirs := make(map[int]float64)
	for i, r := range b.OfRep {
		theirs[r] = b.Values[i]
	}
	var ratios []float64
	for i, r := range a.OfRep {
		if v, ok := theirs[r]; ok && v != 0 {
			ratios = append(ratios, a.Values[i]/v)
		}
	}
	return median(ratios)
}

// score is the median a goal is judged on: the ratio when the row has
// one, else the value. NaN when there is none.
func score(f figure, c *cell) float64 {
	switch {
	case c == nil:
		return math.NaN()
	case f.ratio && c.Ratio != nil:
		return c.Ratio.Median
	case !f.ratio && c.Value != nil:
		return c.Value.Median
	}
	return math.NaN()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// write prints the Markdown table and saves it with the JSON.
func (r *report) write(stdout io.Writer) error {
	md := r.markdown()
	fmt.Fprint(stdout, md)
	if err := os.WriteFile(filepath.Join(r.cfg.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.cfg.out, "results.json"), js.Bytes(), 0o644)
}

// readMachine describes the machine the run happened on.
func readMachine(loadBefore string) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(),
		LoadFrom: loadBefore, LoadTo: loadAverage()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	var kb float64
	fmt.Sscanf(procField("/proc/meminfo", "MemTotal"), "%f", &kb)
	m.MemGiB = math.Round(kb/(1<<20)*10) / 10
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// thousands prints v rounded, with comma separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// loadAverage is the 1-minute load average, as /proc/loadavg prints it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
