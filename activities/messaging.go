package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/store"
	"go.temporal.io/sdk/temporal"
)

// PaymentDMInput asks for the tenant's payment-link DM.
type PaymentDMInput struct {
	InvoiceID string `json:"invoice_id"`
	Attempt   int    `json:"attempt"`
	// Failure is the last automatic rail's error summary, if one failed.
	Failure  string `json:"failure,omitempty"`
	Reminder bool   `json:"reminder,omitempty"`
}

// PaymentDMResult reports the DM sent.
type PaymentDMResult struct {
	Outcome string `json:"outcome"`
	EventID string `json:"event_id,omitempty"`
	Relays  int    `json:"relays"`
	// Reason says why a DM was skipped, when it was not for want of a robot.
	Reason string `json:"reason,omitempty"`
}

// PaymentMessage is the DM text: the payment link and, when an automatic
// rail failed, "Auto-payment failed: <summary>".
func PaymentMessage(link string, inv store.Invoice, failure string, reminder bool) string {
	var b strings.Builder
	if reminder {
		b.WriteString("Reminder: ")
	}
	fmt.Fprintf(&b, "payment of %s is due for invoice %s. Open the link below to review it and pay by Lightning or card:\n\n%s",
		models.FormatAmount(inv.Due(), inv.Currency), inv.ID, link)
	if s := Summarize(failure); s != "" {
		b.WriteString("\n\nAuto-payment failed: " + s)
	}
	out := b.String()
	return strings.ToUpper(out[:1]) + out[1:]
}

// SendPaymentDM sends the tenant the payment link. A failure is returned
// for Temporal to retry; the workflow records it and never fails the
// invoice over a DM.
func (a *Activities) SendPaymentDM(ctx context.Context, in PaymentDMInput) (PaymentDMResult, error) {
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return PaymentDMResult{}, classify(err)
	}
	rin := RailAttemptInput{InvoiceID: in.InvoiceID, Attempt: in.Attempt}
	if inv.Status == store.InvoicePaid || inv.Status == store.InvoiceVoid || inv.Status == store.InvoiceUncollectible {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	if susp, err := a.suspended(ctx, inv.TenantID); err != nil {
		return PaymentDMResult{}, err
	} else if susp {
		// The suspension DM said where to pay; no reminders meanwhile.
		_, err := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeSkipped, Summary: SuspendedSummary})
		return PaymentDMResult{Outcome: OutcomeSkipped, Reason: SuspendedSummary}, err
	}
	if a.Rails.DM == nil {
		_, err := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no DM robot configured"})
		return PaymentDMResult{Outcome: OutcomeSkipped}, err
	}
	link, err := a.paymentLink(ctx, inv)
	if err != nil {
		return PaymentDMResult{}, err
	}
	sent, err := a.Rails.DM.Send(ctx, string(inv.TenantID), PaymentMessage(link, inv, in.Failure, in.Reminder))
	if err != nil {
		if errors.Is(err, dm.ErrInvalidRecipient) {
			_, rerr := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeFailed, Summary: "DM: " + err.Error()})
			if rerr != nil {
				return PaymentDMResult{}, rerr
			}
			return PaymentDMResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrValidation, nil)
		}
		return PaymentDMResult{}, fmt.Errorf("send payment DM: %w", err)
	}
	accepted := 0
	for _, r := range sent.Recipient {
		if r.Accepted {
			accepted++
		}
	}
	if _, err := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeSent, Summary: fmt.Sprintf("payment link sent (event %s, %d relays)", short(sent.EventID), accepted)}); err != nil {
		return PaymentDMResult{}, err
	}
	return PaymentDMResult{Outcome: OutcomeSent, EventID: sent.EventID, Relays: accepted}, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// SuspensionDMInput names the suspended tenant.
type SuspensionDMInput struct {
	TenantID models.TenantID `json:"tenant_id"`
}

// SuspensionMessage is the DM telling a tenant its service is suspended.
func SuspensionMessage(link string, unpaid []store.Invoice) string {
	var b strings.Builder
	b.WriteString("Your service is suspended because of unpaid invoices:\n")
	for _, inv := range unpaid {
		fmt.Fprintf(&b, "\n- %s: %s", inv.ID, models.FormatAmount(inv.Due(), inv.Currency))
	}
	fmt.Fprintf(&b, "\n\nPay them at %s to restore it.", link)
	return b.String()
}

// SendSuspensionDM tells a suspended tenant why and where to pay. Like the
// payment DM it is retried by Temporal and never changes the tenant's state.
func (a *Activities) SendSuspensionDM(ctx context.Context, in SuspensionDMInput) (PaymentDMResult, error) {
	if a.Rails.DM == nil {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	g, err := a.Store.GetGraceState(ctx, in.TenantID)
	if err != nil {
		return PaymentDMResult{}, classify(err)
	}
	if g.Status != store.TenantSuspended {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	link, err := a.accountLink(ctx, in.TenantID)
	if err != nil {
		return PaymentDMResult{}, err
	}
	sent, err := a.Rails.DM.Send(ctx, string(in.TenantID), SuspensionMessage(link, g.Unpaid))
	if err != nil {
		return PaymentDMResult{}, fmt.Errorf("send suspension DM: %w", err)
	}
	return PaymentDMResult{Outcome: OutcomeSent, EventID: sent.EventID}, nil
}
