//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
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

// TestTenantNotFoundIsOneAnswer: every command given a tenant that does not
// exist answers the same line and exit code, whether it asks the tenant's
// workflow (show, renew) or reads the database (the rest). Before, some said
// "tenant not found" (exit 1), some "not found" (1), some "tenant ... does
// not exist" (2), and the listings printed nothing and succeeded.
func TestTenantNotFoundIsOneAnswer(t *testing.T) {
	_, url := newTestStore(t)
	t.Setenv("BILLFLOW_SECRET_KEY", strings.Repeat("ab", 32))
	missing := string(testkit.NewTenantID(t))
	want := fmt.Sprintf("error: tenant %s not found (create it with: starter tenant create --tenant %s)\n", missing, missing)
	for _, args := range [][]string{
		{"tenant", "show", "--tenant", missing},
		{"tenant", "show", "--tenant", missing, "--json"},
		{"renew", "--tenant", missing},
		{"tenant", "grace", "--tenant", missing},
		{"tenant", "payment-methods", "--tenant", missing},
		{"tenant", "set-stripe-customer", "--tenant", missing, "--customer", "cus_123"},
		{"tenant", "set-nwc", "--tenant", missing, "--clear"},
		{"invoice", "list", "--tenant", missing},
		{"invoice", "refunds", "--tenant", missing},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			r := runWithDB(t, url, args...)
			assert.Equal(t, exitNotFound, r.code, "exit code; stderr %s", r.stderr)
			assert.Equal(t, want, r.stderr)
			assert.Empty(t, r.stdout)
		})
	}
}

// stubTenantBilling answers the tenant query with a fixed state: what the
// real workflow remembers of an invoice it claimed earlier.
func stubTenantBilling(ctx workflow.Context, state workflows.TenantState) error {
	if err := workflow.SetQueryHandler(ctx, workflows.QueryTenant, func() (workflows.TenantState, error) { return state, nil }); err != nil {
		return err
	}
	return workflow.Await(ctx, func() bool { return false })
}

// TestTenantShowAndInvoiceListAgree: an invoice that moved on after its
// claim (here to awaiting_payment, and another to paid) shows the same
// status in `tenant show` as in `invoice list`: both read Postgres.
func TestTenantShowAndInvoiceListAgree(t *testing.T) {
	ctx := context.Background()
	st, url := newTestStore(t)
	tenant, inv := seedInvoice(t, st, "agree")
	_, err := st.Pool().Exec(ctx, `UPDATE invoices SET status = 'awaiting_payment' WHERE id = $1`, inv)
	require.NoError(t, err)
	_, err = st.Pool().Exec(ctx, `UPDATE tenants SET status = 'grace', grace_expires_at = now() + interval '1 hour' WHERE id = $1`, tenant)
	require.NoError(t, err)
	// An item the workflow has not heard of (as a restore after suspension
	// writes): outstanding comes from the store too.
	_, err = st.RecordActivity(ctx, tenant, models.Activity{ID: "act-extra", Type: models.ResourceCreated, ResourceID: "res-extra", PlanID: "basic",
		At: time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)}, false)
	require.NoError(t, err)
	outstanding, err := st.Outstanding(ctx, tenant)
	require.NoError(t, err)
	require.Positive(t, outstanding)

	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(stubTenantBilling, workflow.RegisterOptions{Name: "TenantBilling"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	state := workflows.TenantState{TenantID: tenant, Currency: "usd", Status: "active", PeriodSeconds: 600,
		OpenInvoices: []activities.InvoiceRef{
			{ID: inv, TenantID: tenant, Total: 500, Currency: "usd", Status: store.InvoiceCollecting},
		}}
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.TenantWorkflowID(tenant), TaskQueue: queue}, "TenantBilling", state)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tc.TerminateWorkflow(context.Background(), run.GetID(), "", "test over") })

	r := runWithDB(t, url, "invoice", "list", "--tenant", string(tenant), "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var listed []store.Invoice
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &listed))
	require.Len(t, listed, 1)
	require.Equal(t, "awaiting_payment", listed[0].Status)

	r = runWithDB(t, url, "tenant", "show", "--tenant", string(tenant), "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var shown workflows.TenantState
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown))
	require.Len(t, shown.OpenInvoices, 1)
	assert.Equal(t, listed[0].Status, shown.OpenInvoices[0].Status, "tenant show and invoice list agree")
	assert.Equal(t, "grace", shown.Status, "the tenant's standing comes from the database too")
	assert.Equal(t, outstanding, shown.Outstanding, "the outstanding total comes from the database too")

	r = runWithDB(t, url, "tenant", "show", "--tenant", string(tenant))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, regexp.MustCompile(regexp.QuoteMeta(inv)+`\s+5\.00 USD awaiting_payment`), r.stdout)
	assert.NotContains(t, r.stdout, "collecting")

	// Paid since: no longer among the open invoices.
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailManual, Reference: "wire-1", ReceivedAt: time.Now()})
	require.NoError(t, err)
	r = runWithDB(t, url, "tenant", "show", "--tenant", string(tenant), "--json")
	require.Equal(t, 0, r.code, r.stderr)
	shown = workflows.TenantState{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown))
	for _, o := range shown.OpenInvoices {
		assert.NotEqual(t, inv, o.ID, "a paid invoice is not open")
	}
}
