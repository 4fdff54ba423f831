// Package activities adapts workflows to the store: each activity is a method
// on Activities, takes one named Input and returns one named Result. Business
// failures are non-retryable application errors with a stable type.
package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/store"
)

// Error types carried by non-retryable application errors.
const (
	// ErrValidation is bad input that reached an activity; retrying cannot fix it.
	ErrValidation = contract.ErrValidation
	// ErrNotFound is a missing tenant or invoice.
	ErrNotFound = contract.ErrNotFound
	// ErrInvoiceClosed is a payment for a voided or written-off invoice.
	ErrInvoiceClosed = contract.ErrInvoiceClosed
)

// Activities holds the dependencies of billflow's activities.
type Activities struct {
	Store *store.Store
	// Webhook delivers outbound events; nil when no webhook is configured.
	Webhook *outbound.Sender
	// Nudge tells the event outbox that events were written; nil disables
	// it. Best effort: the outbox also sweeps on a timer.
	Nudge func(ctx context.Context) error
	// Rails collect money; Notify reaches other workflows; Policy is the
	// collection schedule (DefaultPaymentPolicy when zero).
	Rails  Rails
	Notify Notifier
	Policy PaymentPolicy
	// Usage is the service catalog and receipt signer of usage sessions.
	Usage Usage
}

// nudge wakes the outbox after a transaction wrote events. A failure only
// delays delivery until the next sweep, so it never fails the activity.
func (a *Activities) nudge(ctx context.Context) {
	if a.Nudge == nil {
		return
	}
	if err := a.Nudge(ctx); err != nil {
		activity.GetLogger(ctx).Warn("outbox nudge failed; the next sweep delivers", "error", err)
	}
}

// classify turns store and model errors into Temporal errors: business
// failures become non-retryable typed errors, anything else stays retryable.
func classify(err error) error {
	var ve *models.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		// The details carry the field, so callers can tell what was wrong.
		return temporal.NewNonRetryableApplicationError(ve.Error(), ErrValidation, nil, *ve)
	case errors.Is(err, store.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrNotFound, nil)
	case errors.Is(err, store.ErrInvoiceClosed):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvoiceClosed, nil)
	}
	return err
}

// InvoiceRef summarises an invoice for workflow state and queries.
type InvoiceRef = contract.InvoiceRef

func invoiceRef(inv store.Invoice) InvoiceRef {
	return InvoiceRef{ID: inv.ID, TenantID: inv.TenantID, Total: inv.Total, Currency: inv.Currency,
		Status: inv.Status, CreatedAt: inv.CreatedAt, PaidRail: inv.PaidRail}
}

// LoadTenantInput names the tenant, with the settings used if it is created.
type LoadTenantInput struct {
	TenantID      models.TenantID `json:"tenant_id"`
	Currency      models.Currency `json:"currency"`
	PeriodSeconds int64           `json:"period_seconds"`
}

// TenantSnapshot is what a tenant workflow run starts from.
type TenantSnapshot struct {
	TenantID       models.TenantID `json:"tenant_id"`
	Currency       models.Currency `json:"currency"`
	PeriodSeconds  int64           `json:"period_seconds"`
	Anchor         *time.Time      `json:"billing_anchor"`
	RenewedThrough *time.Time      `json:"renewed_through"`
	Status         string          `json:"status"`
	Created        bool            `json:"created"`
	Outstanding    int64           `json:"outstanding"`
	OpenInvoices   []InvoiceRef    `json:"open_invoices"`
}

// LoadTenant creates the tenant if needed and returns its billing state.
func (a *Activities) LoadTenant(ctx context.Context, in LoadTenantInput) (TenantSnapshot, error) {
	t, created, err := a.Store.EnsureTenant(ctx, in.TenantID, in.Currency, in.PeriodSeconds)
	if err != nil {
		return TenantSnapshot{}, classify(err)
	}
	out := TenantSnapshot{TenantID: t.ID, Currency: t.Currency, PeriodSeconds: t.PeriodSeconds, Anchor: t.Anchor,
		RenewedThrough: t.RenewedThrough, Status: t.Status, Created: created}
	if out.Outstanding, err = a.Store.Outstanding(ctx, t.ID); err != nil {
		return TenantSnapshot{}, err
	}
	open, err := a.Store.OpenInvoices(ctx, t.ID)
	if err != nil {
		return TenantSnapshot{}, err
	}
	for _, inv := range open {
		out.OpenInvoices = append(out.OpenInvoices, invoiceRef(inv))
	}
	return out, nil
}

