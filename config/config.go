// Package config is the one typed configuration of billflow's programs (the
// worker, the api and the starter CLI), read from the environment with
// github.com/caarlos0/env and validated before anything connects: a setting
// that is malformed, or rails configured inconsistently, stop the program at
// start with a message naming the variables. Temporal's own connection
// settings (TEMPORAL_*) stay with the SDK's envconfig, which reads them the
// way the temporal CLI does.
//
// This package imports nothing of billflow, so every program can load it
// without pulling in the rails.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// DefaultTaskQueue is the worker's task queue when BILLFLOW_TASK_QUEUE is unset
// (workflows.DefaultTaskQueue; a test keeps them equal).
const DefaultTaskQueue = "billflow"

// Common is what every program reads.
type Common struct {
	// DatabaseURL is billflow's Postgres, the system of record.
	DatabaseURL string `env:"DATABASE_URL" redact:"url"`
	// TaskQueue is the Temporal task queue the worker polls and clients start workflows on.
	TaskQueue string `env:"BILLFLOW_TASK_QUEUE" envDefault:"billflow"`
}

// Rails configures the worker's payment and messaging rails. A rail whose
// variables are absent is off; one whose variables are present but
// inconsistent stops the worker.
type Rails struct {
	// SecretKey (64 hex digits) opens tenants' sealed NWC connections.
	SecretKey string `env:"BILLFLOW_SECRET_KEY" redact:"secret"`
	// NWC turns the NWC rail on or off. Unset: on when the engine's node is
	// configured (NWC pays the node's BOLT11s), which then needs SecretKey.
	NWC *bool `env:"BILLFLOW_NWC_ENABLED"`
	// LND* reach the engine's Lightning node; Network and Pubkey pin every
	// BOLT11 it issues before a wallet is asked to pay it.
	LNDAddr     string `env:"BILLFLOW_LND_ADDR"`
	LNDTLSCert  string `env:"BILLFLOW_LND_TLS_CERT"`
	LNDMacaroon string `env:"BILLFLOW_LND_MACAROON"`
	LNDNetwork  string `env:"BILLFLOW_LND_NETWORK"`
	LNDPubkey   string `env:"BILLFLOW_LND_PUBKEY"`
	// LNDPayoutMacaroon, optional, turns Lightning payouts (withdrawals) on:
	// a macaroon of the engine's node with offchain read and write (never
	// the admin one), as a file path or as hex. Only payouts send it.
	LNDPayoutMacaroon string `env:"BILLFLOW_LND_PAYOUT_MACAROON" redact:"secret"`
	// Rates is msat per major unit, "usd=2000000,eur=2200000".
	Rates string `env:"BILLFLOW_RATES"`
	// StripeAPIKey turns the card rail on; StripeAPIURL is for the sandbox.
	StripeAPIKey string `env:"BILLFLOW_STRIPE_API_KEY" redact:"secret"`
	StripeAPIURL string `env:"BILLFLOW_STRIPE_API_URL"`
	// RobotKey (hex Nostr secret key) turns the DM rail on.
	RobotKey    string `env:"BILLFLOW_ROBOT_KEY" redact:"secret"`
	NostrRelays List   `env:"BILLFLOW_NOSTR_RELAYS"`
	// AppURL is the base of the payment link in DMs when the hosted pages
	// are off (no PublicURL): <AppURL>/account?invoice=<id>.
	AppURL string `env:"BILLFLOW_APP_URL" envDefault:"http://localhost:3000"`
	// PublicURL is where the api's hosted pages are reached (package
	// paypage); set, DMs and invoice.created events carry <PublicURL>/pay/<token>.
	PublicURL string `env:"BILLFLOW_PUBLIC_URL"`
	// NWCTimeout bounds one NWC payment; past it the outcome is unknown.
	NWCTimeout time.Duration `env:"BILLFLOW_NWC_TIMEOUT" envDefault:"60s"`
}

