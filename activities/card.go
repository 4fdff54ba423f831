package activities

import (
	"context"
	"errors"

	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/store"
)

// ChargeCard charges the tenant's saved card off-session with the
// idempotency key invoice/<id>/card/<attempt>, so however often Temporal
// retries this activity, Stripe charges once per attempt. Asked to
// (in.Settle), it records the payment it took too.
func (a *Activities) ChargeCard(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	defer heartbeat(ctx)()
	res, err := a.chargeCard(ctx, in)
	return a.settleRail(ctx, in, res, err)
}

func (a *Activities) chargeCard(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	inv, methods, done, turn, err := a.railTurn(ctx, in)
	if done || err != nil {
		return turn, err
	}
	if in.NWCSkipped != "" {
		// An upsert on (invoice, attempt, rail): a retry rewrites the same row.
		if _, err := a.record(ctx, RailAttemptInput{InvoiceID: in.InvoiceID, Attempt: in.Attempt}, "nwc",
			RailAttemptResult{Outcome: OutcomeSkipped, Summary: in.NWCSkipped}); err != nil {
			return RailAttemptResult{}, err
		}
	}
	if susp, err := a.suspended(ctx, inv.TenantID); err != nil {
		return RailAttemptResult{}, err
	} else if susp {
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: SuspendedSummary})
	}
	switch {
	case methods.StripeCustomerID == "":
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no card on file"})
	case a.Rails.Cards == nil:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "the card rail is not configured"})
	}
	pm, found, err := a.Rails.Cards.DefaultPaymentMethod(ctx, methods.StripeCustomerID)
	var apiErr *card.APIError
	if errors.As(err, &apiErr) {
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: "card: " + apiErr.Error()})
	}
	if err != nil {
		return RailAttemptResult{}, err
	}
	if !found {
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no saved card to charge"})
	}
	key := card.IdempotencyKey(inv.ID, in.Attempt)
	// What is still due: a partially paid invoice is charged its remainder.
	due := inv.Due()
	res, err := a.Rails.Cards.ChargeOffSession(ctx, card.ChargeRequest{CustomerID: methods.StripeCustomerID, PaymentMethodID: pm,
		AmountMinor: due, Currency: string(inv.Currency), InvoiceID: inv.ID, IdempotencyKey: key})
	var retry *card.RetryableError
	switch {
	case errors.As(err, &retry) && retry.Replayed:
		// Stripe cached a failure mid-charge under this key: the outcome is
		// unknown and only Stripe's webhook can tell (the PaymentIntent id
		// never reached us, so reconciliation cannot ask for it). Treated
		// as processing, so no dunning retry charges again meanwhile.
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeProcessing, Summary: "card charge outcome unknown; waiting for Stripe"})
	case errors.As(err, &retry):
		return RailAttemptResult{}, err // retried by Temporal with the same key
	case err != nil:
		// Refused for good (bad request, unknown customer, idempotency
		// conflict, an impossible PaymentIntent state): this rail failed.
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: "card: " + err.Error()})
	}
	if err := a.Store.RecordCardPayment(ctx, store.CardPayment{PaymentIntentID: res.PaymentIntentID, InvoiceID: inv.ID, IdempotencyKey: key,
		Attempt: in.Attempt, Amount: due, Currency: inv.Currency, Status: res.Status, Outcome: string(res.Outcome), DeclineCode: res.DeclineCode}); err != nil {
		return RailAttemptResult{}, err
	}
	switch res.Outcome {
	case card.OutcomeSucceeded:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomePaid, Summary: "charged the saved card",
			Payment: &PaymentReport{Rail: store.RailStripe, Reference: res.PaymentIntentID, Amount: due, Currency: string(inv.Currency)}})
	case card.OutcomeProcessing:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeProcessing, Summary: "card charge processing; waiting for Stripe"})
	case card.OutcomeAuthenticationRequired:
		summary := "card requires authentication by the cardholder"
		if err := a.Store.MarkNeedsAction(ctx, inv.ID, summary, a.now()); err != nil {
			return RailAttemptResult{}, err
		}
		a.nudge(ctx)
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeNeedsAction, Summary: summary})
	}
	summary := "card declined"
	if res.DeclineCode != "" {
		summary += " (" + res.DeclineCode + ")"
	}
	if res.Message != "" {
		summary += ": " + res.Message
	}
	return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: summary})
}
