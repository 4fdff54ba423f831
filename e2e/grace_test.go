//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// A failed collection opens the grace window (the invoice workflow signals-
// with-start grace/<tenant>); it runs out unpaid, so the tenant is suspended
// and banned from grace; paying then restores it. The next failed collection
// while banned suspends at once, with no new grace. The tenant workflow's
// status follows, and every transition is an outbound event.
func TestGraceWindowSuspendsAndRestores(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	const window = 3 * time.Second
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_GRACE_WINDOW=3s", "BILLFLOW_DUNNING=1h", "BILLFLOW_RECONCILE=1h"}})
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_card_chargeDeclined"})
	tenant := u.id
	inv := s.bill(u, "pro")

	s.waitFor("suspension after the window", 60*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, tenant)
		return g.Status == store.TenantSuspended, err
	})
	g, err := s.store.GetGraceState(ctx, tenant)
	require.NoError(t, err)
	require.NotNil(t, g.BannedUntil)
	require.Equal(t, 50*window, g.BannedUntil.Sub(*g.SuspendedAt).Round(time.Second), "banned for 50 windows")
	s.waitFor("tenant workflow sees the suspension", 10*time.Second, func() (bool, error) {
		st, err := s.billing.Tenant(ctx, string(tenant))
		return st.Status == store.TenantSuspended, err
	})
	s.waitDM(r, u, "invoice="+inv)
	suspended := s.waitDM(r, u, "Your service is suspended")
	require.Contains(t, suspended, inv)
	require.Contains(t, suspended, appURL+"/account")
	out, errOut, code := s.starter("tenant", "grace", "--tenant", string(tenant), "--json")
	require.Zero(t, code, errOut)
	var shown store.GraceState
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, store.TenantSuspended, shown.Status)
	require.NotNil(t, shown.BannedUntil)
	require.Len(t, shown.Unpaid, 1)

	// Suspended, the tenant is not billed: activity and a renewal make no
	// invoice, so no charge and no DM (the items wait for the restore).
	_, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "gs1", Type: models.ResourceCreated, ResourceID: "relay-s", PlanID: "basic"})
	require.NoError(t, err)
	whileSuspended, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.Empty(t, whileSuspended.InvoiceID, "a suspended tenant is not invoiced")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoices WHERE tenant_id=$1`, tenant))

	_, err = s.billing.MarkInvoicePaid(ctx, inv, "manual", "late-wire")
	require.NoError(t, err)
	run := s.temporal.GetWorkflow(ctx, workflows.GraceWorkflowID(tenant), "")
	var res workflows.GraceWindowResult
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, run.Get(waitCtx, &res))
	require.Equal(t, store.TenantActive, res.Status)
	g, err = s.store.GetGraceState(ctx, tenant)
	require.NoError(t, err)
	require.Equal(t, store.TenantActive, g.Status)
	require.True(t, g.Banned(time.Now()), "the ban stays after the restore")
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.GraceWorkflowID(tenant), "", "grace_window_v2.json")
	}

	// Banned: the next failed collection suspends at once.
	_, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "g2", Type: models.ResourceCreated, ResourceID: "relay-2", PlanID: "basic"})
	require.NoError(t, err)
	second, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.NotEmpty(t, second.InvoiceID)
	s.waitFor("immediate suspension while banned", 60*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, tenant)
		return g.Status == store.TenantSuspended, err
	})
	g, err = s.store.GetGraceState(ctx, tenant)
	require.NoError(t, err)
	require.Nil(t, g.GraceExpiresAt, "no new grace window while banned")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='tenant.grace_started'`, tenant), "one grace window in all")
	require.Equal(t, 2, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='tenant.suspended'`, tenant))

	// Paying everything while suspended restores the tenant.
	_, err = s.billing.MarkInvoicePaid(ctx, second.InvoiceID, "manual", "second-wire")
	require.NoError(t, err)
	s.waitFor("restored after paying", 30*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, tenant)
		return g.Status == store.TenantActive, err
	})
	require.Equal(t, 2, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='tenant.restored'`, tenant))
	s.waitFor("the application received every transition", 30*time.Second, func() (bool, error) {
		return len(s.webhook.received("tenant.suspended")) == 2 && len(s.webhook.received("tenant.restored")) == 2 &&
			len(s.webhook.received("tenant.grace_started")) == 1, nil
	})
}

// Paid inside the window: the tenant is restored to active and the grace
// window ends, with no suspension.
func TestGracePaidInsideWindow(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_GRACE_WINDOW=1h", "BILLFLOW_RECONCILE=1h"}})
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_card_chargeDeclined"})
	inv := s.bill(u, "pro")
	s.waitFor("grace", 60*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, u.id)
		return g.Status == store.TenantGrace, err
	})
	g, err := s.store.GetGraceState(ctx, u.id)
	require.NoError(t, err)
	require.Equal(t, time.Hour, g.GraceExpiresAt.Sub(*g.GraceStartedAt).Round(time.Second))
	s.waitFor("tenant workflow sees grace", 10*time.Second, func() (bool, error) {
		st, err := s.billing.Tenant(ctx, string(u.id))
		return st.Status == store.TenantGrace, err
	})
	_, err = s.billing.MarkInvoicePaid(ctx, inv, "manual", "wire-1")
	require.NoError(t, err)
	run := s.temporal.GetWorkflow(ctx, workflows.GraceWorkflowID(u.id), "")
	var res workflows.GraceWindowResult
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, run.Get(waitCtx, &res))
	require.Equal(t, store.TenantActive, res.Status)
	require.Zero(t, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='tenant.suspended'`, u.id))
	g, err = s.store.GetGraceState(ctx, u.id)
	require.NoError(t, err)
	require.False(t, g.Banned(time.Now()), "no ban when paid in time")
}