// LightningOn reports whether the engine's Lightning node is configured.
func (r Rails) LightningOn() bool { return r.LNDAddr != "" }

// PayoutsOn reports whether the engine's node may pay out over Lightning.
func (r Rails) PayoutsOn() bool { return r.LightningOn() && r.LNDPayoutMacaroon != "" }

// LNDPayoutMacaroonSource splits BILLFLOW_LND_PAYOUT_MACAROON into a file
// path or hex text (one is empty): a value of hex digits only is the
// macaroon itself, anything else a path. Hex is never treated as a path,
// so that it cannot reach a "no such file" error.
func (r Rails) LNDPayoutMacaroonSource() (path, hexText string) {
	v := strings.TrimSpace(r.LNDPayoutMacaroon)
	if v == "" {
		return "", ""
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return v, ""
		}
	}
	return "", v
}

// NWCOn reports whether the NWC rail is on.
func (r Rails) NWCOn() bool {
	if r.NWC != nil {
		return *r.NWC
	}
	return r.LightningOn()
}

// Policy is the collection schedule.
type Policy struct {
	// Dunning is when the automatic rails are retried after the first failure.
	Dunning Durations `env:"BILLFLOW_DUNNING" envDefault:"24h,72h,120h"`
	// Reconcile is when LND and Stripe are asked directly, then every ReconcileEvery.
	Reconcile      Durations     `env:"BILLFLOW_RECONCILE" envDefault:"1m,5m,15m,1h,6h"`
	ReconcileEvery time.Duration `env:"BILLFLOW_RECONCILE_EVERY" envDefault:"24h"`
	// GraceWindow is how long an unpaid tenant keeps service; BanFactor is
	// the ban from grace after a failed window, in windows.
	GraceWindow time.Duration `env:"BILLFLOW_GRACE_WINDOW" envDefault:"168h"`
	BanFactor   int           `env:"BILLFLOW_BAN_FACTOR" envDefault:"50"`
}

// Worker is the worker's configuration.
type Worker struct {
	Common
	// Plans is the plan catalog file.
	Plans string `env:"BILLFLOW_PLANS" envDefault:"config/plans.json"`
	// Services is the metered service catalog of usage sessions; empty
	// reads config/services.json when it exists (else no services).
	Services string `env:"BILLFLOW_SERVICES"`
	// Pool is the free-tier pool's configuration (tiers, daily budgets,
	// credit share, currency, low floor); empty reads config/pool.json
	// when it exists (else models.DefaultPoolConfig).
	Pool string `env:"BILLFLOW_POOL"`
	// WebhookURL receives outbound events, signed with WebhookSecret.
	WebhookURL    string `env:"BILLFLOW_WEBHOOK_URL" redact:"url"`
	WebhookSecret string `env:"BILLFLOW_WEBHOOK_SECRET" redact:"secret"`
	// HTTPAddr serves /metrics and /healthz; empty turns them off (two
	// workers on one host would otherwise fight over one default port).
	HTTPAddr string `env:"BILLFLOW_WORKER_HTTP_ADDR"`
	Rails
	Policy
}

// API is the api's (HTTP ingress) configuration.
type API struct {
	Common
	// Addr is the listen address; it serves /metrics and /healthz too.
	Addr string `env:"BILLFLOW_API_ADDR" envDefault:"127.0.0.1:8090"`
	// Token authenticates application requests.
	Token string `env:"BILLFLOW_API_TOKEN" redact:"secret"`
	// StripeWebhookSecret verifies Stripe's deliveries (whsec_...).
	StripeWebhookSecret string `env:"BILLFLOW_STRIPE_WEBHOOK_SECRET" redact:"secret"`
	// StripeAPIKey is read only to know the card rail is on in this
	// deployment: then the webhook secret is required, or card payments that
	// settle by webhook would never be recorded.
	StripeAPIKey string `env:"BILLFLOW_STRIPE_API_KEY" redact:"secret"`
	// StripeAPIURL is the Stripe API base (the sandbox in dev): the invoice
	// page's "pay by card" charges through it.
	StripeAPIURL string `env:"BILLFLOW_STRIPE_API_URL"`
	// PublicURL turns the hosted invoice and account pages on (package
	// paypage), with SecretKey, from which their tokens are derived.
	PublicURL string `env:"BILLFLOW_PUBLIC_URL"`
	SecretKey string `env:"BILLFLOW_SECRET_KEY" redact:"secret"`
}

