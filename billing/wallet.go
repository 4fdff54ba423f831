package billing

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// CollectInvoice starts collecting an open invoice (a wallet top-up, say)
// through its InvoicePayment workflow, invoice/<id>: the run reads the
// tenant, total and currency from the store and tries the normal cascade
// (NWC, card, a DM with the payment link). A workflow already running for
// the invoice is reused, so calling this twice starts one collection. It
// returns the workflow's run id.
func (c *Client) CollectInvoice(ctx context.Context, invoiceID string) (string, error) {
	if err := validInvoiceID(invoiceID); err != nil {
		return "", err
	}
	run, err := c.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.InvoiceWorkflowID(invoiceID), TaskQueue: c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Collect invoice %s", invoiceID),
	}, contract.WorkflowInvoicePayment, contract.InvoicePaymentInput{InvoiceID: invoiceID})
	if err != nil {
		return "", &UnavailableError{Err: err}
	}
	return run.GetRunID(), nil
}

// Wallet writes and reads for code without Postgres: each is an update of
// the tenant's BalanceSync workflow (update-with-start of balance/<tenant>),
// run by the worker; a write opens an aggressive sync window.
type (
	// GrantRequest gives credit under a key, optionally expiring.
	GrantRequest = contract.GrantRequest
	// TopUpRequest asks for a top-up invoice of an amount, under a key.
	TopUpRequest = contract.TopUpRequest
	// TopUpResult is the top-up invoice whose collection started.
	TopUpResult = contract.TopUpResult
	// AutoRecharge is a wallet's auto-recharge setting (both nil: off).
	AutoRecharge = contract.AutoRecharge
	// LedgerRequest pages the ledger, newest first.
	LedgerRequest = contract.LedgerRequest
	// LedgerPage is a page of the ledger.
	LedgerPage = contract.LedgerPage
	// WalletWriteResult is a grant's entry and the wallet after it.
	WalletWriteResult = contract.WalletWriteResult
)

// Grant gives the tenant credit (a grant entry; the same key and content
// again changes nothing). Refusals: *ValidationError (amount not positive,
// another currency than the wallet's, an expiry in the past, the key used
// for other content), ErrTenantNotFound.
func (c *Client) Grant(ctx context.Context, tenant string, req GrantRequest) (WalletWriteResult, error) {
	var out WalletWriteResult
	return out, c.walletUpdate(ctx, tenant, contract.UpdateWalletGrant, req, &out)
}

// TopUp makes a top-up invoice (the same key again returns it) and starts
// its collection, invoice/<id> (NWC, card, a DM with the payment link); its
// payment deposits into the wallet.
func (c *Client) TopUp(ctx context.Context, tenant string, req TopUpRequest) (TopUpResult, error) {
	var out TopUpResult
	return out, c.walletUpdate(ctx, tenant, contract.UpdateWalletTopUp, req, &out)
}

// SetAutoRecharge sets the wallet's auto-recharge: below Threshold, a
// top-up of Amount starts (both positive), or off (both nil).
func (c *Client) SetAutoRecharge(ctx context.Context, tenant string, set AutoRecharge) (AutoRecharge, error) {
	var out AutoRecharge
	return out, c.walletUpdate(ctx, tenant, contract.UpdateWalletAutoRecharge, set, &out)
}

// Ledger reads a page of the wallet's ledger, newest first.
func (c *Client) Ledger(ctx context.Context, tenant string, req LedgerRequest) (LedgerPage, error) {
	var out LedgerPage
	return out, c.walletUpdate(ctx, tenant, contract.UpdateWalletLedger, req, &out)
}

func (c *Client) walletUpdate(ctx context.Context, tenant, name string, arg, out any) error {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return err
	}
	start := c.temporal.NewWithStartWorkflowOperation(c.balanceStart(id), contract.WorkflowBalanceSync, contract.BalanceSyncInput{TenantID: id})
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	if err != nil {
		return translate(err, tenantNotFound(id))
	}
	return translate(handle.Get(ctx, out), tenantNotFound(id))
}
