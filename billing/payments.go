package billing

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/workflows"
)

var _ activities.Notifier = (*Client)(nil)

// ReportPayment signals an invoice's workflow that money arrived, fire and
// forget. It returns activities.ErrWorkflowGone when the workflow has
// finished, so the caller records the payment in the store itself.
func (c *Client) ReportPayment(ctx context.Context, invoiceID string, p activities.PaymentReport) error {
	req := workflows.MarkPaidRequest{Rail: p.Rail, Reference: p.Reference, Amount: p.Amount, Currency: p.Currency, AmountMsat: p.AmountMsat}
	if err := req.Validate(); err != nil {
		return err
	}
	return c.signal(ctx, workflows.InvoiceWorkflowID(invoiceID), workflows.SignalPaid, req)
}

// ReportCardFailed tells an invoice's workflow that one of its PaymentIntents
// failed (Stripe's payment_intent.payment_failed).
func (c *Client) ReportCardFailed(ctx context.Context, invoiceID, paymentIntentID, reason string) error {
	return c.signal(ctx, workflows.InvoiceWorkflowID(invoiceID), workflows.SignalCardFailed,
		workflows.CardFailed{PaymentIntentID: paymentIntentID, Reason: reason})
}

func (c *Client) signal(ctx context.Context, workflowID, name string, arg any) error {
	err := c.temporal.SignalWorkflow(ctx, workflowID, "", name, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", workflowID, activities.ErrWorkflowGone)
	}
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// ReportCollectionFailed starts the tenant's grace window, or feeds the
// running one, with signal-with-start: a tenant banned from grace is
// suspended at once by the window itself.
func (c *Client) ReportCollectionFailed(ctx context.Context, in activities.CollectionFailedInput) error {
	_, err := c.temporal.SignalWithStartWorkflow(ctx, workflows.GraceWorkflowID(in.TenantID), workflows.SignalCollectionFailed,
		workflows.CollectionFailed{InvoiceID: in.InvoiceID, Reason: in.Reason},
		client.StartWorkflowOptions{
			ID: workflows.GraceWorkflowID(in.TenantID), TaskQueue: c.taskQueue,
			StaticSummary: fmt.Sprintf("Grace window of tenant %s", in.TenantID.Short()),
			StaticDetails: fmt.Sprintf("Tenant `%s`. Opened when invoice `%s` failed to collect; restores the tenant once everything is paid, suspends and bans from grace if the window runs out.", in.TenantID, in.InvoiceID),
		},
		workflows.GraceWindow, workflows.GraceWindowInput{TenantID: in.TenantID, Window: in.GraceWindow, BanFactor: in.BanFactor})
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// CloseInvoice voids an invoice ("void") or writes it off
// ("uncollectible"), through its workflow, releasing its discount slot.
func (c *Client) CloseInvoice(ctx context.Context, invoiceID, status, reason string) (Payment, error) {
	req := workflows.CloseInvoiceRequest{Status: status, Reason: reason}
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	var res Payment
	err := c.update(ctx, workflows.InvoiceWorkflowID(invoiceID), workflows.UpdateCloseInvoice, &res, ErrInvoiceNotFound, req)
	return res, err
}

// LightningInvoice returns a payable BOLT11 for an invoice being collected,
// for the payment page: issued on the engine's node, reused while payable.
func (c *Client) LightningInvoice(ctx context.Context, invoiceID string) (activities.LightningInvoice, error) {
	var li activities.LightningInvoice
	err := c.update(ctx, workflows.InvoiceWorkflowID(invoiceID), workflows.UpdateLightningInvoice, &li, ErrInvoiceNotFound)
	return li, err
}
