package contract

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/billflow/billflow/models"
)

// InvoicePaymentInput is what a client starts an InvoicePayment workflow
// with: the invoice's id alone, since the workflow reads the invoice from
// the store. The workflow's own input (workflows.InvoicePaymentInput) is a
// superset; this decodes into it unchanged.
type InvoicePaymentInput struct {
	InvoiceID string `json:"invoice_id"`
}

// Rails a payment can be recorded through.
var Rails = []string{"nwc", "lightning", "oob", "stripe", "manual"}

// MarkPaidRequest reports money received for an invoice: the mark-paid
// update's argument and the invoice-paid signal's payload.
type MarkPaidRequest struct {
	Rail      string `json:"rail"`
	Reference string `json:"reference"`
	// Amount (minor units) with Currency, or AmountMsat: what the rail
	// collected, when it says.
	Amount     int64  `json:"amount,omitempty"`
	Currency   string `json:"currency,omitempty"`
	AmountMsat int64  `json:"amount_msat,omitempty"`
}

var paymentHash = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Validate checks a payment report.
func (m MarkPaidRequest) Validate() error {
	known := false
	for _, r := range Rails {
		known = known || r == m.Rail
	}
	switch {
	case !known:
		return &models.ValidationError{Field: "rail", Reason: fmt.Sprintf("%q is not one of %s", m.Rail, strings.Join(Rails, ", "))}
	case len(m.Reference) > 256:
		return &models.ValidationError{Field: "reference", Reason: "is longer than 256 characters"}
	case (m.Rail == "nwc" || m.Rail == "lightning" || m.Rail == "oob") && !paymentHash.MatchString(m.Reference):
		return &models.ValidationError{Field: "reference", Reason: fmt.Sprintf("a %s payment's reference must be its 64-hex payment hash", m.Rail)}
	case m.Rail == "stripe" && !strings.HasPrefix(m.Reference, "pi_"):
		return &models.ValidationError{Field: "reference", Reason: "a stripe payment's reference must be its PaymentIntent id (pi_...)"}
	case m.Amount < 0 || m.AmountMsat < 0:
		return &models.ValidationError{Field: "amount", Reason: "must not be negative"}
	}
	return nil
}

// PaymentReport is money received for an invoice, as reported to its
// workflow (same fields as MarkPaidRequest).
type PaymentReport struct {
	Rail      string `json:"rail"`
	Reference string `json:"reference"`
	// Amount (fiat minor units) and AmountMsat are what the rail collected,
	// when it says.
	Amount     int64  `json:"amount,omitempty"`
	Currency   string `json:"currency,omitempty"`
	AmountMsat int64  `json:"amount_msat,omitempty"`
}

// CloseInvoiceRequest voids an invoice ("void") or writes it off ("uncollectible").
type CloseInvoiceRequest struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Validate checks a close request.
func (c CloseInvoiceRequest) Validate() error {
	if c.Status != "void" && c.Status != "uncollectible" {
		return &models.ValidationError{Field: "status", Reason: fmt.Sprintf("an invoice is closed as void or uncollectible, not %q", c.Status)}
	}
	if len(c.Reason) > 500 {
		return &models.ValidationError{Field: "reason", Reason: "is longer than 500 characters"}
	}
	return nil
}

// CardFailed is the card-failed signal's payload.
type CardFailed struct {
	PaymentIntentID string `json:"payment_intent_id"`
	Reason          string `json:"reason,omitempty"`
}

// InvoicePaymentResult is an invoice's state as its workflow reports it:
// the mark-paid and close-invoice updates' result and the workflow's result.
type InvoicePaymentResult struct {
	InvoiceID   string     `json:"invoice_id"`
	Status      string     `json:"status"`
	Rail        string     `json:"rail,omitempty"`
	Reference   string     `json:"reference,omitempty"`
	PaidAt      *time.Time `json:"paid_at,omitempty"`
	AlreadyPaid bool       `json:"already_paid"`
	// Outcome of this report: applied, duplicate or overpayment (mark-paid).
	Outcome string `json:"outcome,omitempty"`
	// NeedsAction is the step waiting for a retry, if any (query only).
	NeedsAction *NeedsAction `json:"needs_action,omitempty"`
}

// LightningInvoice is a payable BOLT11 for an invoice, for the payment page.
type LightningInvoice struct {
	PaymentRequest string    `json:"payment_request"`
	PaymentHash    string    `json:"payment_hash"`
	AmountMsat     int64     `json:"amount_msat"`
	ExpiresAt      time.Time `json:"expires_at"`
	// Settled is true when the node reports it paid: the page should say so
	// rather than show it.
	Settled bool `json:"settled"`
}
