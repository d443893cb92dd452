//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs the harness end to end in its smoke mode, with only the
// peers every machine has: direct and floor.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and moves traffic")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the floor peer is built with the go command:", err)
	}
	cfg := quickConfig()
	cfg.out = t.TempDir()
	cfg.bin = t.TempDir()
	cfg.peers = []string{peerDirect, peerFloor}
	cfg.fetch = false

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, log bytes.Buffer
	if err := run(ctx, cfg, &stdout, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}

	rep := readResults(t, cfg.out)
	for _, id := range []string{"start", "memory", "tcp-bulk-1", "tcp-short", "udp-rr",
		"udp-burst"} {
		for _, name := range []string{peerDirect, peerFloor} {
			c := rep.cell(id, name)
			if c == nil {
				t.Fatalf("no figure %q in results.json", id)
			}
			if c.Status == "failed" {
				t.Errorf("%s, %s: failed: %v\n%s", id, name, c.Errors, log.String())
			}
		}
	}
	if c := rep.cell("udp-burst", peerDirect); c.Value == nil || c.Value.Median < 95 {
		t.Errorf("direct answered %+v of a burst; want >= 95 %%", c.Value)
	}
	if !strings.Contains(stdout.String(), "| figure |") {
		t.Errorf("stdout has no table:\n%s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.out, "results.md")); err != nil {
		t.Error(err)
	}
}

type testReport struct {
	Rows []struct {
		ID    string           `json:"id"`
		Cells map[string]*cell `json:"cells"`
	} `json:"figures"`
}

func (r *testReport) cell(id, peer string) *cell {
	for _, rw := range r.Rows {
		if rw.ID == id {
			return rw.Cells[peer]
		}
	}
	return nil
}

func readResults(t testing.TB, dir string) *testReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r testReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	return &r
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"one", []float64{3}, 3},
		{"odd", []float64{5, 1, 3}, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v; want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 999: "999", 1000: "1,000", 47600: "47,600", 1234567.4: "1,234,567",
	} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q; want %q", in, got, want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	higher := figure{ratio: true, goal: &goal{limit: 0.75}}
	lower := figure{lowerBetter: true, goal: &goal{limit: 35}}
	cells := func(ours, docker float64, ratio bool) map[string]*cell {
		c := func(v float64) *cell {
			s := &stat{Median: v, Min: v, Max: v, N: 1}
			c := &cell{Value: s, Values: []float64{v}, OfRep: []int{0}}
			if ratio {
				c.Ratio = s
			}
			return c
		}
		return map[string]*cell{peerOurs: c(ours), peerDocker: c(docker)}
	}
	for _, tc := range []struct {
		name       string
		f          figure
		cells      map[string]*cell
		met, ahead string
	}{
		{"higher met", higher, cells(0.8, 0.6, true), "yes", "yes (x1.33)"},
		{"higher missed", higher, cells(0.7, 0.6, true), "NO (x0.700)", "yes (x1.17)"},
		{"higher behind", higher, cells(0.5, 0.6, true), "NO (x0.500)", "NO (x0.83)"},
		{"lower met", lower, cells(20, 300, false), "yes", "yes (x0.07)"},
		{"lower missed", lower, cells(400, 300, false), "NO", "NO (x1.33)"},
		{"even", lower, cells(300, 300, false), "NO", "even"},
		{"no ours", lower, map[string]*cell{}, "n/a", "n/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			met, ahead := verdicts(tc.f, tc.cells)
			if met != tc.met || ahead != tc.ahead {
				t.Errorf("verdicts = %q, %q; want %q, %q", met, ahead, tc.met, tc.ahead)
			}
		})
	}
}
