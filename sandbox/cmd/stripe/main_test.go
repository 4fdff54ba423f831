package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/card"
)

const testKey = "sk_test_cmdSandboxKey123"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestServeDemoAndSeed runs the command, reads its URL from stdout and
// charges a demo and a seeded customer through the card rail.
func TestServeDemoAndSeed(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.json")
	require.NoError(t, os.WriteFile(seed, []byte(`[{"id": "cus_seeded", "default_payment_method": "pm_seeded",
		"payment_methods": [{"id": "pm_seeded", "card": "pm_card_visa_chargeDeclinedInsufficientFunds"}]}]`), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-demo", "-seed", seed},
			env(map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}), w, io.Discard, discard())
		_ = w.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "STRIPE_SANDBOX_URL=")
	require.True(t, ok, "first line: %q", line)

	c, err := card.New(card.Config{APIKey: testKey, BackendURL: url})
	require.NoError(t, err)
	for customer, want := range map[string]card.Outcome{
		"cus_demo_visa":     card.OutcomeSucceeded,
		"cus_demo_declined": card.OutcomeDeclined,
		"cus_demo_3ds":      card.OutcomeAuthenticationRequired,
		"cus_seeded":        card.OutcomeDeclined,
	} {
		pm, found, err := c.DefaultPaymentMethod(t.Context(), customer)
		require.NoError(t, err)
		require.True(t, found, customer)
		res, err := c.ChargeOffSession(t.Context(), card.ChargeRequest{CustomerID: customer, PaymentMethodID: pm, AmountMinor: 500,
			Currency: "usd", InvoiceID: "inv-" + customer, IdempotencyKey: card.IdempotencyKey("inv-"+customer, 1)})
		require.NoError(t, err)
		assert.Equal(t, want, res.Outcome, customer)
	}
	_, found, err := c.DefaultPaymentMethod(t.Context(), "cus_demo_nocard")
	require.NoError(t, err)
	assert.False(t, found)

	cancel()
	require.NoError(t, <-done)
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no api key":              {nil, nil, "STRIPE_SANDBOX_API_KEY"},
		"webhook without secret":  {[]string{"-webhook-url", "http://127.0.0.1:1/"}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "STRIPE_SANDBOX_WEBHOOK_SECRET"},
		"missing seed file":       {[]string{"-seed", "/nonexistent/seed.json"}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "read --seed"},
		"stray argument":          {[]string{"serve"}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "unexpected arguments"},
		"unknown card in seed":    {[]string{"-seed", writeSeed(t, `[{"id":"cus_x","payment_methods":[{"id":"pm_x","card":"pm_card_bogus"}]}]`)}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "not a known test card"},
		"zero time scale":         {[]string{"-webhook-time-scale", "0"}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "--webhook-time-scale"},
		"state is not json":       {[]string{"-state", writeSeed(t, `nope`)}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "not a sandbox state"},
		"seed is not a json list": {[]string{"-seed", writeSeed(t, `{}`)}, map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}, "parse --seed"},
	} {
		t.Run(name, func(t *testing.T) {
			err := run(t.Context(), append([]string{"-addr", "127.0.0.1:0"}, tc.args...), env(tc.env), io.Discard, io.Discard, discard())
			require.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func writeSeed(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "seed.json")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// serve runs the command until the returned stop is called, and gives its URL.
func serve(t *testing.T, args ...string) (url string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), env(map[string]string{"STRIPE_SANDBOX_API_KEY": testKey}), w, io.Discard, discard())
		_ = w.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "STRIPE_SANDBOX_URL=")
	require.True(t, ok, "first line: %q", line)
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return url, func() {
		cancel()
		require.NoError(t, <-done)
	}
}

// TestStateKeepsChargesAcrossRestart: with --state, the demo customers are
// not created twice and a charge made before a restart is replayed, not
// made again, after it.
func TestStateKeepsChargesAcrossRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	req := card.ChargeRequest{CustomerID: "cus_demo_visa", PaymentMethodID: "pm_demo_visa", AmountMinor: 500,
		Currency: "usd", InvoiceID: "inv-restart", IdempotencyKey: card.IdempotencyKey("inv-restart", 1)}
	url, stop := serve(t, "-demo", "-state", state)
	c, err := card.New(card.Config{APIKey: testKey, BackendURL: url})
	require.NoError(t, err)
	first, err := c.ChargeOffSession(t.Context(), req)
	require.NoError(t, err)
	stop()

	url, stop = serve(t, "-demo", "-state", state)
	defer stop()
	c, err = card.New(card.Config{APIKey: testKey, BackendURL: url})
	require.NoError(t, err)
	again, err := c.ChargeOffSession(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, first.PaymentIntentID, again.PaymentIntentID, "the same charge, replayed")
	assert.Equal(t, card.OutcomeSucceeded, again.Outcome)
}
