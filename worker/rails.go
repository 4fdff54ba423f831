package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
)

// buildRails opens the payment rails the configuration turns on (it was
// validated: a rail is either off or consistently configured). A rail whose
// settings are absent is off (the cascade skips it, and says so); one whose
// settings are present but unusable (a missing certificate, a bad key) stops
// the worker at start.
func buildRails(logger *slog.Logger, st *store.Store, c config.Rails) (activities.Rails, func(), error) {
	r := activities.Rails{AppURL: c.AppURL, NWCTimeout: c.NWCTimeout}
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if c.SecretKey != "" && c.NWCOn() {
		k, err := secret.ParseKey(c.SecretKey)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
		}
		box, err := secret.NewBox(k)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
		}
		r.Vault = vault.New(box, st)
	}
	if c.LightningOn() {
		lc := lightning.Config{Address: c.LNDAddr, TLSCertPath: c.LNDTLSCert, MacaroonPath: c.LNDMacaroon}
		// With BILLFLOW_LND_PAYOUT_MACAROON the node is also a
		// lightning.Payer (withdrawal payouts); without, its PayInvoice
		// returns lightning.ErrPayoutsNotConfigured.
		lc.PayoutMacaroonPath, lc.PayoutMacaroonHex = c.LNDPayoutMacaroonSource()
		if c.LNDNetwork != "" {
			net, ok := network(c.LNDNetwork)
			if !ok {
				return r, closeAll, fmt.Errorf("BILLFLOW_LND_NETWORK=%q is not mainnet, testnet3, signet, regtest or simnet", c.LNDNetwork)
			}
			lc.Network, r.Network = net, net
		}
		node, err := lightning.New(lc)
		if err != nil {
			return r, closeAll, fmt.Errorf("lightning node (BILLFLOW_LND_*): %w", err)
		}
		closers = append(closers, func() { _ = node.Close() })
		r.Node, r.Payee = node, strings.ToLower(c.LNDPubkey)
		if c.PayoutsOn() {
			r.Payouts = activities.LightningPayouts{Payer: node}
		}
		if c.Rates == "" {
			return r, closeAll, fmt.Errorf("BILLFLOW_LND_ADDR is set but BILLFLOW_RATES is not: invoices cannot be priced in msat")
		}
		rates, err := lightning.ParseStaticRate(c.Rates)
		if err != nil {
			return r, closeAll, fmt.Errorf("BILLFLOW_RATES: %w", err)
		}
		r.Rates = rates
	}
	if c.StripeAPIKey != "" {
		cc, err := card.New(card.Config{APIKey: c.StripeAPIKey, BackendURL: c.StripeAPIURL})
		if err != nil {
			return r, closeAll, fmt.Errorf("card rail (BILLFLOW_STRIPE_*): %w", err)
		}
		r.Cards = cc
	}
	if c.RobotKey != "" {
		robot, err := dm.NewRobot(c.RobotKey, c.NostrRelays, dm.Options{})
		if err != nil {
			return r, closeAll, fmt.Errorf("DM robot (BILLFLOW_ROBOT_KEY, BILLFLOW_NOSTR_RELAYS): %w", err)
		}
		r.DM = robot
	}
	if c.PublicURL != "" {
		pages, err := links.New(st, c.SecretKey, c.PublicURL)
		if err != nil {
			return r, closeAll, fmt.Errorf("hosted pages (BILLFLOW_PUBLIC_URL, BILLFLOW_SECRET_KEY): %w", err)
		}
		r.Pages = pages
	}
	logger.Info("payment rails", "nwc", r.Vault != nil && r.Node != nil, "lightning", r.Node != nil, "lightning_payouts", r.Node != nil && c.PayoutsOn(),
		"card", r.Cards != nil, "dm", r.DM != nil, "pages", r.Pages != nil)
	return r, closeAll, nil
}

// buildPolicy is the collection schedule the configuration gives.
func buildPolicy(c config.Policy) activities.PaymentPolicy {
	return activities.PaymentPolicy{
		Dunning:        append([]time.Duration(nil), c.Dunning...),
		Reconcile:      append([]time.Duration(nil), c.Reconcile...),
		ReconcileEvery: c.ReconcileEvery,
		GraceWindow:    c.GraceWindow,
		BanFactor:      c.BanFactor,
	}
}

func network(name string) (*chaincfg.Params, bool) {
	for _, p := range []*chaincfg.Params{&chaincfg.MainNetParams, &chaincfg.TestNet3Params, &chaincfg.SigNetParams, &chaincfg.RegressionNetParams, &chaincfg.SimNetParams} {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
