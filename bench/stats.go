// Package bench is billflow's benchmark harness: scenarios that drive a real
// worker against real PostgreSQL and Temporal servers and report latencies,
// throughput and counts. Timings live here, never in tests; scripts/bench.sh
// is the one command that runs it (see the README's Performance section).
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary describes a sample of durations.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P99   float64 `json:"p99_seconds"`
	Max   float64 `json:"max_seconds"`
}

// Percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method: the smallest value with at least p% of the sample at
// or below it. It does not modify xs; an empty sample gives 0.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Summarize returns the count, p50, p99 and max of durations in seconds.
func Summarize(ds []time.Duration) Summary {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = d.Seconds()
	}
	s := Summary{Count: len(xs)}
	if len(xs) == 0 {
		return s
	}
	s.P50, s.P99, s.Max = Percentile(xs, 50), Percentile(xs, 99), Percentile(xs, 100)
	return s
}

// Machine is where a result was measured.
type Machine struct {
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	GOOS        string `json:"goos"`
	GOARCH      string `json:"goarch"`
	Hostname    string `json:"hostname"`
}

// ThisMachine describes the machine the harness runs on.
func ThisMachine() Machine {
	h, _ := os.Hostname()
	return Machine{Cores: runtime.NumCPU(), MemoryBytes: memTotal(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Hostname: h}
}

// memTotal reads MemTotal from /proc/meminfo (0 where there is none).
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// GitCommit returns the commit checked out in dir (with "-dirty" when the
// tree has uncommitted changes), or "unknown".
func GitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "-dirty"
	}
	return c
}

// Result is one scenario run, as written to bench/results/*.json.
type Result struct {
	Scenario string `json:"scenario"`
	// Label names the worker measured: "current" or "baseline REV".
	Label     string    `json:"label"`
	Commit    string    `json:"commit"`
	Timestamp time.Time `json:"timestamp"`
	Machine   Machine   `json:"machine"`
	Tenants   int       `json:"tenants"`
	// Params are the scenario's settings (period, window, ...).
	Params map[string]string `json:"params,omitempty"`
	// Latencies by name, e.g. "invoice_created" and "invoice_paid" for storm.
	Latencies map[string]Summary `json:"latencies,omitempty"`
	// ThroughputPerSecond is completed items per second from the boundary
	// to the last completion (paid invoices for storm, workflows for ceiling).
	ThroughputPerSecond float64 `json:"throughput_per_second,omitempty"`
	// Counts are scenario figures: history events, statements per hour, ...
	Counts map[string]float64 `json:"counts,omitempty"`
	// EventTypes is the history scenario's average events per tenant-period
	// by workflow ("tenant", "invoice") and event type: where to cut.
	EventTypes map[string]map[string]float64 `json:"event_types,omitempty"`
	// Failures lists what failed verification (empty when all passed).
	Failures []string `json:"failures"`
	// Notes say how figures were obtained where a reader could misread them.
	Notes []string `json:"notes,omitempty"`
}

// WriteJSON writes r under dir as SCENARIO-N-LABEL-TIMESTAMP.json and returns
// the path.
func (r Result) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	label := strings.NewReplacer(" ", "-", "/", "-").Replace(r.Label)
	name := fmt.Sprintf("%s-%d-%s-%s.json", r.Scenario, r.Tenants, label, r.Timestamp.UTC().Format("20060102T150405Z"))
	path := dir + "/" + name
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

// secs formats seconds for a table cell.
func secs(s float64) string { return fmt.Sprintf("%.1f s", s) }

// Table renders results as one Markdown table. Storm and ceiling get latency
// columns; the other scenarios list their counts.
func Table(rs []Result) string {
	var b strings.Builder
	if len(rs) == 0 {
		return ""
	}
	switch rs[0].Scenario {
	case "storm":
		b.WriteString("| worker | tenants | invoice created p50 / p99 | paid p50 / p99 / max | throughput (paid/s) | worker peak RSS | verified |\n")
		b.WriteString("|---|---|---|---|---|---|---|\n")
		for _, r := range rs {
			c, p := r.Latencies["invoice_created"], r.Latencies["invoice_paid"]
			fmt.Fprintf(&b, "| %s | %d | %s / %s | %s / %s / %s | %.2f | %.0f MB | %s |\n", r.Label, r.Tenants,
				secs(c.P50), secs(c.P99), secs(p.P50), secs(p.P99), secs(p.Max), r.ThroughputPerSecond,
				r.Counts["worker_peak_rss_mb"], verified(r, p.Count))
		}
	case "ceiling":
		b.WriteString("| worker | workflows | done p50 / p99 / max | throughput (workflows/s) | verified |\n")
		b.WriteString("|---|---|---|---|---|\n")
		for _, r := range rs {
			d := r.Latencies["workflow_done"]
			fmt.Fprintf(&b, "| %s | %d | %s / %s / %s | %.2f | %s |\n", r.Label, r.Tenants,
				secs(d.P50), secs(d.P99), secs(d.Max), r.ThroughputPerSecond, verified(r, d.Count))
		}
	case "pool":
		for _, r := range rs {
			b.WriteString(PoolTable(r))
		}
	default:
		b.WriteString("| worker | tenants | figure | value |\n|---|---|---|---|\n")
		for _, r := range rs {
			keys := make([]string, 0, len(r.Counts))
			for k := range r.Counts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", r.Label, r.Tenants, k, strconv.FormatFloat(r.Counts[k], 'f', -1, 64))
			}
			if len(r.Failures) > 0 {
				fmt.Fprintf(&b, "| %s | %d | failures | %d |\n", r.Label, r.Tenants, len(r.Failures))
			}
		}
	}
	return b.String()
}

// verified is "n/m" counted items that passed verification.
func verified(r Result, counted int) string {
	return fmt.Sprintf("%d/%d", counted-len(r.Failures), r.Tenants)
}

// Ratio renders a comparison of a result with its baseline: for storm and
// ceiling, throughput and p99 (current over baseline); for the others, each
// count.
func Ratio(cur, base Result) string {
	var b strings.Builder
	b.WriteString("| figure | " + cur.Label + " | " + base.Label + " | ratio |\n|---|---|---|---|\n")
	row := func(name string, c, bv float64) {
		ratio := "-"
		if bv != 0 {
			ratio = fmt.Sprintf("%.2fx", c/bv)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %s |\n", name, c, bv, ratio)
	}
	switch cur.Scenario {
	case "storm", "ceiling":
		row("throughput per second", cur.ThroughputPerSecond, base.ThroughputPerSecond)
		names := make([]string, 0, len(cur.Latencies))
		for k := range cur.Latencies {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			row(k+" p50 (s)", cur.Latencies[k].P50, base.Latencies[k].P50)
			row(k+" p99 (s)", cur.Latencies[k].P99, base.Latencies[k].P99)
		}
	default:
		names := make([]string, 0, len(cur.Counts))
		for k := range cur.Counts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			row(k, cur.Counts[k], base.Counts[k])
		}
	}
	return b.String()
}
