package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
)

// buildRails configures the payment rails from the environment. A rail
// whose settings are absent is off (the cascade skips it, and says so); a
// rail whose settings are present but wrong stops the worker at start.
//
//	BILLFLOW_SECRET_KEY        hex AES-256 key opening tenants' NWC connections
//	BILLFLOW_LND_ADDR          the engine's LND gRPC host:port, with
//	BILLFLOW_LND_TLS_CERT      its tls.cert path,
//	BILLFLOW_LND_MACAROON      an invoice macaroon path,
//	BILLFLOW_LND_NETWORK       mainnet, testnet3, signet, regtest or simnet,
//	BILLFLOW_LND_PUBKEY        the node's public key (pins every BOLT11; optional)
//	BILLFLOW_RATES             msat per major unit, "usd=2000000,eur=2200000"
//	BILLFLOW_STRIPE_API_KEY    Stripe secret or restricted key
//	BILLFLOW_STRIPE_API_URL    Stripe API base URL (sandbox; default Stripe's)
//	BILLFLOW_ROBOT_KEY         hex secret key of the Nostr robot sending DMs
//	BILLFLOW_NOSTR_RELAYS      comma-separated relays for DMs
//	BILLFLOW_APP_URL           base URL of the payment page (default http://localhost:3000)
//	BILLFLOW_NWC_TIMEOUT       bound on one NWC payment (default 60s)
func buildRails(logger *slog.Logger, st *store.Store) (activities.Rails, func(), error) {
	r := activities.Rails{AppURL: envOr("BILLFLOW_APP_URL", "http://localhost:3000")}
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if v := os.Getenv("BILLFLOW_NWC_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return r, closeAll, fmt.Errorf("BILLFLOW_NWC_TIMEOUT=%q is not a positive duration", v)
		}
		r.NWCTimeout = d
	}
	if key := os.Getenv("BILLFLOW_SECRET_KEY"); key != "" {
		k, err := secret.ParseKey(key)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
		}
		box, err := secret.NewBox(k)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
		}
		r.Vault = vault.New(box, st)
	}
	if addr := os.Getenv("BILLFLOW_LND_ADDR"); addr != "" {
		cfg := lightning.Config{Address: addr, TLSCertPath: os.Getenv("BILLFLOW_LND_TLS_CERT"), MacaroonPath: os.Getenv("BILLFLOW_LND_MACAROON")}
		if name := os.Getenv("BILLFLOW_LND_NETWORK"); name != "" {
			net, ok := network(name)
			if !ok {
				return r, closeAll, fmt.Errorf("BILLFLOW_LND_NETWORK=%q is not mainnet, testnet3, signet, regtest or simnet", name)
			}
			cfg.Network, r.Network = net, net
		}
		node, err := lightning.New(cfg)
		if err != nil {
			return r, closeAll, fmt.Errorf("lightning node (BILLFLOW_LND_*): %w", err)
		}
		closers = append(closers, func() { _ = node.Close() })
		r.Node, r.Payee = node, strings.ToLower(os.Getenv("BILLFLOW_LND_PUBKEY"))
		spec := os.Getenv("BILLFLOW_RATES")
		if spec == "" {
			return r, closeAll, fmt.Errorf("BILLFLOW_LND_ADDR is set but BILLFLOW_RATES is not: invoices cannot be priced in msat")
		}
		rates, err := lightning.ParseStaticRate(spec)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_RATES: %w", err)
		}
		r.Rates = rates
	}
	if key := os.Getenv("BILLFLOW_STRIPE_API_KEY"); key != "" {
		c, err := card.New(card.Config{APIKey: key, BackendURL: os.Getenv("BILLFLOW_STRIPE_API_URL")})
		if err != nil {
			return r, closeAll, fmt.Errorf("card rail (BILLFLOW_STRIPE_*): %w", err)
		}
		r.Cards = c
	}
	if key := os.Getenv("BILLFLOW_ROBOT_KEY"); key != "" {
		relays := splitList(os.Getenv("BILLFLOW_NOSTR_RELAYS"))
		robot, err := dm.NewRobot(key, relays, dm.Options{})
		if err != nil {
			return r, closeAll, fmt.Errorf("DM robot (BILLFLOW_ROBOT_KEY, BILLFLOW_NOSTR_RELAYS): %w", err)
		}
		r.DM = robot
	}
	logger.Info("payment rails", "nwc", r.Vault != nil && r.Node != nil, "lightning", r.Node != nil, "card", r.Cards != nil, "dm", r.DM != nil)
	return r, closeAll, nil
}

// buildPolicy reads the collection schedule; unset values keep the defaults.
//
//	BILLFLOW_DUNNING          retries after the first failure, "24h,72h,120h"
//	BILLFLOW_RECONCILE        reconciliation checks, "1m,5m,15m,1h,6h"
//	BILLFLOW_RECONCILE_EVERY  then every (default 24h)
//	BILLFLOW_GRACE_WINDOW     grace window length (default 168h)
//	BILLFLOW_BAN_FACTOR       ban from grace for this many windows (default 50)
func buildPolicy() (activities.PaymentPolicy, error) {
	p := activities.DefaultPaymentPolicy()
	var err error
	if p.Dunning, err = durations("BILLFLOW_DUNNING", p.Dunning); err != nil {
		return p, err
	}
	if p.Reconcile, err = durations("BILLFLOW_RECONCILE", p.Reconcile); err != nil {
		return p, err
	}
	for _, v := range []struct {
		name string
		into *time.Duration
	}{{"BILLFLOW_RECONCILE_EVERY", &p.ReconcileEvery}, {"BILLFLOW_GRACE_WINDOW", &p.GraceWindow}} {
		d, err := durations(v.name, []time.Duration{*v.into})
		if err != nil {
			return p, err
		}
		if len(d) != 1 {
			return p, fmt.Errorf("%s: give one duration", v.name)
		}
		*v.into = d[0]
	}
	if v := os.Getenv("BILLFLOW_BAN_FACTOR"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return p, fmt.Errorf("BILLFLOW_BAN_FACTOR=%q is not a positive integer", v)
		}
		p.BanFactor = n
	}
	return p, nil
}

func durations(name string, def []time.Duration) ([]time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []time.Duration
	for _, s := range splitList(v) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: %q is not a positive duration (e.g. 90s, 24h)", name, v, s)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return nil, fmt.Errorf("%s=%q: durations must increase", name, v)
		}
		out = append(out, d)
	}
	return out, nil
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

func network(name string) (*chaincfg.Params, bool) {
	for _, p := range []*chaincfg.Params{&chaincfg.MainNetParams, &chaincfg.TestNet3Params, &chaincfg.SigNetParams, &chaincfg.RegressionNetParams, &chaincfg.SimNetParams} {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