// Starter is the starter CLI's configuration; each command checks that the
// settings it needs are present (offline commands need none).
type Starter struct {
	Common
	// SecretKey seals the NWC connections `tenant set-nwc` stores.
	SecretKey string `env:"BILLFLOW_SECRET_KEY" redact:"secret"`
	// PublicURL is the base of the page links `invoice show` and `tenant
	// portal-link` print (with SecretKey).
	PublicURL string `env:"BILLFLOW_PUBLIC_URL"`
}

// LoadWorker reads and validates the worker's configuration from environ
// (os.Environ() form) and nothing else.
func LoadWorker(environ []string) (Worker, error) {
	var c Worker
	if err := parse(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// LoadAPI reads and validates the api's configuration.
func LoadAPI(environ []string) (API, error) {
	var c API
	if err := parse(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// LoadStarter reads and validates the starter's configuration.
func LoadStarter(environ []string) (Starter, error) {
	var c Starter
	if err := parse(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks the worker's settings together.
func (c Worker) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is not set: point it at billflow's Postgres database"))
	}
	errs = append(errs, c.Common.validate())
	if c.WebhookURL != "" && c.WebhookSecret == "" {
		errs = append(errs, errors.New("BILLFLOW_WEBHOOK_URL is set but BILLFLOW_WEBHOOK_SECRET is not: events must be signed"))
	}
	errs = append(errs, c.Rails.validate(), c.Policy.validate(), checkPages(c.PublicURL, c.SecretKey))
	return join(errs)
}

// Validate checks the api's settings together.
func (c API) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is not set: point it at billflow's Postgres database"))
	}
	errs = append(errs, c.Common.validate())
	if c.Token == "" {
		errs = append(errs, errors.New("BILLFLOW_API_TOKEN is not set: application requests must be authenticated"))
	}
	if c.StripeAPIKey != "" && c.StripeWebhookSecret == "" {
		errs = append(errs, errors.New("BILLFLOW_STRIPE_API_KEY is set (the card rail is on) but BILLFLOW_STRIPE_WEBHOOK_SECRET is not: Stripe's webhooks could not be verified, so card payments would never settle"))
	}
	if c.StripeWebhookSecret != "" && !strings.HasPrefix(c.StripeWebhookSecret, "whsec_") {
		errs = append(errs, errors.New("BILLFLOW_STRIPE_WEBHOOK_SECRET does not start with whsec_: give the endpoint's signing secret"))
	}
	if c.StripeAPIURL != "" && c.StripeAPIKey == "" {
		errs = append(errs, errors.New("BILLFLOW_STRIPE_API_URL is set but BILLFLOW_STRIPE_API_KEY is not: the card rail needs its key"))
	}
	if c.SecretKey != "" {
		errs = append(errs, checkHexKey("BILLFLOW_SECRET_KEY", c.SecretKey, 32))
	}
	errs = append(errs, checkPages(c.PublicURL, c.SecretKey))
	return join(errs)
}

// Validate checks the starter's settings that are present.
func (c Starter) Validate() error {
	var errs []error
	errs = append(errs, c.Common.validate())
	if c.SecretKey != "" {
		errs = append(errs, checkHexKey("BILLFLOW_SECRET_KEY", c.SecretKey, 32))
	}
	errs = append(errs, checkPages(c.PublicURL, c.SecretKey))
	return join(errs)
}

// checkPages checks the hosted pages' settings: a base URL a browser can
// open, and the secret key their tokens are derived from.
func checkPages(publicURL, secretKey string) error {
	if publicURL == "" {
		return nil
	}
	var errs []error
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("BILLFLOW_PUBLIC_URL=%q is not an http(s) URL without query or fragment (e.g. https://billing.example.com)", publicURL))
	}
	if secretKey == "" {
		errs = append(errs, errors.New("BILLFLOW_PUBLIC_URL is set but BILLFLOW_SECRET_KEY is not: the invoice and account page tokens are derived from it"))
	}
	return join(errs)
}

