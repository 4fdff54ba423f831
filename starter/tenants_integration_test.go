//go:build integration

package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// startBillingWorker runs billflow's tenant and invoice workflows against a
// fresh database on a task queue of the test's own, which the starter uses
// through BILLFLOW_TASK_QUEUE.
func startBillingWorker(t *testing.T) (*store.Store, string) {
	t.Helper()
	st, url := newTestStore(t)
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.InvoicePayment)
	w.RegisterActivity(&activities.Activities{Store: st, Notify: billing.New(tc, queue)})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	t.Setenv("BILLFLOW_TASK_QUEUE", queue)
	return st, url
}

// activity record for a tenant never created fails naming it, unless
// --create-tenant asks for the tenant to be created; tenant create refuses
// other settings for an existing tenant.
func TestActivityRecordUnknownTenant(t *testing.T) {
	_, url := startBillingWorker(t)
	tenant := string(testkit.NewTenantID(t))
	record := []string{"activity", "record", "--tenant", tenant, "--type", "resource_created", "--resource", "relay-1", "--plan", "basic", "--id", "s-1"}

	r := runWithDB(t, url, record...)
	assert.Equal(t, exitNotFound, r.code, r.stdout)
	assert.Contains(t, r.stderr, "not found")
	assert.Contains(t, r.stderr, tenant)

	r = runWithDB(t, url, append(record, "--create-tenant")...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "recorded s-1")

	r = runWithDB(t, url, "tenant", "create", "--tenant", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	r = runWithDB(t, url, "tenant", "create", "--tenant", tenant, "--currency", "eur", "--period", "10m")
	assert.Equal(t, exitInvalid, r.code, r.stdout)
	assert.Contains(t, r.stderr, "currency is usd, not eur")
	assert.Contains(t, r.stderr, "period is calendar months, not 10m0s")
}

// invoice mark-paid on a paid invoice records the money as an overpayment
// and says so, instead of "already paid" with nothing written.
func TestMarkPaidOnPaidInvoiceSaysOverpayment(t *testing.T) {
	ctx := context.Background()
	st, url := startBillingWorker(t)
	_, inv := seedInvoice(t, st, "overpaid")
	_, err := st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: "manual", Reference: "wire-1", Amount: 500, Currency: "usd", ReceivedAt: time.Now()})
	require.NoError(t, err)

	r := runWithDB(t, url, "invoice", "mark-paid", "--invoice", inv, "--rail", "manual", "--reference", "wire-2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "recorded as an overpayment")
	ps, err := st.Payments(ctx, inv)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, "wire-2", ps[1].Reference)
	assert.False(t, ps[1].Applied)
}
