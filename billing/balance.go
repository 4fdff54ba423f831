package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// BalanceView is a wallet's balance as its BalanceSync workflow last synced
// it, with the instant of that sync.
type BalanceView = contract.BalanceView

// BalanceEvent tells a tenant's balance sync that money moved.
type BalanceEvent = contract.BalanceEvent

func (c *Client) balanceStart(tenant models.TenantID) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: contract.BalanceWorkflowID(tenant), TaskQueue: c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Wallet balance of tenant %s", tenant.Short()),
		StaticDetails: fmt.Sprintf("Tenant `%s`. Syncs the wallet from its ledger every hour, every few seconds for a while after money moves, "+
			"reconciles open top-ups with their rails and expires grants.", tenant),
	}
}

// ReportBalanceEvent starts the tenant's BalanceSync workflow, or feeds the
// running one (signal-with-start on balance/<tenant>): it syncs at the fast
// interval until the window times out, and a second event inside a running
// window extends it rather than starting another loop.
func (c *Client) ReportBalanceEvent(ctx context.Context, tenant models.TenantID, ev BalanceEvent) error {
	if _, err := models.ParseTenantID(string(tenant)); err != nil {
		return err
	}
	_, err := c.temporal.SignalWithStartWorkflow(ctx, contract.BalanceWorkflowID(tenant), contract.SignalBalanceEvent, ev,
		c.balanceStart(tenant), contract.WorkflowBalanceSync, contract.BalanceSyncInput{TenantID: tenant})
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// CachedBalance answers the tenant's wallet balance from its BalanceSync
// workflow's memory when that is at most maxAge old (0: the default, 60 s);
// otherwise (or when no sync runs yet) it syncs first, as SyncBalance.
func (c *Client) CachedBalance(ctx context.Context, tenant string, maxAge time.Duration) (BalanceView, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return BalanceView{}, err
	}
	if maxAge <= 0 {
		maxAge = contract.DefaultBalanceMaxAge
	}
	v, err := c.temporal.QueryWorkflow(ctx, contract.BalanceWorkflowID(id), "", contract.QueryBalance)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return c.SyncBalance(ctx, tenant)
	case err != nil:
		return BalanceView{}, translate(err, tenantNotFound(id))
	}
	var view BalanceView
	if err := v.Get(&view); err != nil {
		return BalanceView{}, err
	}
	if view.Stale(time.Now(), maxAge) {
		return c.SyncBalance(ctx, tenant)
	}
	return view, nil
}

// SyncBalance makes the tenant's balance sync read the ledger now (an
// update, starting the workflow if it is not running) and returns the
// fresh balance.
func (c *Client) SyncBalance(ctx context.Context, tenant string) (BalanceView, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return BalanceView{}, err
	}
	start := c.temporal.NewWithStartWorkflowOperation(c.balanceStart(id), contract.WorkflowBalanceSync, contract.BalanceSyncInput{TenantID: id})
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: contract.UpdateSyncBalance, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	if err != nil {
		return BalanceView{}, translate(err, tenantNotFound(id))
	}
	var view BalanceView
	if err := handle.Get(ctx, &view); err != nil {
		return BalanceView{}, translate(err, tenantNotFound(id))
	}
	return view, nil
}
