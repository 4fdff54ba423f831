// Command stripe runs billflow's sandbox Stripe API (sandbox/stripe) as a
// standalone server for dev mode. See the usage text.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

const usage = `stripe: billflow's sandbox Stripe API.

It serves the part of Stripe's API the card rail uses (customers, payment
methods, PaymentIntents, events) to stripe-go pointed at its URL, with
Stripe's test cards (pm_card_visa succeeds, pm_card_visa_chargeDeclined-
InsufficientFunds declines, pm_card_authenticationRequired needs 3D Secure,
pm_sandbox_processing stays processing), Idempotency-Key replay, and signed
webhook deliveries (Stripe-Signature) with retries.

Usage:
  stripe [--addr ADDR] [--webhook-url URL] [--seed FILE] [--demo] [--drop-webhooks]
         [--state FILE] [--webhook-time-scale F] [--settle-processing-after D]

Failed deliveries are retried as Stripe does, with exponentially growing
delays (1 minute doubling up to 12 hours) for up to three days, every
duration multiplied by --webhook-time-scale (default 0.01: first retry after
0.6s, giving up after 43 minutes; 1 is Stripe's real schedule).

--state FILE keeps customers, payment methods, PaymentIntents, events,
idempotency keys and deliveries still being retried in FILE, so a restarted
sandbox carries on: it never forgets a charge it answered, and resumes its
retries. Without it everything is lost at exit.

--settle-processing-after D settles each pm_sandbox_processing charge as
succeeded D after it was made: only the later payment_intent.succeeded
webhook tells the client (0: settle them by hand, below).

Environment (secrets are never taken as flags, which other users can see):
  STRIPE_SANDBOX_API_KEY         the secret key clients must send (required)
  STRIPE_SANDBOX_WEBHOOK_SECRET  the whsec_... secret deliveries are signed
                                 with (required with --webhook-url)

Once serving it prints, for scripts:
  STRIPE_SANDBOX_URL=http://ADDR   the backend URL to give stripe-go

--seed FILE is a JSON array of customers:
  [{"id": "cus_alice", "default_payment_method": "pm_alice",
    "payment_methods": [{"id": "pm_alice", "card": "pm_card_visa"}]}]
--demo adds cus_demo_visa, cus_demo_declined, cus_demo_3ds, cus_demo_nocard.

Test helpers, over HTTP with the same API key (Bearer):
  POST /_sandbox/customers                     a customer, as in --seed
  POST /_sandbox/failures                      {"count":1,"status":429} or {"disconnect":true}
  POST /_sandbox/webhooks                      {"url": "...", "drop": true}
  POST /_sandbox/events/{id}/redeliver
  POST /_sandbox/payment_intents/{id}/settle   {"succeeded": true}
  GET  /_sandbox/charges?invoice_id=ID         {"charges": n, "payment_intents": n}

Flags:
`

// demoCustomers is what --demo seeds: one customer per outcome.
var demoCustomers = []stripesandbox.Customer{
	{ID: "cus_demo_visa", Name: "Demo (visa)", DefaultPaymentMethod: "pm_demo_visa",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_demo_visa", Card: stripesandbox.CardVisa}}},
	{ID: "cus_demo_declined", Name: "Demo (insufficient funds)", DefaultPaymentMethod: "pm_demo_declined",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_demo_declined", Card: stripesandbox.CardInsufficientFunds}}},
	{ID: "cus_demo_3ds", Name: "Demo (authentication required)", DefaultPaymentMethod: "pm_demo_3ds",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_demo_3ds", Card: stripesandbox.CardAuthenticationRequired}}},
	{ID: "cus_demo_nocard", Name: "Demo (no card)"},
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, logger)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "stripe sandbox:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("stripe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:12180", "listen address (port 0: any free port)")
	webhookURL := fs.String("webhook-url", "", "where to deliver signed events (empty: record only)")
	seed := fs.String("seed", "", "JSON file of customers to create")
	demo := fs.Bool("demo", false, "create the demo customers")
	drop := fs.Bool("drop-webhooks", false, "record events without delivering them")
	state := fs.String("state", "", "JSON file keeping the sandbox's state across restarts (empty: memory only)")
	scale := fs.Float64("webhook-time-scale", 0.01, "factor applied to Stripe's webhook retry schedule (1: real time)")
	settleAfter := fs.Duration("settle-processing-after", 0, "settle processing charges as succeeded after this long (0: by hand)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := stripesandbox.Options{
		Addr: *addr, APIKey: getenv("STRIPE_SANDBOX_API_KEY"), WebhookURL: *webhookURL,
		WebhookSecret: getenv("STRIPE_SANDBOX_WEBHOOK_SECRET"), DropWebhooks: *drop, Logger: logger,
		StateFile: *state, WebhookTimeScale: *scale, SettleProcessingAfter: *settleAfter,
	}
	if *scale <= 0 {
		return fmt.Errorf("--webhook-time-scale must be positive, got %v", *scale)
	}
	if opts.APIKey == "" {
		return errors.New("STRIPE_SANDBOX_API_KEY is not set: export the secret key clients will use (any sk_test_... string)")
	}
	if opts.WebhookURL != "" && opts.WebhookSecret == "" {
		return errors.New("--webhook-url needs STRIPE_SANDBOX_WEBHOOK_SECRET (the whsec_... secret the receiver verifies with)")
	}
	if *demo {
		opts.Customers = append(opts.Customers, demoCustomers...)
	}
	if *seed != "" {
		b, err := os.ReadFile(*seed)
		if err != nil {
			return fmt.Errorf("read --seed: %w", err)
		}
		var cs []stripesandbox.Customer
		if err := json.Unmarshal(b, &cs); err != nil {
			return fmt.Errorf("parse --seed %s: %w", *seed, err)
		}
		opts.Customers = append(opts.Customers, cs...)
	}
	srv, err := stripesandbox.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "STRIPE_SANDBOX_URL=%s\n", srv.URL())
	logger.Info("stripe sandbox serving", "url", srv.URL(), "customers", len(opts.Customers), "webhook_url", opts.WebhookURL)
	<-ctx.Done()
	logger.Info("stripe sandbox stopping")
	return nil
}
