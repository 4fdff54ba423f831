// Command chaos is the chaos test of the cluster tier (scripts/chaos.sh runs
// it against scripts/cluster.sh's processes): tenants on short fixed
// periods with mixed payment methods record activities for a bounded time
// while a worker replica is SIGKILLed at random moments (and restarted),
// the Temporal server, PostgreSQL, the api and every sandbox are restarted,
// and the NWC wallet answers late or not at all. Then, with the system
// settled, it checks the money invariants, the workflows and that no secret
// leaked, prints a one-line summary and exits non-zero on any violation.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/billflow/billflow/payloadcodec"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
)

type config struct {
	data, root, bin string
	duration        time.Duration
	settle          time.Duration
	period          time.Duration
	tenants, kills  int
	seed            uint64
}

type driver struct {
	cfg     config
	env     map[string]string
	starter starter
	stripe  stripeAdmin
	runID   string
	secrets struct{ nwc string }
	start   time.Time
	end     time.Time

	mu         sync.Mutex
	tenants    []*tenant
	activities []activity
	n          int
	kills      int
	restarts   []string
	out        io.Writer
}

func (d *driver) seq() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.n
}

func (d *driver) logf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "%s chaos: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.data, "data", ".data/cluster", "the cluster tier's state directory")
	fs.StringVar(&cfg.root, "root", ".", "the checkout (config/plans.json)")
	fs.StringVar(&cfg.bin, "bin", ".bin", "where starter is")
	fs.DurationVar(&cfg.duration, "duration", 8*time.Minute, "how long activities and faults go on")
	fs.DurationVar(&cfg.settle, "settle", 6*time.Minute, "how long to wait, at most, for the system to settle afterwards")
	fs.DurationVar(&cfg.period, "period", time.Minute, "the tenants' fixed billing period")
	fs.IntVar(&cfg.tenants, "tenants", 30, "tenants")
	fs.IntVar(&cfg.kills, "kills", 24, "SIGKILLs of a worker replica")
	fs.Uint64Var(&cfg.seed, "seed", 0, "random seed (0: from the clock; printed)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0, nil
	} else if err != nil {
		return 2, err
	}
	if cfg.duration <= 0 || cfg.period < 10*time.Second || cfg.tenants < 1 || cfg.kills < 0 {
		return 2, errors.New("want --duration > 0, --period >= 10s, --tenants >= 1, --kills >= 0")
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	for _, p := range []*string{&cfg.data, &cfg.root, &cfg.bin} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return 2, err
		}
		*p = abs
	}
	d := &driver{cfg: cfg, out: stdout, starter: starter{bin: filepath.Join(cfg.bin, "starter")}}
	d.runID = fmt.Sprintf("%x", cfg.seed&0xffffff)
	if err := d.loadEnv(); err != nil {
		return 2, err
	}
	return d.main(ctx)
}

var envLine = regexp.MustCompile(`^([A-Z0-9_]+)=(.*)$`)

// loadEnv takes the cluster's settings from the environment (scripts/chaos.sh
// sources .data/cluster/env) and the NWC wallet's env file.
func (d *driver) loadEnv() error {
	d.env = map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			d.env[k] = v
		}
	}
	for _, k := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "BILLFLOW_STRIPE_API_URL", "BILLFLOW_STRIPE_API_KEY", "NWC_URL_FILE",
		"LNNODE_MACAROON", "LNNODE_GRPC_ADDR", "BILLFLOW_API_ADDR"} {
		if d.env[k] == "" {
			return fmt.Errorf("%s is not set: source .data/cluster/env first (scripts/chaos.sh does)", k)
		}
	}
	if err := d.readWalletEnv(); err != nil {
		return err
	}
	d.stripe = stripeAdmin{url: d.env["BILLFLOW_STRIPE_API_URL"], key: d.env["BILLFLOW_STRIPE_API_KEY"], hc: &http.Client{Timeout: 30 * time.Second}}
	b, err := os.ReadFile(d.env["NWC_URL_FILE"])
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`[?&]secret=([0-9a-fA-F]{64})`).FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("%s holds no NWC connection URL with a secret", d.env["NWC_URL_FILE"])
	}
	d.secrets.nwc = string(m[1])
	return nil
}

