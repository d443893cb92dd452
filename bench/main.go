//go:build linux

// Command bench measures the project's launcher and userland proxy side by
// side with their peers, in one run on one machine, and writes the figures
// as a Markdown table and a JSON file.
//
// The peers are direct (client to backend, no proxy: the ceiling for
// forwarding), floor (a Go program that reports ready and forwards nothing:
// the least a Go proxy process costs), docker-proxy (installed, or fetched
// from Debian's docker.io package), socat (when installed, TCP only) and
// ours (bin/userland-proxy). Every proxy is started through the same
// launcher, the way a daemon starts it.
//
// Usage:
//
//	go run ./bench [-bin bin] [-out bench/out] [-quick] [-reps n] [-peers list]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is what one run measures, and how much.
type config struct {
	bin   string   // where the project's binaries are
	out   string   // where results and fetched peers go
	peers []string // the peers to run, in the table's order
	only  []string // the experiments to run; all when empty
	fetch bool     // may fetch docker-proxy with apt-get
	quick bool     // a smoke run: small counts, figures not comparable

	reps      int // repetitions of every experiment, peers interleaved
	heavyReps int // repetitions of the experiments that start many processes

	starts     int           // proxies started one after the other, per sample
	proxies    int           // idle proxies alive at once
	bulkFor    time.Duration // send window of a bulk transfer
	shortFor   time.Duration // window for short connections
	rrFor      time.Duration // window for UDP request/response
	burstFlows int           // new UDP flows in one burst
	pacedFlows int           // UDP flows opened at a pace
	pacedRate  int           // flows opened per second
	idleConns  int           // idle TCP connections held open
	settle     time.Duration // pause before a memory reading

	loadBefore string // the machine's load average when the run began
}

func fullConfig() config {
	return config{
		reps: 5, heavyReps: 3,
		starts: 40, proxies: 300,
		bulkFor: 2 * time.Second, shortFor: 2 * time.Second, rrFor: 2 * time.Second,
		burstFlows: 5000, pacedFlows: 5000, pacedRate: 2500,
		idleConns: 2000, settle: time.Second,
	}
}

func quickConfig() config {
	return config{
		quick: true, reps: 1, heavyReps: 1,
		starts: 5, proxies: 20,
		bulkFor: 300 * time.Millisecond, shortFor: 300 * time.Millisecond,
		rrFor:      300 * time.Millisecond,
		burstFlows: 200, pacedFlows: 200, pacedRate: 2000,
		idleConns: 100, settle: 200 * time.Millisecond,
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		os.Exit(2) // the flag set has said why
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cancel()
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding userland-proxy")
	out := fs.String("out", filepath.Join("bench", "out"), "directory for results and fetched peers")
	quick := fs.Bool("quick", false, "smoke run: small counts, one repetition")
	reps := fs.Int("reps", 0, "repetitions per experiment (default 5, quick 1)")
	peers := fs.String("peers", strings.Join(allPeers, ","), "peers to run, comma-separated")
	fetch := fs.Bool("fetch", true, "fetch docker-proxy with apt-get when it is not installed")
	only := fs.String("only", "", "experiments to run, comma-separated (default all): "+
		strings.Join(experimentNames(), ","))
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}

	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	if *reps > 0 {
		cfg.reps = *reps
		cfg.heavyReps = min(cfg.heavyReps, *reps)
	}
	cfg.bin, cfg.out, cfg.fetch = *bin, *out, *fetch
	cfg.peers = strings.Split(*peers, ",")
	if *only != "" {
		cfg.only = strings.Split(*only, ",")
	}
	for _, name := range cfg.only {
		if !slices.Contains(experimentNames(), name) {
			fmt.Fprintf(fs.Output(), "unknown experiment %q\n", name)
			return config{}, errors.New("bad -only")
		}
	}
	return cfg, nil
}

// env is what every measurement sees.
type env struct {
	cfg config
	log io.Writer
}

// run finds the peers, runs every experiment and writes the report.
func run(ctx context.Context, cfg config, stdout, log io.Writer) error {
	if err := raiseFileLimit(); err != nil {
		return err
	}
	// The launcher logs each proxy's stderr at info level; keep warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(log,
		&slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := os.MkdirAll(filepath.Join(cfg.out, "peers"), 0o755); err != nil {
		return err
	}
	peers, err := findPeers(ctx, cfg, log)
	if err != nil {
		return err
	}

	cfg.loadBefore = loadAverage()
	e := &env{cfg: cfg, log: log}
	began := time.Now()
	results := runAll(ctx, e, experiments(cfg), peers)
	if err := ctx.Err(); err != nil {
		return err
	}
	rep := newReport(cfg, peers, results, began, time.Since(began))
	return rep.write(stdout)
}

