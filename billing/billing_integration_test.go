//go:build integration

package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// These tests drive package billing against the real Temporal dev server and
// Postgres that scripts/test.sh starts, with billflow's real workflows and
// activities running in an in-process worker on a task queue of their own.

type env struct {
	st    *store.Store
	tc    client.Client
	bc    *billing.Client
	queue string
}

func newEnv(t *testing.T) env {
	t.Helper()
	st := testkit.NewStore(t)
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	bc := billing.New(tc, queue)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.InvoicePayment)
	w.RegisterWorkflow(workflows.GraceWindow)
	w.RegisterWorkflow(workflows.BalanceSync)
	w.RegisterWorkflow(workflows.WithdrawalPayout)
	w.RegisterWorkflow(workflows.PoolOperation)
	w.RegisterActivity(&activities.Activities{Store: st, Notify: bc})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return env{st: st, tc: tc, bc: bc, queue: queue}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// workflowExists reports whether any run of the workflow ID was ever started.
func workflowExists(t *testing.T, tc client.Client, id string) bool {
	t.Helper()
	_, err := tc.DescribeWorkflowExecution(ctxFor(t), id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false
	}
	require.NoError(t, err)
	return true
}

// An activity for a tenant that was never created is an error naming the
// tenant, and starts nothing; the caller may ask to create it explicitly.
func TestRecordActivityForUnknownTenant(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	tenant := testkit.NewTenantID(t)
	act := billing.Activity{ID: "u-1", Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: "pro"}

	_, err := e.bc.RecordActivity(ctx, string(tenant), act)
	require.ErrorIs(t, err, billing.ErrTenantNotFound)
	assert.Contains(t, err.Error(), string(tenant))
	assert.False(t, workflowExists(t, e.tc, contract.TenantWorkflowID(tenant)), "no workflow may be started for an unknown tenant")
	_, err = e.st.GetTenant(ctx, tenant)
	require.ErrorIs(t, err, store.ErrNotFound, "no tenant may be stored")

	_, err = e.bc.RenewNow(ctx, string(tenant))
	require.ErrorIs(t, err, billing.ErrTenantNotFound)
	assert.Contains(t, err.Error(), string(tenant))
	_, err = e.bc.Tenant(ctx, string(tenant))
	require.ErrorIs(t, err, billing.ErrTenantNotFound)
	assert.Contains(t, err.Error(), string(tenant))

	act.CreateTenant = true
	res, err := e.bc.RecordActivity(ctx, string(tenant), act)
	require.NoError(t, err)
	require.NotNil(t, res.Item)
	assert.Equal(t, "u-1", res.ActivityID)
	st, err := e.bc.Tenant(ctx, string(tenant))
	require.NoError(t, err)
	assert.Equal(t, models.Currency("usd"), st.Currency)
	assert.Zero(t, st.PeriodSeconds)

	// An existing tenant needs no option; the same activity is a duplicate.
	act.CreateTenant = false
	again, err := e.bc.RecordActivity(ctx, string(tenant), act)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
}

// Creating an existing tenant with the same settings is idempotent; with a
// different currency or period it is an error naming the difference.
func TestCreateTenantWithOtherSettings(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	tenant := testkit.NewTenantID(t)
	req := billing.CreateTenantRequest{Tenant: string(tenant), Currency: "eur", Period: 10 * time.Minute}
	first, err := e.bc.CreateTenant(ctx, req)
	require.NoError(t, err)
	require.Equal(t, models.Currency("eur"), first.Currency)
	require.Equal(t, int64(600), first.PeriodSeconds)

	again, err := e.bc.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Currency: "EUR", Period: 10 * time.Minute})
	require.NoError(t, err, "identical settings stay idempotent")
	assert.Equal(t, first.TenantID, again.TenantID)

	var ve *billing.ValidationError
	_, err = e.bc.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Currency: "usd", Period: 10 * time.Minute})
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "currency is eur, not usd")
	assert.NotContains(t, err.Error(), "period is")

	_, err = e.bc.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Currency: "eur"})
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "period is 10m0s, not calendar months")

	// Nothing changed.
	got, err := e.st.GetTenant(ctx, tenant)
	require.NoError(t, err)
	assert.Equal(t, models.Currency("eur"), got.Currency)
	assert.Equal(t, int64(600), got.PeriodSeconds)
}