func (d *driver) readWalletEnv() error {
	f, err := os.Open(filepath.Join(d.cfg.data, "nwcwallet", "nwcwallet.env"))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := envLine.FindStringSubmatch(sc.Text()); m != nil {
			d.env[m[1]] = m[2]
		}
	}
	if d.env["NWC_ADMIN_URL"] == "" {
		return errors.New("the NWC wallet has no fault switches (NWC_ADMIN_URL): restart the cluster tier with this checkout's scripts")
	}
	return sc.Err()
}

// fundWallet gives the sandbox wallet a balance no run spends (its
// balance is reset at each start).
func (d *driver) fundWallet(ctx context.Context) {
	d.wallet(ctx, `{"balance_msat":1000000000000000}`)
}

// wallet sets the NWC wallet's fault switches.
func (d *driver) wallet(ctx context.Context, body string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.env["NWC_ADMIN_URL"]+"/_sandbox/faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.logf("wallet faults %s: %v", body, err)
		return
	}
	_ = resp.Body.Close()
	d.logf("wallet faults: %s (%d)", body, resp.StatusCode)
}

func dialReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var dl net.Dialer
		c, err := dl.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// fault is one planned fault.
type fault struct {
	at   time.Duration
	name string
	do   func(context.Context) error
}

func (d *driver) plan(rng *rand.Rand, tc client.Client) []fault {
	D := d.cfg.duration
	frac := func(f float64) time.Duration { return time.Duration(float64(D) * f) }
	pid := func(name string) string { return filepath.Join(d.cfg.data, name+".pid") }
	restart := func(name string, sig syscall.Signal, down time.Duration, ready func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := restartProc(ctx, pid(name), sig, down, ready); err != nil {
				return err
			}
			d.mu.Lock()
			d.restarts = append(d.restarts, name)
			d.mu.Unlock()
			return nil
		}
	}
	var fs []fault
	for i := 0; i < d.cfg.kills; i++ {
		w := fmt.Sprintf("worker-%d", 1+rng.IntN(2))
		down := time.Duration(200+rng.IntN(3800)) * time.Millisecond
		fs = append(fs, fault{at: frac(0.03 + 0.87*rng.Float64()), name: "SIGKILL " + w, do: func(ctx context.Context) error {
			if err := restartProc(ctx, pid(w), syscall.SIGKILL, down, nil); err != nil {
				return err
			}
			d.mu.Lock()
			d.kills++
			d.mu.Unlock()
			return nil
		}})
	}
	stripeReady := dialReady(hostOf(d.env["BILLFLOW_STRIPE_API_URL"]))
	fs = append(fs,
		fault{frac(0.12), "restart the relay sandbox", restart("sandbox-relay", syscall.SIGKILL, 2*time.Second, dialReady(hostOf(firstRelay(d.env["NWC_RELAYS"]))))},
		fault{frac(0.18), "NWC wallet answers late (25s, past the client's timeout)", func(ctx context.Context) error {
			d.wallet(ctx, `{"reply_delay":"25s"}`)
			return nil
		}},
		fault{frac(0.30), "NWC wallet answers at once again", func(ctx context.Context) error {
			d.wallet(ctx, `{"reply_delay":"0s"}`)
			return nil
		}},
		fault{frac(0.34), "restart the Stripe sandbox", restart("sandbox-stripe", syscall.SIGKILL, 2*time.Second, stripeReady)},
		fault{frac(0.42), "restart the Temporal server", restart("temporal-server", syscall.SIGKILL, 3*time.Second, func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		})},
		fault{frac(0.50), "restart the api with webhooks in flight (down 20s)", func(ctx context.Context) error {
			before, _ := d.eventCount(ctx)
			err := restart("sandbox-api", syscall.SIGKILL, 20*time.Second, dialReady(d.env["BILLFLOW_API_ADDR"]))(ctx)
			after, _ := d.eventCount(ctx)
			d.logf("api was down while the Stripe sandbox emitted %d events (retried on its back-off schedule)", after-before)
			return err
		}},
		fault{frac(0.60), "restart PostgreSQL (immediate shutdown)", func(ctx context.Context) error {
			if err := restartPostgres(ctx, filepath.Join(d.cfg.data, "pg", "pgdata"), filepath.Join(d.cfg.data, "logs", "postgres.log")); err != nil {
				return err
			}
			d.mu.Lock()
			d.restarts = append(d.restarts, "postgres")
			d.mu.Unlock()
			return nil
		}},
		fault{frac(0.68), "restart the Lightning node sandbox", restart("sandbox-lnnode", syscall.SIGKILL, 2*time.Second, dialReady(d.env["LNNODE_GRPC_ADDR"]))},
		fault{frac(0.74), "restart the NWC wallet sandbox", func(ctx context.Context) error {
			envFile := filepath.Join(d.cfg.data, "nwcwallet", "nwcwallet.env")
			_ = os.Remove(envFile)
			err := restart("sandbox-nwcwallet", syscall.SIGKILL, 2*time.Second, func(context.Context) error {
				if _, err := os.Stat(envFile); err != nil {
					return errNotReady
				}
				return nil
			})(ctx)
			if err == nil {
				err = d.readWalletEnv()
			}
			if err == nil {
				d.fundWallet(ctx)
			}
			return err
		}},
		fault{frac(0.80), "NWC wallet silent", func(ctx context.Context) error {
			d.wallet(ctx, `{"silent":true}`)
			return nil
		}},
		fault{frac(0.86), "NWC wallet answers again", func(ctx context.Context) error {
			d.wallet(ctx, `{"silent":false}`)
			return nil
		}},
		fault{frac(0.90), "restart the Stripe sandbox again", restart("sandbox-stripe", syscall.SIGTERM, time.Second, stripeReady)},
	)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	return fs
}