// raiseFileLimit lifts the soft limit on open files to the hard one, for
// the bench and for the proxies it starts: flows and connections each take
// descriptors in both.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open file limit: %w", err)
	}
	return nil
}

// A sample is one measurement of one peer: a value per metric.
type sample map[string]float64

// A measure takes one sample of an experiment for one peer.
type measure func(ctx context.Context, e *env, p *peer) (sample, error)

// An experiment is measured for each of its peers, reps times, the peers
// interleaved so that drift of the machine falls on all of them alike.
type experiment struct {
	name  string
	peers []string
	reps  int
	run   measure
}

var (
	launched   = []string{peerFloor, peerDocker, peerOurs}
	forwarders = []string{peerDirect, peerDocker, peerSocat, peerOurs}
	udpPeers   = []string{peerDirect, peerDocker, peerOurs}
	proxies    = []string{peerDocker, peerOurs}
)

func experiments(cfg config) []experiment {
	all := []experiment{
		{"start", launched, cfg.reps, startToReady},
		{"start-self", launched, cfg.reps, startSelfBound},
		{"memory", launched, cfg.heavyReps, idleMemory},
		{"bulk1", forwarders, cfg.reps, bulk(1)},
		{"bulk4", forwarders, cfg.reps, bulk(4)},
		{"short", forwarders, cfg.reps, shortConns},
		{"udp-rr", udpPeers, cfg.reps, udpRR},
		{"udp-burst", udpPeers, cfg.reps, udpBurst},
		{"udp-paced", proxies, cfg.heavyReps, udpPaced},
		{"tcp-idle", proxies, cfg.heavyReps, idleConns},
	}
	if len(cfg.only) == 0 {
		return all
	}
	var some []experiment
	for _, x := range all {
		if slices.Contains(cfg.only, x.name) {
			some = append(some, x)
		}
	}
	return some
}

func experimentNames() []string {
	var names []string
	for _, x := range experiments(config{}) {
		names = append(names, x.name)
	}
	return names
}

// outcome is one repetition of one experiment for one peer.
type outcome struct {
	rep    int
	values sample
	err    error
}

// results holds outcomes by experiment, then peer.
type results map[string]map[string][]outcome

func runAll(ctx context.Context, e *env, exps []experiment, peers []*peer) results {
	res := make(results)
	for _, x := range exps {
		res[x.name] = make(map[string][]outcome)
		group := runnable(x, peers)
		for r := 0; r < x.reps && ctx.Err() == nil; r++ {
			for _, p := range rotate(group, r) {
				o := measureOnce(ctx, e, x, p, r)
				res[x.name][p.name] = append(res[x.name][p.name], o)
			}
		}
	}
	return res
}

// runnable is the experiment's peers that are in this run.
func runnable(x experiment, peers []*peer) []*peer {
	var group []*peer
	for _, p := range peers {
		if p.missing == "" && slices.Contains(x.peers, p.name) {
			group = append(group, p)
		}
	}
	return group
}

// rotate starts each repetition with the next peer, so that no peer always
// runs first.
func rotate(group []*peer, r int) []*peer {
	if len(group) == 0 {
		return nil
	}
	k := r % len(group)
	return append(append([]*peer(nil), group[k:]...), group[:k]...)
}

// measureTimeout bounds one measurement, on top of the bounds each one
// keeps itself.
const measureTimeout = 2 * time.Minute

func measureOnce(ctx context.Context, e *env, x experiment, p *peer, r int) outcome {
	ctx, cancel := context.WithTimeout(ctx, measureTimeout)
	defer cancel()
	runtime.GC() // the bench's own garbage is not the next peer's cost
	v, err := x.run(ctx, e, p)
	if err != nil {
		fmt.Fprintf(e.log, "%-10s rep %d/%d %-13s failed: %v\n", x.name, r+1, x.reps, p.name, err)
	} else {
		fmt.Fprintf(e.log, "%-10s rep %d/%d %-13s %s\n", x.name, r+1, x.reps, p.name, v)
	}
	return outcome{rep: r, values: v, err: err}
}

func (s sample) String() string {
	var b strings.Builder
	for _, k := range sortedKeys(s) {
		fmt.Fprintf(&b, "%s=%.4g ", k, s[k])
	}
	return strings.TrimSpace(b.String())
}