func (c Common) validate() error {
	if strings.TrimSpace(c.TaskQueue) != c.TaskQueue {
		return fmt.Errorf("BILLFLOW_TASK_QUEUE=%q has surrounding spaces", c.TaskQueue)
	}
	return nil
}

// networks are the names BILLFLOW_LND_NETWORK accepts (btcd's chain params).
var networks = []string{"mainnet", "testnet3", "signet", "regtest", "simnet"}

func (r Rails) validate() error {
	var errs []error
	if r.SecretKey != "" {
		errs = append(errs, checkHexKey("BILLFLOW_SECRET_KEY", r.SecretKey, 32))
	}
	if r.LightningOn() {
		var missing []string
		for _, v := range []struct{ name, value string }{
			{"BILLFLOW_LND_TLS_CERT", r.LNDTLSCert}, {"BILLFLOW_LND_MACAROON", r.LNDMacaroon},
			{"BILLFLOW_LND_NETWORK", r.LNDNetwork}, {"BILLFLOW_LND_PUBKEY", r.LNDPubkey}, {"BILLFLOW_RATES", r.Rates},
		} {
			if v.value == "" {
				missing = append(missing, v.name)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("BILLFLOW_LND_ADDR is set but %s %s not: the engine's node needs its TLS certificate and macaroon, "+
				"the network and public key pin every BOLT11 it issues, and the rates price invoices in msat",
				strings.Join(missing, ", "), plural(len(missing), "is", "are")))
		}
	} else {
		for _, v := range []struct{ name, value string }{{"BILLFLOW_LND_PUBKEY", r.LNDPubkey}, {"BILLFLOW_RATES", r.Rates}} {
			if v.value != "" {
				errs = append(errs, fmt.Errorf("%s is set but BILLFLOW_LND_ADDR is not: the Lightning and NWC rails need the engine's node", v.name))
			}
		}
		if r.LNDPayoutMacaroon != "" {
			errs = append(errs, errors.New("BILLFLOW_LND_PAYOUT_MACAROON is set but BILLFLOW_LND_ADDR is not: payouts are paid by the engine's node"))
		}
	}
	if r.LNDNetwork != "" && !contains(networks, r.LNDNetwork) {
		errs = append(errs, fmt.Errorf("BILLFLOW_LND_NETWORK=%q is not %s", r.LNDNetwork, strings.Join(networks, ", ")))
	}
	if r.LNDPubkey != "" {
		errs = append(errs, checkHexKey("BILLFLOW_LND_PUBKEY", r.LNDPubkey, 33))
	}
	if r.NWCOn() {
		if r.SecretKey == "" {
			errs = append(errs, errors.New("the NWC rail is on (BILLFLOW_LND_ADDR is set; BILLFLOW_NWC_ENABLED is not false) but BILLFLOW_SECRET_KEY is not set: "+
				"tenants' sealed NWC connections cannot be opened (set BILLFLOW_NWC_ENABLED=false for Lightning without NWC)"))
		}
		if !r.LightningOn() {
			errs = append(errs, errors.New("BILLFLOW_NWC_ENABLED=true but BILLFLOW_LND_ADDR is not set: NWC pays BOLT11s issued by the engine's node"))
		}
	}
	if r.StripeAPIURL != "" && r.StripeAPIKey == "" {
		errs = append(errs, errors.New("BILLFLOW_STRIPE_API_URL is set but BILLFLOW_STRIPE_API_KEY is not: the card rail needs its key"))
	}
	if len(r.NostrRelays) > 0 && r.RobotKey == "" {
		errs = append(errs, errors.New("BILLFLOW_NOSTR_RELAYS is set but BILLFLOW_ROBOT_KEY is not: the DM rail needs the robot's key"))
	}
	if r.NWCTimeout <= 0 {
		errs = append(errs, fmt.Errorf("BILLFLOW_NWC_TIMEOUT=%s is not a positive duration", r.NWCTimeout))
	}
	return join(errs)
}