func firstRelay(relays string) string {
	r, _, _ := strings.Cut(relays, ",")
	return r
}

func (d *driver) eventCount(ctx context.Context) (int, error) {
	n, after := 0, ""
	for {
		q := url.Values{"limit": {"100"}}
		if after != "" {
			q.Set("starting_after", after)
		}
		var page struct {
			HasMore bool `json:"has_more"`
			Data    []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := d.stripe.do(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, &page); err != nil {
			return n, err
		}
		n += len(page.Data)
		if !page.HasMore || len(page.Data) == 0 {
			return n, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

func (d *driver) main(ctx context.Context) (int, error) {
	rng := rand.New(rand.NewPCG(d.cfg.seed, d.cfg.seed>>1|1))
	d.logf("seed %d: %d tenants on %s periods for %s, %d worker kills", d.cfg.seed, d.cfg.tenants, d.cfg.period, d.cfg.duration, d.cfg.kills)

	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return 2, fmt.Errorf("temporal client configuration: %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The cluster's payloads are encrypted: the checks read them decoded.
	if _, err := payloadcodec.Configure(&opts, os.Environ()); err != nil {
		return 2, err
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return 2, fmt.Errorf("connect to temporal: %w", err)
	}
	defer tc.Close()
	dc := opts.DataConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	db, err := pgxpool.New(ctx, d.env["DATABASE_URL"])
	if err != nil {
		return 2, err
	}
	defer db.Close()

	// The cluster's supervisor tolerates exits while this file exists.
	marker := filepath.Join(d.cfg.data, "chaos.active")
	if err := os.WriteFile(marker, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		return 2, err
	}
	defer func() { _ = os.Remove(marker) }()

	// The NWC tenants pay from one sandbox wallet, more than its starting
	// balance covers.
	d.fundWallet(ctx)

	// Tenants and their payment methods.
	for i := 0; i < d.cfg.tenants; i++ {
		t := &tenant{id: newTenantID(), method: mix[i%len(mix)], plans: map[string]string{}, active: map[string]bool{}}
		if err := d.setUp(ctx, t, i); err != nil {
			return 2, fmt.Errorf("setting up tenant %d (%s): %w", i, t.method, err)
		}
		d.tenants = append(d.tenants, t)
	}
	counts := map[method]int{}
	for _, t := range d.tenants {
		counts[t.method]++
	}
	d.logf("tenants set up: %v", counts)

	// Activities and faults, for the duration.
	d.start = time.Now()
	actx, stopActs := context.WithTimeout(ctx, d.cfg.duration)
	defer stopActs()
	var wg sync.WaitGroup
	for _, t := range d.tenants {
		wg.Add(1)
		go d.activityLoop(actx, t, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), &wg)
	}
	var faultErrs []string
	for _, f := range d.plan(rng, tc) {
		select {
		case <-ctx.Done():
			return 2, ctx.Err()
		case <-time.After(time.Until(d.start.Add(f.at))):
		}
		d.logf("fault: %s", f.name)
		if err := f.do(ctx); err != nil {
			d.logf("fault %q failed: %v", f.name, err)
			faultErrs = append(faultErrs, f.name+": "+err.Error())
		}
	}
	<-actx.Done()
	wg.Wait()
	d.end = time.Now().UTC().Truncate(time.Second)
	d.logf("activities stopped: %d sent; settling (at most %s)", len(d.activities), d.cfg.settle)
	d.wallet(ctx, `{"reply_delay":"0s","silent":false}`)

	// Settle: every invoice made during the run of a tenant with a working
	// method paid, and every boundary of the run renewed.
	settleBy := time.Now().Add(d.cfg.settle)
	minUntil := d.end.Add(d.cfg.period + 30*time.Second)
	for {
		var pending int
		ids := make([]string, 0, len(d.tenants))
		for _, t := range d.tenants {
			if t.method.working() {
				ids = append(ids, t.id)
			}
		}
		err := db.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE tenant_id = ANY($1) AND created_at < $2 AND status <> 'paid'`, ids, d.end).Scan(&pending)
		if err == nil && pending == 0 && time.Now().After(minUntil) {
			break
		}
		if time.Now().After(settleBy) {
			d.logf("not settled after %s (%d invoices of paying tenants unpaid)", d.cfg.settle, pending)
			break
		}
		select {
		case <-ctx.Done():
			return 2, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	d.logf("settled in %s", time.Since(d.end).Round(time.Second))

	// The checks.
	var r report
	for _, e := range faultErrs {
		r.violate("fault not applied: %s", e)
	}
	if d.kills < d.cfg.kills {
		r.violate("%d worker kills of %d planned", d.kills, d.cfg.kills)
	}
	// Every process of the tier runs at the end: none died for good.
	pidfiles, _ := filepath.Glob(filepath.Join(d.cfg.data, "*.pid"))
	for _, f := range pidfiles {
		if pid, err := readPid(f); err == nil && !alive(pid) {
			r.violate("%s (pid %d) is not running at the end", strings.TrimSuffix(filepath.Base(f), ".pid"), pid)
		}
	}
	if err := d.checkMoney(ctx, db, &r); err != nil {
		return 2, fmt.Errorf("checking money: %w", err)
	}
	secrets, err := d.loadSecrets()
	if err != nil {
		return 2, err
	}
	if err := d.checkWorkflows(ctx, tc, dc, secrets, &r); err != nil {
		return 2, fmt.Errorf("checking workflows: %w", err)
	}
	if err := d.checkLogs(secrets, &r); err != nil {
		return 2, fmt.Errorf("checking logs: %w", err)
	}
	for _, l := range r.lines {
		fmt.Fprintln(d.out, l)
	}
	if err := d.writeLog(); err != nil {
		d.logf("writing the activity log: %v", err)
	}
	fmt.Fprintf(d.out, "chaos summary: kills=%d restarts=%d (%s) invoices=%d paid=%d double_charges=%d lost_or_stuck=%d violations=%d secret_hits=%d seed=%d duration=%s\n",
		d.kills, len(d.restarts), strings.Join(d.restarts, ","), r.invoices, r.paid, r.doubleCharges, r.lostOrStuck, r.violations, r.secretHits,
		d.cfg.seed, d.cfg.duration)
	if r.violations > 0 {
		return 1, nil
	}
	return 0, nil
}

// writeLog keeps the driver's activity log beside the cluster's logs.
func (d *driver) writeLog() error {
	f, err := os.Create(filepath.Join(d.cfg.data, "chaos-activities.jsonl"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, a := range d.activities {
		fmt.Fprintf(w, `{"id":%q,"tenant":%q,"type":%q,"resource":%q,"plan":%q,"at":%q,"outcome":%q}`+"\n",
			a.ID, a.Tenant, a.Type, a.Resource, a.Plan, a.At.Format(time.RFC3339), a.Outcome)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
