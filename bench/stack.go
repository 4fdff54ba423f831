package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/sandbox/nwcwallet"
	"github.com/billflow/billflow/sandbox/relay"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
)

// Keys the bench's worker runs with: bench-only values, never real secrets.
const (
	vaultKeyHex  = "be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c4be5c"
	stripeAPIKey = "sk_test_bench"
	stripeWhsec  = "whsec_bench"
	apiToken     = "bench-token"
)

// Config says which servers and which worker binary a scenario uses.
type Config struct {
	// AdminURL is a PostgreSQL URL whose role may CREATE DATABASE; each
	// scenario run gets its own database, dropped at the end.
	AdminURL string
	// TemporalAddress and Namespace locate the Temporal server.
	TemporalAddress string
	Namespace       string
	// WorkerBin is the billflow worker binary to measure.
	WorkerBin string
	// Root is the checkout (for config/plans.json).
	Root string
	// LogDir keeps the worker's log.
	LogDir string
	// Label names the worker in tables ("current", "baseline REV").
	Label string
}

// Stack is one scenario's world: a fresh database, the sandboxes, a worker
// process on a private task queue, and clients.
type Stack struct {
	cfg       Config
	DBName    string
	DBURL     string
	TaskQueue string
	Temporal  client.Client
	Billing   *billing.Client
	Store     *store.Store
	Pool      *pgxpool.Pool
	Stripe    *stripesandbox.Server
	// NWC is the sandbox wallet and Vault stores tenants' connections to
	// it; a tenant is connected when TenantsPayByNWC is set.
	NWC             *nwcwallet.Wallet
	Vault           *vault.Vault
	TenantsPayByNWC bool
	// payloadKeys is BILLFLOW_PAYLOAD_KEYS of the bench's client and worker:
	// the caller's, else a key made for the run (payloads are encrypted,
	// as in every deployment, so the measure includes the codec).
	payloadKeys string
	worker      *exec.Cmd
	workerLog   *os.File
	closers     []func()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewStack creates the database, starts the sandboxes and dials Temporal.
// The worker is started separately (StartWorker) so scenarios that need no
// billflow worker (ceiling) skip it.
func NewStack(ctx context.Context, cfg Config) (s *Stack, err error) {
	s = &Stack{cfg: cfg, TaskQueue: "bench-" + randHex(4)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.payloadKeys = os.Getenv(payloadcodec.EnvKeys)
	if s.payloadKeys == "" {
		s.payloadKeys = payloadcodec.NewKey("bench")
	}
	opts := client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.Namespace, Logger: quietLogger{}}
	if _, err := payloadcodec.Configure(&opts, []string{payloadcodec.EnvKeys + "=" + s.payloadKeys}); err != nil {
		return s, err
	}
	s.Temporal, err = client.Dial(opts)
	if err != nil {
		return s, fmt.Errorf("dial temporal %s: %w", cfg.TemporalAddress, err)
	}
	s.closers = append(s.closers, s.Temporal.Close)
	s.Billing = billing.New(s.Temporal, s.TaskQueue)

	s.DBName = "billflow_bench_" + randHex(5)
	conn, err := pgx.Connect(ctx, cfg.AdminURL)
	if err != nil {
		return s, fmt.Errorf("connect to postgres (admin url): %w", err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+s.DBName)
	_ = conn.Close(ctx)
	if err != nil {
		return s, fmt.Errorf("create database %s: %w", s.DBName, err)
	}
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, cfg.AdminURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+s.DBName+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	})
	u, err := url.Parse(cfg.AdminURL)
	if err != nil {
		return s, fmt.Errorf("parse admin url: %w", err)
	}
	u.Path = "/" + s.DBName
	s.DBURL = u.String()
	s.Pool, err = pgxpool.New(ctx, s.DBURL)
	if err != nil {
		return s, err
	}
	s.closers = append(s.closers, s.Pool.Close)
	return s, nil
}

