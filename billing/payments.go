package billing

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// Payment is the outcome of reporting a payment.
type Payment = contract.InvoicePaymentResult

// PaymentReport is money received for an invoice (ReportPayment).
type PaymentReport = contract.PaymentReport

// LightningInvoice is a payable BOLT11 for an invoice's payment page.
type LightningInvoice = contract.LightningInvoice

// CollectionFailedInput starts or feeds a tenant's grace window.
type CollectionFailedInput = contract.CollectionFailedInput

// ErrWorkflowGone is the answer for a workflow that has finished.
var ErrWorkflowGone = contract.ErrWorkflowGone

// invoiceNotFound is ErrInvoiceNotFound naming the invoice.
func invoiceNotFound(invoiceID string) error {
	return fmt.Errorf("%w: %s", ErrInvoiceNotFound, invoiceID)
}

// MarkInvoicePaid reports money received for an invoice through a rail
// ("manual", "stripe", "nwc", "lightning", "oob") and waits until it is
// recorded. The first payment pays the invoice; the same payment reported
// again is Outcome "duplicate"; other money for a paid invoice is recorded
// as an overpayment to refund (Outcome "overpayment", AlreadyPaid set).
//
// It is an update-with-start: when the invoice's workflow has finished (the
// invoice was paid or closed), a new run of it records the payment, so a
// report is never answered without being written.
func (c *Client) MarkInvoicePaid(ctx context.Context, invoiceID, rail, reference string) (Payment, error) {
	return c.RecordPayment(ctx, invoiceID, PaymentReport{Rail: rail, Reference: reference})
}

// RecordPayment is MarkInvoicePaid with the amount the rail collected:
// Amount with Currency (minor units) or AmountMsat. Less than the amount due
// is a partial payment (Outcome "partial", the invoice stays open for the
// rest), more pays it and keeps the difference to refund, another currency
// is kept to refund. No amount means the full amount still due.
func (c *Client) RecordPayment(ctx context.Context, invoiceID string, p PaymentReport) (Payment, error) {
	req := contract.MarkPaidRequest(p)
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	if err := validInvoiceID(invoiceID); err != nil {
		return Payment{}, err
	}
	start := c.temporal.NewWithStartWorkflowOperation(c.invoiceStart(invoiceID), contract.WorkflowInvoicePayment,
		contract.InvoicePaymentInput{InvoiceID: invoiceID})
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: contract.UpdateMarkPaid, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var res Payment
	if err != nil {
		return res, translate(err, invoiceNotFound(invoiceID))
	}
	return res, translate(handle.Get(ctx, &res), invoiceNotFound(invoiceID))
}

// invoiceStart starts (or, when running, reuses) an invoice's workflow.
func (c *Client) invoiceStart(invoiceID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: contract.InvoiceWorkflowID(invoiceID), TaskQueue: c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Payment reported for invoice %s", invoiceID),
	}
}

// validInvoiceID refuses ids that cannot name an invoice, before a workflow
// is started for them.
func validInvoiceID(id string) error {
	if id == "" || len(id) > 128 {
		return &ValidationError{Field: "invoice", Reason: fmt.Sprintf("%q is not an invoice id", id)}
	}
	return nil
}

// ReportPayment tells an invoice's workflow that money arrived, fire and
// forget, with signal-with-start: when the workflow has finished, a new run
// of it records the payment (an overpayment on a paid invoice). It
// implements activities.Notifier; it no longer returns ErrWorkflowGone.
func (c *Client) ReportPayment(ctx context.Context, invoiceID string, p PaymentReport) error {
	req := contract.MarkPaidRequest(p)
	if err := req.Validate(); err != nil {
		return err
	}
	if err := validInvoiceID(invoiceID); err != nil {
		return err
	}
	_, err := c.temporal.SignalWithStartWorkflow(ctx, contract.InvoiceWorkflowID(invoiceID), contract.SignalPaid, req,
		c.invoiceStart(invoiceID), contract.WorkflowInvoicePayment, contract.InvoicePaymentInput{InvoiceID: invoiceID})
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// TellInvoiceSettled signals the tenant's workflow that one of its invoices
// was settled (the invoice-settled signal), for the Settle activity; a
// tenant that is not running is ErrWorkflowGone. It implements
// activities.TenantTeller.
func (c *Client) TellInvoiceSettled(ctx context.Context, tenant models.TenantID, s contract.InvoiceSettled) error {
	return c.signal(ctx, contract.TenantWorkflowID(tenant), contract.SignalInvoiceSettled, s)
}

// ReportCardFailed tells an invoice's workflow that one of its PaymentIntents
// failed (Stripe's payment_intent.payment_failed). A finished workflow has
// nothing left to charge: that is ErrWorkflowGone.
func (c *Client) ReportCardFailed(ctx context.Context, invoiceID, paymentIntentID, reason string) error {
	return c.signal(ctx, contract.InvoiceWorkflowID(invoiceID), contract.SignalCardFailed,
		contract.CardFailed{PaymentIntentID: paymentIntentID, Reason: reason})
}

func (c *Client) signal(ctx context.Context, workflowID, name string, arg any) error {
	err := c.temporal.SignalWorkflow(ctx, workflowID, "", name, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", workflowID, ErrWorkflowGone)
	}
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// ReportCollectionFailed starts the tenant's grace window, or feeds the
// running one, with signal-with-start: a tenant banned from grace is
// suspended at once by the window itself.
func (c *Client) ReportCollectionFailed(ctx context.Context, in CollectionFailedInput) error {
	_, err := c.temporal.SignalWithStartWorkflow(ctx, contract.GraceWorkflowID(in.TenantID), contract.SignalCollectionFailed,
		contract.CollectionFailed{InvoiceID: in.InvoiceID, Reason: in.Reason},
		client.StartWorkflowOptions{
			ID: contract.GraceWorkflowID(in.TenantID), TaskQueue: c.taskQueue,
			StaticSummary: fmt.Sprintf("Grace window of tenant %s", in.TenantID.Short()),
			StaticDetails: fmt.Sprintf("Tenant `%s`. Opened when invoice `%s` failed to collect; restores the tenant once everything is paid, suspends and bans from grace if the window runs out.", in.TenantID, in.InvoiceID),
		},
		contract.WorkflowGraceWindow, contract.GraceWindowInput{TenantID: in.TenantID, Window: in.GraceWindow, BanFactor: in.BanFactor})
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

// CloseInvoice voids an invoice ("void") or writes it off
// ("uncollectible"), through its workflow, releasing its discount slot.
func (c *Client) CloseInvoice(ctx context.Context, invoiceID, status, reason string) (Payment, error) {
	req := contract.CloseInvoiceRequest{Status: status, Reason: reason}
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	var res Payment
	err := c.update(ctx, contract.InvoiceWorkflowID(invoiceID), contract.UpdateCloseInvoice, &res, invoiceNotFound(invoiceID), req)
	return res, err
}

// LightningInvoice returns a payable BOLT11 for an invoice being collected,
// for the payment page: issued on the engine's node, reused while payable.
func (c *Client) LightningInvoice(ctx context.Context, invoiceID string) (LightningInvoice, error) {
	var li LightningInvoice
	err := c.update(ctx, contract.InvoiceWorkflowID(invoiceID), contract.UpdateLightningInvoice, &li, invoiceNotFound(invoiceID))
	return li, err
}
