package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/models"
)

// Rails a payment can be recorded through.
var Rails = []string{"nwc", "lightning", "oob", "stripe", "manual"}

// InvoicePaymentInput starts the collection of one invoice.
type InvoicePaymentInput struct {
	InvoiceID string          `json:"invoice_id"`
	TenantID  models.TenantID `json:"tenant_id"`
	Total     int64           `json:"total"`
	Currency  models.Currency `json:"currency"`
}

// MarkPaidRequest reports money received for an invoice.
type MarkPaidRequest struct {
	Rail      string `json:"rail"`
	Reference string `json:"reference"`
}

// Validate checks a payment report.
func (m MarkPaidRequest) Validate() error {
	known := false
	for _, r := range Rails {
		known = known || r == m.Rail
	}
	if !known {
		return &models.ValidationError{Field: "rail", Reason: fmt.Sprintf("%q is not one of %s", m.Rail, strings.Join(Rails, ", "))}
	}
	if len(m.Reference) > 256 {
		return &models.ValidationError{Field: "reference", Reason: "is longer than 256 characters"}
	}
	return nil
}

// InvoicePaymentResult is the invoice's final state.
type InvoicePaymentResult struct {
	InvoiceID   string     `json:"invoice_id"`
	Status      string     `json:"status"`
	Rail        string     `json:"rail,omitempty"`
	Reference   string     `json:"reference,omitempty"`
	PaidAt      *time.Time `json:"paid_at,omitempty"`
	AlreadyPaid bool       `json:"already_paid"`
}

type invoiceRun struct {
	in     InvoicePaymentInput
	status string
	result *InvoicePaymentResult
	mu     workflow.Mutex
}

// InvoicePayment collects one invoice. Until the payment rails land it records
// the invoice as awaiting payment and waits, with no timer and no polling, for
// a payment report (the invoice-paid signal or the mark-paid update), which it
// settles in one transaction. ID: invoice/<invoice-id>.
func InvoicePayment(ctx workflow.Context, in InvoicePaymentInput) (InvoicePaymentResult, error) {
	r := &invoiceRun{in: in, status: "open", mu: workflow.NewMutex(ctx)}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryInvoice, func() (InvoicePaymentResult, error) {
		if r.result != nil {
			return *r.result, nil
		}
		return InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: r.status}, nil
	}, workflow.QueryHandlerOptions{Description: "The invoice's collection status and, once paid, the rail and reference."}); err != nil {
		return InvoicePaymentResult{}, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateMarkPaid, r.markPaid, workflow.UpdateHandlerOptions{
		Description: "Reports money received through a rail; the first payment wins.",
		Validator: func(ctx workflow.Context, req MarkPaidRequest) error {
			if err := req.Validate(); err != nil {
				return rejected(err)
			}
			return nil
		},
	}); err != nil {
		return InvoicePaymentResult{}, err
	}
	r.publish(ctx)

	var inv activities.InvoiceRef
	if err := workflow.ExecuteActivity(durable(ctx, "mark invoice awaiting payment"), a.MarkAwaitingPayment,
		activities.InvoiceInput{InvoiceID: in.InvoiceID}).Get(ctx, &inv); err != nil {
		return InvoicePaymentResult{}, err
	}
	if inv.Status == "paid" && r.result == nil {
		// Paid before this workflow got here (a replayed start): adopt it.
		r.result = &InvoicePaymentResult{InvoiceID: inv.ID, Status: "paid", Rail: inv.PaidRail, AlreadyPaid: true}
	}
	if r.result == nil {
		r.status = inv.Status
	}
	r.publish(ctx)

	paid := workflow.GetSignalChannelWithOptions(ctx, SignalPaid, workflow.SignalChannelOptions{
		Description: "Fire-and-forget payment report (rail, reference); the first payment wins.",
	})
	for r.result == nil {
		var req MarkPaidRequest
		if !paid.ReceiveAsync(&req) {
			if err := workflow.Await(ctx, func() bool { return r.result != nil || paid.Len() > 0 }); err != nil {
				return InvoicePaymentResult{}, err
			}
			continue
		}
		if err := req.Validate(); err != nil {
			workflow.GetLogger(ctx).Warn("ignoring invalid invoice-paid signal", "error", err)
			continue
		}
		if _, err := r.markPaid(ctx, req); err != nil {
			return InvoicePaymentResult{}, err
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return InvoicePaymentResult{}, err
	}
	// Tell the tenant's workflow and its grace window, if one is running.
	// Signals reach the current run; a workflow that is not running is no
	// reason to fail (the grace window re-reads unpaid invoices from the store).
	settled := InvoiceSettled{InvoiceID: in.InvoiceID, Status: r.result.Status}
	for _, id := range []string{TenantWorkflowID(in.TenantID), GraceWorkflowID(in.TenantID)} {
		if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalInvoiceSettled, settled).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Info("settlement not signalled", "workflow", id, "error", err)
		}
	}
	return *r.result, nil
}

func (r *invoiceRun) markPaid(ctx workflow.Context, req MarkPaidRequest) (InvoicePaymentResult, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return InvoicePaymentResult{}, err
	}
	defer r.mu.Unlock()
	if r.result != nil {
		again := *r.result
		again.AlreadyPaid = true
		return again, nil
	}
	var res activities.SettleResult
	if err := workflow.ExecuteActivity(durable(ctx, "settle via "+req.Rail), a.Settle, activities.SettleInput{
		InvoiceID: r.in.InvoiceID, Rail: req.Rail, Reference: req.Reference, PaidAt: workflow.Now(ctx),
	}).Get(ctx, &res); err != nil {
		return InvoicePaymentResult{}, callerError(err)
	}
	out := InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: res.Invoice.Status, Rail: res.Invoice.PaidRail,
		Reference: req.Reference, AlreadyPaid: res.AlreadyPaid}
	if !res.AlreadyPaid {
		now := workflow.Now(ctx)
		out.PaidAt = &now
	}
	r.result, r.status = &out, out.Status
	r.publish(ctx)
	return out, nil
}

func (r *invoiceRun) publish(ctx workflow.Context) {
	due := r.in.Total
	rail := ""
	if r.result != nil {
		due, rail = 0, r.result.Rail
	}
	updates := []temporal.SearchAttributeUpdate{
		AttrInvoice.ValueSet(r.in.InvoiceID), AttrTenant.ValueSet(string(r.in.TenantID)),
		AttrStatus.ValueSet(r.status), AttrAmountDue.ValueSet(due),
	}
	if rail != "" {
		updates = append(updates, AttrPaymentRail.ValueSet(rail))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("### Invoice `%s`\n\n| | |\n|---|---|\n", r.in.InvoiceID))
	b.WriteString(fmt.Sprintf("| Tenant | `%s` |\n| Amount | %s |\n| Status | **%s** |\n", r.in.TenantID.Short(), FormatAmount(r.in.Total, r.in.Currency), r.status))
	if r.result != nil {
		b.WriteString(fmt.Sprintf("| Paid via | %s |\n", r.result.Rail))
		if r.result.Reference != "" {
			b.WriteString(fmt.Sprintf("| Reference | `%s` |\n", r.result.Reference))
		}
	} else {
		b.WriteString("\nWaiting for a payment report (`invoice-paid` signal or `mark-paid` update).\n")
	}
	workflow.SetCurrentDetails(ctx, b.String())
}
