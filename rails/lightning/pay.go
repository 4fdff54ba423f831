package lightning

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Payer pays BOLT11 invoices from the engine's node (withdrawal payouts).
// It is kept apart from Node so that only the code paying out holds it:
// it needs lnd's offchain permissions, which Node's invoice macaroon lacks.
type Payer interface {
	// PayInvoice pays req.BOLT11 (which the caller has validated) with at
	// most req.MaxFeeMsat routing fee, waiting until the payment succeeds
	// or fails or ctx ends. If the node already has a payment for this
	// payment hash (in flight, succeeded or failed), it does not pay again:
	// it returns that payment's current state, following an in-flight one
	// to its end like a new one. When ctx ends while the node is still
	// trying, it returns the payment with StatusInFlight and no error: the
	// node keeps trying, and LookupPayment tells the outcome later. When
	// ctx ends before the node answered at all, the error is an *RPCError
	// wrapping ctx's error: the payment may or may not have started, and
	// calling PayInvoice again is safe.
	//
	// Errors: ErrPayoutsNotConfigured; ErrInvalidRequest for a malformed
	// request; a *PaymentRefusedError (errors.Is ErrPaymentRefused) when
	// the node would not even try (invalid or expired invoice, payment to
	// itself, amount-less invoice), which no retry can change; otherwise an
	// *RPCError, retryable as it says (a retry is safe: see above); a
	// macaroon without offchain permissions is codes.PermissionDenied.
	PayInvoice(ctx context.Context, req PayRequest) (Payment, error)
	// LookupPayment returns the node's outgoing payment for a hex payment
	// hash; ErrPaymentNotFound if the node never attempted it.
	LookupPayment(ctx context.Context, paymentHash string) (Payment, error)
}

// PayRequest asks the node to pay one invoice.
type PayRequest struct {
	// BOLT11 is the invoice to pay; it must carry an amount.
	BOLT11 string
	// MaxFeeMsat is the most the node may pay in routing fees; 0 allows
	// only fee-free routes (a direct channel to the payee).
	MaxFeeMsat int64
	// Timeout is how long the node keeps trying routes before it fails
	// the payment with FAILURE_REASON_TIMEOUT (lnd's timeout_seconds,
	// rounded up to whole seconds); DefaultPayTimeout if zero. It does not
	// bound the call: ctx does.
	Timeout time.Duration
}

// PaymentStatus is where an outgoing payment stands.
type PaymentStatus string

// Payment statuses. Only StatusInFlight can still change.
const (
	// StatusInFlight: the node is trying routes, or has HTLCs out.
	StatusInFlight PaymentStatus = "in_flight"
	// StatusSucceeded: the payee released the preimage; final.
	StatusSucceeded PaymentStatus = "succeeded"
	// StatusFailed: no route worked within the timeout; final (no funds
	// left the node). FailureReason says why.
	StatusFailed PaymentStatus = "failed"
)

// Terminal reports whether the status can no longer change.
func (s PaymentStatus) Terminal() bool { return s == StatusSucceeded || s == StatusFailed }

// Payment is an outgoing payment of the engine's node. Amounts are msat.
type Payment struct {
	// PaymentHash is hex encoded: the payment's identity on the node.
	PaymentHash string        `json:"payment_hash"`
	Status      PaymentStatus `json:"status"`
	// PreimageHex is the payee's proof of payment; set only on success
	// (its SHA-256 is the payment hash, checked by the client).
	PreimageHex string `json:"preimage,omitempty"`
	// AmountMsat is what the payee receives; FeeMsat the routing fees paid
	// on top (0 unless succeeded).
	AmountMsat int64 `json:"amount_msat"`
	FeeMsat    int64 `json:"fee_msat"`
	// FailureReason is lnd's reason for a failed payment, e.g.
	// FAILURE_REASON_NO_ROUTE; empty otherwise.
	FailureReason string `json:"failure_reason,omitempty"`
}

// DefaultPayTimeout is PayRequest.Timeout when zero.
const DefaultPayTimeout = 60 * time.Second

// ErrPayoutsNotConfigured is returned by PayInvoice and LookupPayment of a
// client configured without a payout macaroon.
var ErrPayoutsNotConfigured = errors.New("lightning: payouts are not configured (no payout macaroon with offchain permissions)")

// ErrPaymentNotFound is returned by LookupPayment when the node has no
// outgoing payment for the hash.
var ErrPaymentNotFound = errors.New("lightning: payment not found")

// ErrPaymentRefused is matched (errors.Is) by every *PaymentRefusedError.
var ErrPaymentRefused = errors.New("lightning: payment refused")

// RefusalReason classifies a *PaymentRefusedError.
type RefusalReason string

// Reasons the node (or the client before it) refuses to attempt a payment.
const (
	// RefusedInvalidInvoice: not a decodable BOLT11 invoice for the node's
	// network, or otherwise unpayable as given.
	RefusedInvalidInvoice RefusalReason = "invalid_invoice"
	// RefusedExpired: the invoice's expiry has passed (by the node's clock).
	RefusedExpired RefusalReason = "expired"
	// RefusedNoAmount: the invoice lets the payer choose the amount;
	// billflow only pays invoices that state one.
	RefusedNoAmount RefusalReason = "no_amount"
	// RefusedSelfPayment: the invoice is the engine's own node's.
	RefusedSelfPayment RefusalReason = "self_payment"
	// RefusedAlreadyPaid: the node has paid this hash before but the
	// payment could not be looked up (should not happen with lnd).
	RefusedAlreadyPaid RefusalReason = "already_paid"
)

// PaymentRefusedError is a payment the node would not even attempt: no
// funds moved and retrying the same invoice cannot succeed.
type PaymentRefusedError struct {
	Reason RefusalReason
	// PaymentHash is the invoice's hex payment hash, when it decoded.
	PaymentHash string
	// Message is the node's (or decoder's) description.
	Message string
}

// Error implements error.
func (e *PaymentRefusedError) Error() string {
	if e.PaymentHash == "" {
		return fmt.Sprintf("lightning: payment refused (%s): %s", e.Reason, e.Message)
	}
	return fmt.Sprintf("lightning: payment %s refused (%s): %s", e.PaymentHash, e.Reason, e.Message)
}

// Is makes errors.Is(err, ErrPaymentRefused) true.
func (e *PaymentRefusedError) Is(target error) bool { return target == ErrPaymentRefused }
