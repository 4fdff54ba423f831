package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentileNearestRank(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	require.Equal(t, 5.0, Percentile(xs, 50))
	require.Equal(t, 10.0, Percentile(xs, 99))
	require.Equal(t, 10.0, Percentile(xs, 100))
	require.Equal(t, 1.0, Percentile(xs, 1))
	require.Equal(t, 1.0, Percentile(xs, 0), "p0 is the minimum")
	require.Equal(t, []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}, xs, "the sample is not reordered")
	require.Equal(t, 0.0, Percentile(nil, 50))
	require.Equal(t, 7.0, Percentile([]float64{7}, 99))

	// 200 values 1..200: p99 is the 198th, not the maximum.
	var big []float64
	for i := 200; i >= 1; i-- {
		big = append(big, float64(i))
	}
	require.Equal(t, 198.0, Percentile(big, 99))
	require.Equal(t, 100.0, Percentile(big, 50))
}

func TestSummarize(t *testing.T) {
	s := Summarize([]time.Duration{3 * time.Second, time.Second, 2 * time.Second, 1500 * time.Millisecond})
	require.Equal(t, Summary{Count: 4, P50: 1.5, P99: 3, Max: 3}, s)
	require.Equal(t, Summary{}, Summarize(nil))
}

func sampleStorm() Result {
	return Result{
		Scenario: "storm", Label: "current", Commit: "abc123", Tenants: 3,
		Timestamp: time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC),
		Machine:   Machine{Cores: 2, MemoryBytes: 24 << 30, GOOS: "linux", GOARCH: "amd64"},
		Latencies: map[string]Summary{
			"invoice_created": {Count: 2, P50: 1, P99: 2, Max: 2},
			"invoice_paid":    {Count: 2, P50: 3.25, P99: 6, Max: 6},
		},
		ThroughputPerSecond: 0.5,
		Counts:              map[string]float64{"worker_peak_rss_mb": 81},
		Failures:            []string{"invoice in_x (tenant abc): status open, want paid"},
	}
}

func TestResultJSONShape(t *testing.T) {
	dir := t.TempDir()
	path, err := sampleStorm().WriteJSON(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "storm-3-current-20261126T150000Z.json"), path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"scenario", "label", "commit", "timestamp", "machine", "tenants", "latencies", "throughput_per_second", "failures"} {
		require.Contains(t, m, k)
	}
	machine := m["machine"].(map[string]any)
	require.Equal(t, 2.0, machine["cores"])
	require.Equal(t, float64(24<<30), machine["memory_bytes"])
	paid := m["latencies"].(map[string]any)["invoice_paid"].(map[string]any)
	require.Equal(t, map[string]any{"count": 2.0, "p50_seconds": 3.25, "p99_seconds": 6.0, "max_seconds": 6.0}, paid)
	require.Equal(t, "2026-11-26T15:00:00Z", m["timestamp"])

	// A result without failures still says so: an empty list, not null.
	ok := sampleStorm()
	ok.Failures = []string{}
	b, err = json.Marshal(ok)
	require.NoError(t, err)
	require.Contains(t, string(b), `"failures":[]`)
}

func TestTables(t *testing.T) {
	r := sampleStorm()
	tab := Table([]Result{r})
	lines := strings.Split(strings.TrimSpace(tab), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, "| current | 3 | 1.0 s / 2.0 s | 3.2 s / 6.0 s / 6.0 s | 0.50 | 81 MB | 1/3 |", lines[2])

	base := r
	base.Label, base.ThroughputPerSecond = "baseline abc", 0.25
	ratio := Ratio(r, base)
	require.Contains(t, ratio, "| throughput per second | 0.50 | 0.25 | 2.00x |")

	h := Result{Scenario: "history", Label: "current", Tenants: 3, Counts: map[string]float64{"b": 2, "a": 1.5}}
	require.Equal(t, "| worker | tenants | figure | value |\n|---|---|---|---|\n| current | 3 | a | 1.5 |\n| current | 3 | b | 2 |\n", Table([]Result{h}))
	require.Empty(t, Table(nil))

	pool := Result{Scenario: "pool", Label: "current", Tenants: 32, Params: map[string]string{"debits_per_pattern": "20000"},
		Counts: map[string]float64{"atomic_seconds": 1.5, "atomic_debits_per_second": 13333.3, "for_update_seconds": 6,
			"for_update_debits_per_second": 3333.3, "ratio_atomic_over_for_update": 4}}
	require.Equal(t, "| pattern | clients | debits | seconds | debits/s |\n|---|---|---|---|---|\n"+
		"| atomic conditional UPDATE | 32 | 20000 | 1.50 | 13333 |\n"+
		"| SELECT ... FOR UPDATE, then UPDATE | 32 | 20000 | 6.00 | 3333 |\n"+
		"\nratio (atomic / FOR UPDATE): 4.00x; verified: yes\n", Table([]Result{pool}))
}
