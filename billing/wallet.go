package billing

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
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
