package activities

import (
	"context"

	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/store"
	"go.temporal.io/sdk/activity"
)

// ReconcileResult lists payments the rails know of and the store does not.
type ReconcileResult struct {
	Found []PaymentReport `json:"found"`
	// Checked counts the Lightning invoices and PaymentIntents asked about.
	Checked int `json:"checked"`
	// Unreachable names rails that could not be asked this time.
	Unreachable []string `json:"unreachable,omitempty"`
}

// Reconcile asks the engine's node about every unsettled BOLT11 issued for
// the invoice and Stripe about every PaymentIntent, so a dropped webhook or
// a missed stream event is found by asking.
func (a *Activities) Reconcile(ctx context.Context, in InvoiceInput) (ReconcileResult, error) {
	var out ReconcileResult
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return out, classify(err)
	}
	if a.Rails.Node != nil {
		bolts, err := a.Store.Bolt11s(ctx, in.InvoiceID)
		if err != nil {
			return out, err
		}
		for _, b := range bolts {
			if b.SettledAt != nil {
				continue
			}
			out.Checked++
			res, ok, err := a.settledOnNode(ctx, b, false)
			if err != nil {
				activity.GetLogger(ctx).Warn("reconcile: lightning node unreachable", "invoice", inv.ID, "error", err)
				out.Unreachable = append(out.Unreachable, "lightning")
				break
			}
			if ok {
				res.Payment.Rail = store.RailLightning
				out.Found = append(out.Found, *res.Payment)
			}
		}
	}
	if a.Rails.Cards != nil {
		charges, err := a.Store.CardPayments(ctx, in.InvoiceID)
		if err != nil {
			return out, err
		}
		for _, c := range charges {
			if c.Outcome == string(card.OutcomeDeclined) || c.Outcome == string(card.OutcomeCanceled) {
				continue
			}
			out.Checked++
			pi, err := a.Rails.Cards.RetrievePaymentIntent(ctx, c.PaymentIntentID)
			if err != nil {
				activity.GetLogger(ctx).Warn("reconcile: stripe unreachable", "invoice", inv.ID, "payment_intent", c.PaymentIntentID, "error", err)
				out.Unreachable = append(out.Unreachable, "stripe")
				break
			}
			if string(pi.Outcome) != c.Outcome {
				c.Status, c.Outcome, c.DeclineCode = pi.Status, string(pi.Outcome), pi.DeclineCode
				if err := a.Store.RecordCardPayment(ctx, c); err != nil {
					return out, err
				}
			}
			if pi.Outcome == card.OutcomeSucceeded && pi.AmountReceived > 0 {
				out.Found = append(out.Found, PaymentReport{Rail: store.RailStripe, Reference: pi.ID, Amount: pi.AmountReceived, Currency: pi.Currency})
			}
		}
	}
	return out, nil
}