func (p Policy) validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"BILLFLOW_RECONCILE_EVERY", p.ReconcileEvery}, {"BILLFLOW_GRACE_WINDOW", p.GraceWindow}} {
		if v.d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s is not a positive duration (e.g. 90s, 24h)", v.name, v.d))
		}
	}
	if len(p.Dunning) == 0 {
		errs = append(errs, errors.New("BILLFLOW_DUNNING is empty: give at least one retry delay"))
	}
	if len(p.Reconcile) == 0 {
		errs = append(errs, errors.New("BILLFLOW_RECONCILE is empty: give at least one check delay"))
	}
	if p.BanFactor <= 0 {
		errs = append(errs, fmt.Errorf("BILLFLOW_BAN_FACTOR=%d is not a positive integer", p.BanFactor))
	}
	return join(errs)
}

// checkHexKey checks that a key is n bytes of hex, without echoing it.
func checkHexKey(name, v string, n int) error {
	b, err := hex.DecodeString(strings.TrimSpace(v))
	if err != nil || len(b) != n {
		return fmt.Errorf("%s is not %d hex digits (%d bytes)", name, 2*n, n)
	}
	return nil
}

// Durations is a comma-separated list of increasing positive durations.
type Durations []time.Duration

// UnmarshalText parses "1m,5m,15m".
func (d *Durations) UnmarshalText(b []byte) error {
	var out Durations
	for _, s := range splitList(string(b)) {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a positive duration (e.g. 90s, 24h)", s)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return fmt.Errorf("durations must increase (%s after %s)", v, out[len(out)-1])
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// String is the list as it is written in the environment.
func (d Durations) String() string {
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// List is a comma-separated list; blanks around items are dropped.
type List []string

// UnmarshalText parses "a, b,c".
func (l *List) UnmarshalText(b []byte) error {
	*l = splitList(string(b))
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parse fills c from environ, naming the variable in every parse error
// (the library names the Go field).
func parse(c any, environ []string) error {
	// Only the given environment: a caller passes os.Environ() itself, so a
	// test's empty environment never falls back to the process's.
	vars := env.ToMap(environ)
	err := env.ParseWithOptions(c, env.Options{Environment: vars})
	if err == nil {
		return nil
	}
	names := envNames(reflect.TypeOf(c).Elem())
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if name, ok := names[pe.Name]; ok {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, vars[name], cause(pe.Err)))
				continue
			}
		}
		errs = append(errs, e)
	}
	return join(errs)
}

// cause strips the library's wrapping of time.ParseDuration and strconv errors
// down to what the operator needs.
func cause(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "unable to parse duration: ")
	return errors.New(msg)
}

// envNames maps each field name of t (and of its embedded structs) to its
// variable.
func envNames(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range envNames(f.Type) {
				out[k] = v
			}
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			out[f.Name] = name
		}
	}
	return out
}

// join is errors.Join that drops nils and reads as one line per problem.
func join(errs []error) error {
	var kept []error
	for _, e := range errs {
		var inner *Error
		switch {
		case e == nil:
		case errors.As(e, &inner):
			kept = append(kept, inner.Problems...)
		default:
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return &Error{Problems: kept}
}

// Error is every problem found in the configuration at once, so an operator
// fixes them in one go.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "configuration: " + strings.Join(parts, "; ")
}

// Unwrap returns the problems.
func (e *Error) Unwrap() []error { return e.Problems }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
