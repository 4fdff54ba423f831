// Command bench runs one of billflow's benchmark scenarios against running
// PostgreSQL and Temporal servers, prints a Markdown table and writes the
// result as JSON. scripts/bench.sh starts the servers and builds the worker;
// run that rather than this directly.
//
//	bench [flags] storm|ceiling|history|idle|pool [N]
//	bench compare CURRENT.json BASELINE.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/billflow/billflow/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		return compare(os.Args[2:])
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench [flags] storm|ceiling|history|idle|pool [N]\n       bench compare CURRENT.json BASELINE.json")
		fs.PrintDefaults()
	}
	root, _ := os.Getwd()
	workerBin := fs.String("worker", "", "billflow worker binary to measure (required except for ceiling)")
	label := fs.String("label", "current", "name of the worker in tables")
	commit := fs.String("commit", "", "commit the worker was built from (default: this checkout's)")
	fs.StringVar(&root, "root", root, "billflow checkout (config/plans.json)")
	results := fs.String("results", "", "directory for the JSON result (default ROOT/bench/results)")
	out := fs.String("out", "", "write the JSON result to this file instead")
	period := fs.Duration("period", 0, "tenants' fixed period (storm, history) or timer lead (ceiling); 0 picks one from N")
	window := fs.Duration("window", time.Minute, "idle: how long idle tenants are watched")
	timeout := fs.Duration("timeout", 0, "give up waiting after this long past the boundary (0 picks one from N)")
	rail := fs.String("rail", "card", "history: how tenants pay, card or nwc")
	debits := fs.Int64("debits", 20_000, "pool: debits each pattern makes (N is the concurrent clients)")
	record := fs.String("record", "", "history: write the first tenant's period run and invoice histories (replay fixture format) into this directory")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return errors.New("want a scenario and optionally N")
	}
	scenario := fs.Arg(0)
	n := map[string]int{"storm": 20, "ceiling": 20, "history": 3, "idle": 20, "pool": 32}[scenario]
	if n == 0 {
		return fmt.Errorf("unknown scenario %q: want storm, ceiling, history, idle or pool", scenario)
	}
	if fs.NArg() == 2 {
		v, err := strconv.Atoi(fs.Arg(1))
		if err != nil || v < 1 {
			return fmt.Errorf("the tenant count must be a positive whole number, not %q", fs.Arg(1))
		}
		n = v
	}
	admin := os.Getenv("BILLFLOW_TEST_DATABASE_URL")
	if admin == "" {
		admin = os.Getenv("DATABASE_URL")
	}
	if admin == "" || os.Getenv("TEMPORAL_ADDRESS") == "" {
		return errors.New("BILLFLOW_TEST_DATABASE_URL (or DATABASE_URL, a role that may create databases) and TEMPORAL_ADDRESS must be set: run scripts/bench.sh, which starts private servers")
	}
	if scenario != "ceiling" && scenario != "pool" && *workerBin == "" {
		return errors.New("-worker is required: the billflow worker binary to measure (scripts/bench.sh builds it)")
	}
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	if *results == "" {
		*results = filepath.Join(root, "bench", "results")
	}
	if *commit == "" {
		*commit = bench.GitCommit(root)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := bench.NewStack(ctx, bench.Config{AdminURL: admin, TemporalAddress: os.Getenv("TEMPORAL_ADDRESS"), Namespace: ns,
		WorkerBin: *workerBin, Root: root, LogDir: filepath.Join(*results, "logs"), Label: *label})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "==> %s, N=%d, worker %s (%s)\n", scenario, n, *label, *commit)
	var r bench.Result
	switch scenario {
	case "storm":
		r, err = bench.Storm(ctx, st, bench.StormOptions{Tenants: n, Period: *period, Timeout: *timeout})
	case "ceiling":
		r, err = bench.Ceiling(ctx, st, bench.CeilingOptions{Workflows: n, Lead: *period, Timeout: *timeout})
	case "history":
		r, err = bench.History(ctx, st, bench.HistoryOptions{Tenants: n, Period: *period, Timeout: *timeout, Rail: *rail, Record: *record})
	case "idle":
		r, err = bench.Idle(ctx, st, bench.IdleOptions{Tenants: n, Window: *window})
	case "pool":
		r, err = bench.Pool(ctx, st, bench.PoolOptions{Clients: n, Debits: *debits})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", scenario, err)
	}
	r.Label, r.Commit, r.Timestamp, r.Machine = *label, *commit, start.UTC(), bench.ThisMachine()
	if r.Failures == nil {
		r.Failures = []string{} // "none", not "unknown"
	}
	r.Counts["run_seconds"] = float64(int(time.Since(start).Seconds()))
	path := *out
	if path == "" {
		path, err = r.WriteJSON(*results)
	} else {
		var b []byte
		if b, err = json.MarshalIndent(r, "", "  "); err == nil {
			err = os.WriteFile(path, append(b, '\n'), 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	fmt.Print(bench.Table([]bench.Result{r}))
	fmt.Fprintf(os.Stderr, "result: %s (machine: %d cores, %.1f GiB)\n", path, r.Machine.Cores, float64(r.Machine.MemoryBytes)/(1<<30))
	for _, f := range r.Failures {
		fmt.Fprintln(os.Stderr, "FAILED VERIFICATION:", f)
	}
	if len(r.Failures) > 0 {
		return fmt.Errorf("%d failed verification", len(r.Failures))
	}
	return nil
}

// compare prints both results' tables and the ratio of current to baseline.
func compare(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: bench compare CURRENT.json BASELINE.json")
	}
	var rs [2]bench.Result
	for i, p := range args {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &rs[i]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	if rs[0].Scenario != rs[1].Scenario {
		return fmt.Errorf("cannot compare a %s result with a %s one", rs[0].Scenario, rs[1].Scenario)
	}
	fmt.Print(bench.Table(rs[:]))
	fmt.Println()
	fmt.Print(bench.Ratio(rs[0], rs[1]))
	return nil
}