// StartWorker starts the sandboxes (relay, Lightning node, NWC wallet, the
// Stripe sandbox delivering webhooks to billflow's api) in this process and
// the worker binary pointed at them, and waits until the worker has migrated
// the database.
func (s *Stack) StartWorker(ctx context.Context) error {
	rl := relay.New(relay.Options{})
	relayURL, err := rl.Start(ctx, "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("relay sandbox: %w", err)
	}
	s.closers = append(s.closers, rl.Close)
	dir, err := os.MkdirTemp("", "billflow-bench-ln")
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() { _ = os.RemoveAll(dir) })
	node, err := lnnode.Start(ctx, lnnode.Options{DataDir: dir})
	if err != nil {
		return fmt.Errorf("lightning sandbox: %w", err)
	}
	s.closers = append(s.closers, func() { _ = node.Close() })
	wallet, err := nwcwallet.Start(ctx, nwcwallet.Options{Relays: []string{relayURL}, BalanceMsat: 1_000_000_000_000, Payer: node, Network: node.Network()})
	if err != nil {
		return fmt.Errorf("nwc wallet sandbox: %w", err)
	}
	s.closers = append(s.closers, func() { _ = wallet.Close() })
	s.NWC = wallet

	// The worker migrates the database; the api needs a store on it, opened
	// once the schema exists (below).
	hook := &lateHandler{}
	apiSrv := httptest.NewServer(hook)
	s.closers = append(s.closers, apiSrv.Close)
	s.Stripe, err = stripesandbox.Start(ctx, stripesandbox.Options{APIKey: stripeAPIKey, WebhookURL: apiSrv.URL + "/webhooks/stripe", WebhookSecret: stripeWhsec})
	if err != nil {
		return fmt.Errorf("stripe sandbox: %w", err)
	}
	s.closers = append(s.closers, s.Stripe.Close)
	// The application's webhook endpoint: accepts every event, as a healthy
	// application does, so the outbox delivers as in production.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	s.closers = append(s.closers, app.Close)

	robot := nostr.GeneratePrivateKey()
	if err := os.MkdirAll(s.cfg.LogDir, 0o755); err != nil {
		return err
	}
	s.workerLog, err = os.Create(filepath.Join(s.cfg.LogDir, "worker-"+s.TaskQueue+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(s.cfg.WorkerBin)
	cmd.Dir = s.cfg.Root
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+s.DBURL,
		"TEMPORAL_ADDRESS="+s.cfg.TemporalAddress,
		"TEMPORAL_NAMESPACE="+s.cfg.Namespace,
		"BILLFLOW_TASK_QUEUE="+s.TaskQueue,
		"BILLFLOW_PLANS="+filepath.Join(s.cfg.Root, "config", "plans.json"),
		"BILLFLOW_WEBHOOK_URL="+app.URL,
		"BILLFLOW_WEBHOOK_SECRET=bench-webhook-secret",
		"BILLFLOW_SECRET_KEY="+vaultKeyHex,
		"BILLFLOW_LND_ADDR="+node.Addr(),
		"BILLFLOW_LND_TLS_CERT="+node.TLSCertPath(),
		"BILLFLOW_LND_MACAROON="+node.MacaroonPath(),
		"BILLFLOW_LND_NETWORK="+node.Network().Name,
		"BILLFLOW_LND_PUBKEY="+node.PubKey(),
		"BILLFLOW_RATES=usd=2000000",
		"BILLFLOW_STRIPE_API_KEY="+stripeAPIKey,
		"BILLFLOW_STRIPE_API_URL="+s.Stripe.URL(),
		"BILLFLOW_ROBOT_KEY="+robot,
		"BILLFLOW_NOSTR_RELAYS="+relayURL,
		"BILLFLOW_APP_URL=https://app.example",
		"BILLFLOW_NWC_TIMEOUT=10s",
		// The worker's /metrics (Temporal SDK and billflow metrics) only
		// when asked: BILLFLOW_BENCH_WORKER_HTTP_ADDR=127.0.0.1:9465.
		"BILLFLOW_WORKER_HTTP_ADDR="+os.Getenv("BILLFLOW_BENCH_WORKER_HTTP_ADDR"),
		payloadcodec.EnvKeys+"="+s.payloadKeys,
	)
	cmd.Stdout, cmd.Stderr = s.workerLog, s.workerLog
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker %s: %w", s.cfg.WorkerBin, err)
	}
	s.worker = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.closers = append(s.closers, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = s.workerLog.Close()
	})

	// Ready once the plans are loaded (after the migrations).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM plans`).Scan(&n); err == nil && n > 0 {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the worker exited during start-up (%v); log: %s", err, s.workerLog.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker did not migrate the database within 2 minutes; log: %s", s.workerLog.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Store, err = store.Open(ctx, s.DBURL)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, s.Store.Close)
	key, err := secret.ParseKey(vaultKeyHex)
	if err != nil {
		return err
	}
	box, err := secret.NewBox(key)
	if err != nil {
		return err
	}
	s.Vault = vault.New(box, s.Store)
	hook.set((&api.Server{Billing: s.Billing, Store: s.Store, Token: apiToken, StripeWebhookSecret: stripeWhsec}).Handler())
	return nil
}

// WorkerPeakRSS returns the worker's peak resident set (VmHWM) in bytes, or
// 0 when it is not known.
func (s *Stack) WorkerPeakRSS() int64 {
	if s.worker == nil || s.worker.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.worker.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Close stops the worker and the sandboxes and drops the database, in the
// reverse order of their start.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// lateHandler serves 503 until its handler is set: the Stripe sandbox needs
// the api's URL before the api's store can be opened.
type lateHandler struct {
	h atomicHandler
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// errTimeout says a scenario gave up waiting.
var errTimeout = errors.New("timed out")
