//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// A failed collection opens a grace window; it runs out unpaid, so the tenant
// is suspended and banned from grace; paying then restores it. The tenant
// workflow's status follows, and every transition is an outbound event.
func TestGraceWindowSuspendsAndRestores(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	s.startWorker()
	tenant := testkit.NewTenantID(t)
	_, err := s.billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Period: time.Hour})
	require.NoError(t, err)
	_, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "g1", Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: "pro"})
	require.NoError(t, err)
	renewed, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.NotEmpty(t, renewed.InvoiceID)

	// What InvoicePayment will do when a cascade attempt fails (issue 4).
	const window = 3 * time.Second
	_, err = s.temporal.SignalWithStartWorkflow(ctx, workflows.GraceWorkflowID(tenant), workflows.SignalCollectionFailed,
		workflows.CollectionFailed{InvoiceID: renewed.InvoiceID, Reason: "test"},
		client.StartWorkflowOptions{TaskQueue: s.taskQueue, StaticSummary: "Grace window (e2e)"},
		workflows.GraceWindow, workflows.GraceWindowInput{TenantID: tenant, Window: window})
	require.NoError(t, err)

	s.waitFor("suspension after the window", 30*time.Second, func() (bool, error) {
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
	out, errOut, code := s.starter("tenant", "grace", "--tenant", string(tenant), "--json")
	require.Zero(t, code, errOut)
	var shown store.GraceState
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, store.TenantSuspended, shown.Status)
	require.Len(t, shown.Unpaid, 1)

	_, err = s.billing.MarkInvoicePaid(ctx, renewed.InvoiceID, "manual", "late-wire")
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
	for _, typ := range []string{"tenant.grace_started", "tenant.suspended", "tenant.restored"} {
		require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type=$2`, tenant, typ), typ)
	}

	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.GraceWorkflowID(tenant), "", "grace_window.json")
	}
}