// RecordActivityInput is one activity for one tenant.
type RecordActivityInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	Activity models.Activity `json:"activity"`
	// InstantDefaulted is true when the caller gave no instant and the
	// workflow used the time it accepted the activity.
	InstantDefaulted bool `json:"instant_defaulted,omitempty"`
}

// ItemRef summarises a line item.
type ItemRef = contract.ItemRef

// RecordActivityResult is the outcome of recording an activity.
type RecordActivityResult = contract.RecordActivityResponse

// RecordActivity folds one activity into the tenant's ledger in one transaction.
func (a *Activities) RecordActivity(ctx context.Context, in RecordActivityInput) (RecordActivityResult, error) {
	res, err := a.Store.RecordActivity(ctx, in.TenantID, in.Activity, in.InstantDefaulted)
	if err != nil {
		return RecordActivityResult{}, classify(err)
	}
	out := RecordActivityResult{ActivityID: in.Activity.ID, Duplicate: res.Duplicate, Outstanding: res.Outstanding}
	if res.Tenant.Anchor != nil {
		out.Anchor = *res.Tenant.Anchor
	}
	if res.Item != nil {
		out.Item = &ItemRef{ID: res.Item.ID, Kind: res.Item.Kind, Amount: res.Item.Amount, PlanID: res.Item.PlanID,
			PeriodStart: res.Item.PeriodStart, Description: res.Item.Description}
	}
	return out, nil
}

// RenewInput asks for the renewals of every boundary up to UpTo.
type RenewInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	UpTo     time.Time       `json:"up_to"`
}

// RenewResult reports how many renewal items were written.
type RenewResult struct {
	Created        int        `json:"created"`
	RenewedThrough *time.Time `json:"renewed_through"`
	// Suspended: the tenant is suspended, so nothing was renewed.
	Suspended bool `json:"suspended,omitempty"`
}

// Renew writes due renewals; repeating it is a no-op.
func (a *Activities) Renew(ctx context.Context, in RenewInput) (RenewResult, error) {
	res, err := a.Store.Renew(ctx, in.TenantID, in.UpTo)
	if err != nil {
		return RenewResult{}, classify(err)
	}
	return RenewResult{Created: res.Created, RenewedThrough: res.RenewedThrough, Suspended: res.Suspended}, nil
}

// ClaimInput names one claim.
type ClaimInput struct {
	TenantID    models.TenantID `json:"tenant_id"`
	ClaimKey    string          `json:"claim_key"`
	PeriodStart time.Time       `json:"period_start"`
	PeriodEnd   time.Time       `json:"period_end"`
}

// ClaimResult is the invoice made, if any, and what stays outstanding.
type ClaimResult struct {
	Invoice     *InvoiceRef `json:"invoice,omitempty"`
	Outstanding int64       `json:"outstanding"`
}

// Claim moves outstanding items onto an invoice when they net positive.
func (a *Activities) Claim(ctx context.Context, in ClaimInput) (ClaimResult, error) {
	// A suspended tenant is not invoiced: its items wait for the restore.
	if susp, err := a.suspended(ctx, in.TenantID); err != nil {
		return ClaimResult{}, err
	} else if susp {
		total, err := a.Store.Outstanding(ctx, in.TenantID)
		return ClaimResult{Outstanding: total}, err
	}
	res, err := a.Store.Claim(ctx, store.ClaimParams{TenantID: in.TenantID, ClaimKey: in.ClaimKey,
		Period: models.Period{Start: in.PeriodStart, End: in.PeriodEnd}, Pool: a.Usage.Pool})
	if err != nil {
		return ClaimResult{}, classify(err)
	}
	out := ClaimResult{Outstanding: res.Outstanding}
	if res.Invoice != nil {
		a.nudge(ctx)
		ref := invoiceRef(*res.Invoice)
		out.Invoice = &ref
	}
	return out, nil
}

// InvoiceInput names an invoice.
type InvoiceInput struct {
	InvoiceID string `json:"invoice_id"`
	// Rails asks BeginCollection whether the NWC rail has anything to do
	// (BeginCollectionResult.NWCSkip); the other activities ignore it.
	Rails bool `json:"rails,omitempty"`
	// Wallet asks BeginCollection to run the first attempt's wallet turn
	// too (BeginCollectionResult.Wallet); the other activities ignore it.
	Wallet bool `json:"wallet,omitempty"`
}
