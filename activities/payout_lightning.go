package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/billflow/billflow/rails/lightning"
)

// LightningPayouts is the engine's node (lightning.Payer) as a PayoutNode.
type LightningPayouts struct {
	Payer lightning.Payer
}

var _ PayoutNode = LightningPayouts{}

// Pay pays bolt11 once per payment hash (lightning.Payer.PayInvoice). A
// refusal means nothing left the node, except "already paid", which means
// money did leave and is treated as unknown: retried until the lookup
// answers, never given back.
func (l LightningPayouts) Pay(ctx context.Context, bolt11 string, maxFeeMsat int64) (PayoutPayment, error) {
	p, err := l.Payer.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11, MaxFeeMsat: maxFeeMsat})
	var refused *lightning.PaymentRefusedError
	if errors.As(err, &refused) && refused.Reason != lightning.RefusedAlreadyPaid {
		return PayoutPayment{}, fmt.Errorf("%w: %s: %s", ErrPayoutRefused, refused.Reason, refused.Message)
	}
	if errors.Is(err, lightning.ErrInvalidRequest) {
		// Checked before the node was asked: nothing left it.
		return PayoutPayment{}, fmt.Errorf("%w: %v", ErrPayoutRefused, err)
	}
	if err != nil {
		return PayoutPayment{}, err
	}
	return payoutPayment(p), nil
}

// Lookup answers the node's payment for the hash; found=false when the
// node never attempted it.
func (l LightningPayouts) Lookup(ctx context.Context, paymentHash string) (PayoutPayment, bool, error) {
	p, err := l.Payer.LookupPayment(ctx, paymentHash)
	if errors.Is(err, lightning.ErrPaymentNotFound) {
		return PayoutPayment{}, false, nil
	}
	if err != nil {
		return PayoutPayment{}, false, err
	}
	return payoutPayment(p), true, nil
}

func payoutPayment(p lightning.Payment) PayoutPayment {
	status := PayoutInFlight
	switch p.Status {
	case lightning.StatusSucceeded:
		status = PayoutSucceeded
	case lightning.StatusFailed:
		status = PayoutFailed
	}
	return PayoutPayment{Status: status, PreimageHex: p.PreimageHex, FeeMsat: p.FeeMsat, FailureReason: p.FailureReason}
}
