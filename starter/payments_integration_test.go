//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// These tests run the payment commands against the real Postgres and
// Temporal dev server that scripts/test.sh starts: each test gets a fresh
// database, seeded through the store.

// runWithDB runs the starter against the database at dbURL and the Temporal
// dev server of the environment.
func runWithDB(t *testing.T, dbURL string, args ...string) result {
	t.Helper()
	t.Setenv("DATABASE_URL", dbURL)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func newTestStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	url := testkit.NewDatabase(t)
	st, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	require.NoError(t, st.UpsertPlans(context.Background(), testkit.Plans))
	return st, url
}

// seedInvoice bills one basic resource (5.00 USD) to a new tenant and claims it.
func seedInvoice(t *testing.T, st *store.Store, name string) (models.TenantID, string) {
	t.Helper()
	ctx := context.Background()
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.RecordActivity(ctx, tenant, models.Activity{ID: "act-" + name, Type: models.ResourceCreated, ResourceID: "res-" + name, PlanID: "basic", At: start}, false)
	require.NoError(t, err)
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: tenant, ClaimKey: "claim-" + name + "-" + string(tenant[:8]),
		Period: models.Period{Index: 0, Start: start, End: start.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	return tenant, res.Invoice.ID
}

func payHash(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

// TestInvoiceShowCollectionAndRefunds: invoice show lists what collecting an
// invoice left in the database, and invoice refunds the overpayment.
func TestInvoiceShowCollectionAndRefunds(t *testing.T) {
	ctx := context.Background()
	st, url := newTestStore(t)
	tenant, inv := seedInvoice(t, st, "paid")
	_, other := seedInvoice(t, st, "open")
	now := time.Now().UTC().Truncate(time.Second)

	_, err := st.CreateDiscountCode(ctx, "SPRING", 2)
	require.NoError(t, err)
	require.NoError(t, st.ReserveDiscount(ctx, inv, "SPRING", now))
	require.NoError(t, st.RecordAttempt(ctx, store.Attempt{InvoiceID: inv, Attempt: 1, Rail: "nwc", Outcome: "failed", Detail: "wallet offline", At: now}))
	require.NoError(t, st.RecordAttempt(ctx, store.Attempt{InvoiceID: inv, Attempt: 1, Rail: "card", Outcome: "declined", At: now}))
	require.NoError(t, st.RecordCardPayment(ctx, store.CardPayment{PaymentIntentID: "pi_decl", InvoiceID: inv, IdempotencyKey: "invoice/" + inv + "/card/1",
		Attempt: 1, Amount: 500, Currency: "usd", Status: "requires_payment_method", Outcome: "declined", DeclineCode: "insufficient_funds"}))
	hash := payHash(inv)
	_, err = st.SaveBolt11(ctx, store.Bolt11{PaymentHash: hash, InvoiceID: inv, PaymentRequest: "lnbcrt1500n1" + inv, AmountMsat: 150000,
		QuoteAmount: 500, QuoteCurrency: "usd", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now)
	require.NoError(t, err)
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailLightning, Reference: hash, AmountMsat: 150000, ReceivedAt: now})
	require.NoError(t, err)
	over, err := st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailStripe, Reference: "pi_late", Amount: 500, Currency: "usd", ReceivedAt: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, store.SettledOverpayment, over.Outcome)

	r := runWithDB(t, url, "invoice", "show", "--invoice", inv, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var got struct {
		Status            string              `json:"status"`
		Attempts          []store.Attempt     `json:"attempts"`
		Payments          []store.Payment     `json:"payments"`
		LightningInvoices []store.Bolt11      `json:"lightning_invoices"`
		CardPayments      []store.CardPayment `json:"card_payments"`
		Entitlement       *store.Entitlement  `json:"entitlement"`
		Discount          *discountView       `json:"discount"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	assert.Equal(t, "paid", got.Status)
	require.Len(t, got.Attempts, 2)
	require.Len(t, got.Payments, 2)
	assert.True(t, got.Payments[0].Applied)
	assert.Equal(t, "to_refund", got.Payments[1].RefundStatus)
	require.Len(t, got.LightningInvoices, 1)
	assert.NotNil(t, got.LightningInvoices[0].SettledAt)
	require.Len(t, got.CardPayments, 1)
	assert.Equal(t, "insufficient_funds", got.CardPayments[0].DeclineCode)
	require.NotNil(t, got.Entitlement)
	assert.Equal(t, inv, got.Entitlement.InvoiceID)
	assert.Equal(t, &discountView{Code: "SPRING", Status: "consumed"}, got.Discount)

	text := runWithDB(t, url, "invoice", "show", "--invoice", inv)
	require.Equal(t, 0, text.code, text.stderr)
	for _, want := range []string{"wallet offline", "overpayment to refund", "applied", hash[:16] + "...", "settled", "pi_decl", "insufficient_funds", "SPRING (consumed)"} {
		assert.Contains(t, text.stdout, want)
	}

	// An invoice nobody collected yet shows empty sections.
	r = runWithDB(t, url, "invoice", "show", "--invoice", other, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var empty map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &empty))
	for _, key := range []string{"attempts", "payments", "lightning_invoices", "card_payments"} {
		assert.Equal(t, []any{}, empty[key], key)
	}
	assert.NotContains(t, empty, "entitlement")
	r = runWithDB(t, url, "invoice", "show", "--invoice", "inv-missing")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "inv-missing")

	for _, args := range [][]string{{}, {"--tenant", string(tenant)}} {
		r = runWithDB(t, url, append([]string{"invoice", "refunds", "--json"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var owed []store.Payment
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &owed))
		require.Len(t, owed, 1)
		assert.Equal(t, "pi_late", owed[0].Reference)
		assert.Equal(t, inv, owed[0].InvoiceID)
	}
	r = runWithDB(t, url, "invoice", "refunds")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "pi_late")
	assert.Contains(t, r.stdout, "5.00 USD")
	// A tenant with nothing owed back lists nothing; one that does not
	// exist is not found (TestTenantNotFoundIsOneAnswer).
	quiet := testkit.NewTenantID(t)
	_, _, err = st.EnsureTenant(ctx, quiet, "usd", 600)
	require.NoError(t, err)
	r = runWithDB(t, url, "invoice", "refunds", "--tenant", string(quiet), "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `[]`, r.stdout)
	r = runWithDB(t, url, "invoice", "refunds", "--tenant", string(testkit.NewTenantID(t)), "--json")
	assert.Equal(t, exitNotFound, r.code, r.stderr)
}

func TestDiscountCommands(t *testing.T) {
	st, url := newTestStore(t)
	_, inv := seedInvoice(t, st, "a")
	_, inv2 := seedInvoice(t, st, "b")

	r := runWithDB(t, url, "discount", "create", "--code", "ONCE", "--max", "1", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `{"code": "ONCE", "max_redemptions": 1, "reserved": 0, "redeemed": 0, "available": 1}`, r.stdout)
	// Creating it again with the same limit changes nothing; another limit is refused.
	r = runWithDB(t, url, "discount", "create", "--code", "ONCE", "--max", "1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "available")
	requireInvalid(t, runWithDB(t, url, "discount", "create", "--code", "ONCE", "--max", "5"), "ONCE", "1")

	r = runWithDB(t, url, "discount", "reserve", "--invoice", inv, "--code", "ONCE")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "invoice "+inv+": discount code ONCE reserved (0 of 1 left)\n", r.stdout)
	r = runWithDB(t, url, "discount", "reserve", "--invoice", inv, "--code", "ONCE", "--json")
	require.Equal(t, 0, r.code, "reserving again is a no-op: %s", r.stderr)
	var rv reservationView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rv))
	assert.Equal(t, "reserved", rv.Status)
	assert.Equal(t, 1, rv.DiscountCode.Reserved)

	requireInvalid(t, runWithDB(t, url, "discount", "reserve", "--invoice", inv2, "--code", "ONCE"), "ONCE", "no redemptions left")
	requireInvalid(t, runWithDB(t, url, "discount", "reserve", "--invoice", inv2, "--code", "NOPE"), "NOPE", "does not exist")
	r = runWithDB(t, url, "discount", "reserve", "--invoice", "inv-missing", "--code", "ONCE")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "inv-missing")

	r = runWithDB(t, url, "discount", "show", "--code", "ONCE")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "reserved         1")
	r = runWithDB(t, url, "discount", "show", "--code", "NOPE")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, `"NOPE"`)
}

// stubInvoicePayment stands in for the invoice workflow: it answers the
// lightning and close updates as the real one does, without rails, so the
// commands' Temporal side is exercised end to end.
func stubInvoicePayment(ctx workflow.Context, in workflows.InvoicePaymentInput) (workflows.InvoicePaymentResult, error) {
	status := "open"
	if err := workflow.SetUpdateHandler(ctx, workflows.UpdateLightningInvoice, func(workflow.Context) (activities.LightningInvoice, error) {
		return activities.LightningInvoice{PaymentRequest: "lnbcrt1500n1stub", PaymentHash: payHash(in.InvoiceID), AmountMsat: 150000,
			ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
	}); err != nil {
		return workflows.InvoicePaymentResult{}, err
	}
	if err := workflow.SetUpdateHandler(ctx, workflows.UpdateCloseInvoice, func(_ workflow.Context, req workflows.CloseInvoiceRequest) (workflows.InvoicePaymentResult, error) {
		status = req.Status
		return workflows.InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: req.Status}, nil
	}); err != nil {
		return workflows.InvoicePaymentResult{}, err
	}
	if err := workflow.Await(ctx, func() bool { return status != "open" }); err != nil {
		return workflows.InvoicePaymentResult{}, err
	}
	return workflows.InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: status}, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

func TestInvoiceVoidAndLightning(t *testing.T) {
	ctx := context.Background()
	st, url := newTestStore(t)
	_, inv := seedInvoice(t, st, "void")
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(stubInvoicePayment, workflow.RegisterOptions{Name: "InvoicePayment"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	wfRun, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.InvoiceWorkflowID(inv), TaskQueue: queue},
		"InvoicePayment", workflows.InvoicePaymentInput{InvoiceID: inv})
	require.NoError(t, err)

	r := runWithDB(t, url, "invoice", "lightning", "--invoice", inv, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var li lightningView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &li))
	assert.Equal(t, inv, li.InvoiceID)
	assert.Equal(t, "lnbcrt1500n1stub", li.PaymentRequest)
	assert.Equal(t, int64(150000), li.AmountMsat)
	r = runWithDB(t, url, "invoice", "lightning", "--invoice", inv)
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"lnbcrt1500n1stub", payHash(inv), "150000 msat", "2030-01-01T00:00:00Z", "payable"} {
		assert.Contains(t, r.stdout, want)
	}

	r = runWithDB(t, url, "invoice", "void", "--invoice", inv, "--reason", "sent twice")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "invoice "+inv+" voided: sent twice\n", r.stdout)
	require.NoError(t, wfRun.Get(ctx, nil))
	// What the real workflow's activity does.
	_, err = st.CloseInvoice(ctx, inv, store.InvoiceVoid, "sent twice", time.Now())
	require.NoError(t, err)

	// The workflow has finished: the database says what became of the invoice.
	r = runWithDB(t, url, "invoice", "void", "--invoice", inv, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `{"invoice_id": "`+inv+`", "status": "void", "already_paid": false}`, r.stdout)
	requireInvalid(t, runWithDB(t, url, "invoice", "write-off", "--invoice", inv), inv, "void", "cannot be written off")
	r = runWithDB(t, url, "invoice", "lightning", "--invoice", inv)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, inv)

	// No workflow at all.
	r = runWithDB(t, url, "invoice", "write-off", "--invoice", "inv-missing")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "inv-missing")
	assert.Contains(t, r.stderr, "not found")
}