// seedPaidInvoice bills a basic resource (5.00 USD) to a new tenant, claims
// it and pays it in the store, then runs the invoice's workflow to its end
// (it finds the invoice paid and completes): the state in which a late
// payment report used to be answered "already paid" with nothing written.
func seedPaidInvoice(t *testing.T, e env, name string) string {
	t.Helper()
	ctx := ctxFor(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := e.st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)
	start := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	_, err = e.st.RecordActivity(ctx, tenant, models.Activity{ID: "act-" + name, Type: models.ResourceCreated, ResourceID: "res-" + name, PlanID: "basic", At: start}, false)
	require.NoError(t, err)
	claim, err := e.st.Claim(ctx, store.ClaimParams{TenantID: tenant, ClaimKey: "claim-" + name + "-" + string(tenant[:8]),
		Period: models.Period{Start: start, End: start.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, claim.Invoice)
	inv := claim.Invoice.ID
	res, err := e.st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: "manual", Reference: "wire-1", Amount: 500, Currency: "usd", ReceivedAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, res.Outcome)

	run, err := e.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.InvoiceWorkflowID(inv), TaskQueue: e.queue},
		contract.WorkflowInvoicePayment, contract.InvoicePaymentInput{InvoiceID: inv})
	require.NoError(t, err)
	var done contract.InvoicePaymentResult
	require.NoError(t, run.Get(ctx, &done))
	require.Equal(t, "paid", done.Status)
	return inv
}

// overpayments returns the invoice's payments that did not pay it.
func overpayments(t *testing.T, st *store.Store, inv string) []store.Payment {
	t.Helper()
	ps, err := st.Payments(ctxFor(t), inv)
	require.NoError(t, err)
	var out []store.Payment
	for _, p := range ps {
		if !p.Applied {
			out = append(out, p)
		}
	}
	return out
}

// A payment reported through billing for an invoice whose workflow has
// completed is recorded as an overpayment, never answered "already paid"
// with nothing written. Needs the InvoicePayment workflow to record a
// report on a run started for a paid invoice (update-with-start).
func TestMarkPaidInvoicePaidAgainRecordsOverpayment(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	inv := seedPaidInvoice(t, e, "again")

	res, err := e.bc.MarkInvoicePaid(ctx, inv, "manual", "wire-2")
	require.NoError(t, err)
	assert.True(t, res.AlreadyPaid)
	assert.Equal(t, "overpayment", res.Outcome)
	over := overpayments(t, e.st, inv)
	require.Len(t, over, 1, "the second payment is recorded")
	assert.Equal(t, "wire-2", over[0].Reference)

	// The same report again is the same money: recorded once.
	res, err = e.bc.MarkInvoicePaid(ctx, inv, "manual", "wire-2")
	require.NoError(t, err)
	assert.True(t, res.AlreadyPaid)
	assert.Len(t, overpayments(t, e.st, inv), 1)
}

// The fire-and-forget report (signal-with-start) is recorded the same way.
func TestReportPaymentAfterCompletionRecordsOverpayment(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	inv := seedPaidInvoice(t, e, "signal")

	require.NoError(t, e.bc.ReportPayment(ctx, inv, billing.PaymentReport{Rail: "stripe", Reference: "pi_late", Amount: 500, Currency: "usd"}))
	// The report started a new run; it ends once the report is recorded.
	run := e.tc.GetWorkflow(ctx, contract.InvoiceWorkflowID(inv), "")
	var done contract.InvoicePaymentResult
	require.NoError(t, run.Get(ctx, &done))
	over := overpayments(t, e.st, inv)
	require.Len(t, over, 1, "the late payment is recorded")
	assert.Equal(t, "pi_late", over[0].Reference)
}

// A payment for an invoice that does not exist is ErrInvoiceNotFound naming
// it, although the report starts a run of the invoice's workflow. The id is
// unique per run: on a shared dev server a run left by an earlier test
// binary (its worker gone) would otherwise take the update and never answer.
func TestMarkPaidUnknownInvoice(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	id := "inv-never-made-" + string(testkit.NewTenantID(t))[:12]
	_, err := e.bc.MarkInvoicePaid(ctx, id, "manual", "wire-1")
	require.ErrorIs(t, err, billing.ErrInvoiceNotFound)
	assert.Contains(t, err.Error(), id)
}
