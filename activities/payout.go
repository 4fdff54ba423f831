package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/store"
)

// Payout payment statuses, as the node reports an outgoing payment.
const (
	PayoutInFlight  = "in_flight"
	PayoutSucceeded = "succeeded"
	PayoutFailed    = "failed"
)

// PayoutPayment is the node's outgoing payment for a payout's invoice.
type PayoutPayment struct {
	// Status is PayoutInFlight, PayoutSucceeded or PayoutFailed.
	Status      string
	PreimageHex string
	FeeMsat     int64
	// FailureReason is the node's reason for a failed payment.
	FailureReason string
}

// PayoutNode is what withdrawal payouts need from the engine's Lightning
// node: paying a BOLT11 (once per payment hash: a second call answers the
// first payment's state) and looking a payment up by its hash.
type PayoutNode interface {
	Pay(ctx context.Context, bolt11 string, maxFeeMsat int64) (PayoutPayment, error)
	// Lookup answers found=false when the node never tried the hash.
	Lookup(ctx context.Context, paymentHash string) (p PayoutPayment, found bool, err error)
}

// ErrPayoutRefused is a PayoutNode's answer when the node refused to try a
// payment at all (an invalid or expired invoice, a payment to itself): the
// payout failed and nothing left the node.
var ErrPayoutRefused = errors.New("payout refused by the node")

// PayoutStarter starts (or, when running, reuses) a withdrawal's payout
// workflow for a request recorded already. Package billing implements it;
// the balance sync uses it when the Notifier also implements it.
type PayoutStarter interface {
	ResumePayout(ctx context.Context, tenant models.TenantID, key string) error
}

// payoutExpiryMargin is how long a tenant's invoice must stay payable after
// the request, so the payout has time to reach it.
const payoutExpiryMargin = time.Minute

// PayoutMaxFeeMsat is the routing fee the engine's node may spend on one
// payout: 1% of the amount, at least 10 sat. The engine bears it; the
// tenant receives the invoice's amount in full.
func PayoutMaxFeeMsat(amountMsat int64) int64 { return max(amountMsat/100, 10_000) }

// RequestWithdrawalInput is a withdrawal request to record; Resume loads
// one recorded already instead. At is the workflow's now.
type RequestWithdrawalInput struct {
	Request contract.WithdrawalRequest `json:"request"`
	Resume  bool                       `json:"resume,omitempty"`
	At      time.Time                  `json:"at"`
}

// RequestWithdrawal validates and records a withdrawal (store.RequestWithdrawal:
// the withdraw entry and the payout row in one transaction). A Lightning
// request's BOLT11 is checked with zpay32 first: the engine's network, an
// amount of exactly the withdrawal's value in millisatoshis at the
// engine's rate, at least a minute before its expiry, and not the engine's
// own invoice. Refusals are non-retryable typed errors naming what was
// wrong: ValidationError, NotEnough, NotFound (no such tenant).
func (a *Activities) RequestWithdrawal(ctx context.Context, in RequestWithdrawalInput) (contract.WithdrawalResult, error) {
	r := in.Request
	if in.Resume {
		w, err := a.Store.Withdrawal(ctx, r.TenantID, r.Key)
		if err != nil {
			return contract.WithdrawalResult{}, classify(err)
		}
		return a.withdrawalResult(ctx, w, true)
	}
	req := store.WithdrawalRequest{TenantID: r.TenantID, Key: r.Key, Amount: r.Amount, Currency: r.Currency, Method: store.WithdrawManual,
		Reference: r.Reference, At: in.At}
	if key := strings.TrimSpace(r.Key); key == "" || len(key) > 120 {
		return contract.WithdrawalResult{}, classify(&models.ValidationError{Field: "key", Reason: "must be 1-120 characters"})
	}
	if r.Amount <= 0 {
		return contract.WithdrawalResult{}, classify(&models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not positive", r.Amount)})
	}
	if strings.TrimSpace(r.BOLT11) != "" {
		if r.Reference != "" {
			return contract.WithdrawalResult{}, classify(&models.ValidationError{Field: "reference",
				Reason: "a Lightning withdrawal's reference is its payment's preimage; give either bolt11 or reference"})
		}
		wal, err := a.Store.WalletState(ctx, r.TenantID)
		if err != nil {
			return contract.WithdrawalResult{}, notFoundTenant(err)
		}
		if c := models.Currency(strings.ToLower(strings.TrimSpace(string(r.Currency)))); c != "" && c != wal.Currency {
			return contract.WithdrawalResult{}, classify(&models.ValidationError{Field: "currency",
				Reason: fmt.Sprintf("%s does not match the wallet's currency %s", c, wal.Currency)})
		}
		dec, err := a.checkPayoutInvoice(ctx, r, wal.Currency, in.At)
		if err != nil {
			return contract.WithdrawalResult{}, err
		}
		req.Method, req.BOLT11, req.PaymentHash, req.AmountMsat = store.WithdrawLightning, strings.TrimSpace(r.BOLT11), dec.PaymentHash, dec.AmountMsat
	}
	res, err := a.Store.RequestWithdrawal(ctx, req)
	if err != nil {
		return contract.WithdrawalResult{}, withdrawalError(err)
	}
	if !res.Duplicate {
		a.balanceEvent(ctx, r.TenantID, contract.BalanceWithdrawalRequested, res.Withdrawal.Key)
	}
	return withdrawalView(res), nil
}

// checkPayoutInvoice validates a Lightning withdrawal's BOLT11.
func (a *Activities) checkPayoutInvoice(ctx context.Context, r contract.WithdrawalRequest, cur models.Currency, at time.Time) (lightning.Decoded, error) {
	rails := a.Rails
	if rails.Payouts == nil || rails.Rates == nil || rails.Network == nil {
		return lightning.Decoded{}, classify(&models.ValidationError{Field: "bolt11",
			Reason: "Lightning payouts are not configured on this engine (BILLFLOW_LND_PAYOUT_MACAROON); ask for a manual payout instead"})
	}
	msat, err := rails.Rates.MsatFor(ctx, r.Amount, string(cur))
	if errors.Is(err, lightning.ErrUnknownCurrency) {
		return lightning.Decoded{}, classify(&models.ValidationError{Field: "currency",
			Reason: fmt.Sprintf("the engine has no Lightning rate for %s, so it cannot pay this wallet out over Lightning", cur)})
	}
	if err != nil {
		return lightning.Decoded{}, err
	}
	dec, err := lightning.ValidateBOLT11(strings.TrimSpace(r.BOLT11), lightning.Expectation{Network: rails.Network, AmountMsat: msat,
		Now: at.Add(payoutExpiryMargin)})
	var bad *lightning.InvalidInvoiceError
	if errors.As(err, &bad) {
		reason := bad.Error()
		if bad.Reason == lightning.ReasonExpired {
			reason = fmt.Sprintf("the invoice expires within %s; send one that stays payable longer", payoutExpiryMargin)
		}
		if bad.Reason == lightning.ReasonAmountMismatch {
			reason = fmt.Sprintf("%s (a withdrawal of %s pays %d msat at the engine's rate)", reason, models.FormatAmount(r.Amount, cur), msat)
		}
		return dec, classify(&models.ValidationError{Field: "bolt11", Reason: reason})
	}
	if err != nil {
		return dec, classify(&models.ValidationError{Field: "bolt11", Reason: err.Error()})
	}
	if rails.Payee != "" && strings.EqualFold(dec.Payee, rails.Payee) {
		return dec, classify(&models.ValidationError{Field: "bolt11", Reason: "the invoice is the engine's own; a payout pays the tenant's node"})
	}
	return dec, nil
}

// withdrawalError classifies a store refusal of a withdrawal.
func withdrawalError(err error) error {
	var ne *models.NotEnoughError
	if errors.As(err, &ne) {
		return temporal.NewNonRetryableApplicationError(ne.Error(), ErrNotEnough, nil, *ne)
	}
	return notFoundTenant(err)
}

// notFoundTenant makes "tenant does not exist" a NotFound, other errors classified.
func notFoundTenant(err error) error {
	var ve *models.ValidationError
	if errors.As(err, &ve) && ve.Field == "tenant" {
		return temporal.NewNonRetryableApplicationError(ve.Error(), ErrNotFound, nil)
	}
	return classify(err)
}

// ErrNotEnough is the error type of a withdrawal above withdrawable.
const ErrNotEnough = contract.ErrNotEnough

func withdrawalView(res store.WithdrawalResult) contract.WithdrawalResult {
	w := res.Withdrawal
	return contract.WithdrawalResult{Withdrawal: contract.Withdrawal{TenantID: w.TenantID, Key: w.Key, Amount: w.Amount, Currency: w.Currency,
		Method: string(w.Method), PaymentHash: w.PaymentHash, AmountMsat: w.AmountMsat, Status: string(w.Status), Reference: w.Reference,
		FeeMsat: w.FeeMsat, Failure: w.Failure, RequestedAt: w.RequestedAt, FinishedAt: w.FinishedAt},
		Spendable: res.Wallet.Spendable, Withdrawable: res.Wallet.Withdrawable, Duplicate: res.Duplicate}
}

func (a *Activities) withdrawalResult(ctx context.Context, w store.Withdrawal, dup bool) (contract.WithdrawalResult, error) {
	wal, err := a.Store.WalletState(ctx, w.TenantID)
	if err != nil {
		return contract.WithdrawalResult{}, classify(err)
	}
	return withdrawalView(store.WithdrawalResult{Withdrawal: w, Wallet: wal, Duplicate: dup}), nil
}

// PayOutInput names the withdrawal to pay out; At is the workflow's now.
type PayOutInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	Key      string          `json:"key"`
	At       time.Time       `json:"at"`
}

// PayOutResult is how the node's payment ended.
type PayOutResult struct {
	// Finished: the withdrawal's payout had ended already (Status says how).
	Finished bool   `json:"finished,omitempty"`
	Status   string `json:"status"`
	// PaidOut with the preimage and fee; otherwise Failure says why.
	PaidOut     bool   `json:"paid_out,omitempty"`
	PreimageHex string `json:"preimage_hex,omitempty"`
	FeeMsat     int64  `json:"fee_msat,omitempty"`
	Failure     string `json:"failure,omitempty"`
}

// PayOut pays a Lightning withdrawal's BOLT11 from the engine's node, once:
// the node is asked about the payment hash first, so a retry after a crash
// finds the first payment instead of paying again. A payment still in
// flight is a retryable error (the retry policy backs off until it
// settles); a failed or refused payment is a result, for FinishPayout to
// give the amount back.
func (a *Activities) PayOut(ctx context.Context, in PayOutInput) (PayOutResult, error) {
	w, err := a.Store.Withdrawal(ctx, in.TenantID, in.Key)
	if err != nil {
		return PayOutResult{}, classify(err)
	}
	if !w.Open() {
		return PayOutResult{Finished: true, Status: string(w.Status), PaidOut: w.Status == store.WithdrawalPaidOut,
			PreimageHex: w.Reference, FeeMsat: w.FeeMsat, Failure: w.Failure}, nil
	}
	if w.Method != store.WithdrawLightning {
		return PayOutResult{}, classify(&models.ValidationError{Field: "withdrawal " + w.Key, Reason: "is a manual payout: an operator pays it"})
	}
	node := a.Rails.Payouts
	if node == nil {
		// Configuration, not the tenant's fault: retried until the node is
		// configured again, never failed for good (the money may be in flight).
		return PayOutResult{}, errors.New("lightning payouts are not configured (BILLFLOW_LND_PAYOUT_MACAROON); the payout waits")
	}
	p, found, err := node.Lookup(ctx, w.PaymentHash)
	if err != nil {
		return PayOutResult{}, fmt.Errorf("look up payout %s: %w", w.Key, err)
	}
	if !found {
		if _, err := lightning.ValidateBOLT11(w.BOLT11, lightning.Expectation{Network: a.Rails.Network, AmountMsat: w.AmountMsat, Now: in.At}); err != nil {
			// Never tried, and no longer payable (it expired while the
			// payout waited): nothing left the node.
			return PayOutResult{Status: PayoutFailed, Failure: "the invoice can no longer be paid: " + err.Error()}, nil
		}
		activity.GetLogger(ctx).Info("paying out withdrawal", "tenant", w.TenantID, "withdrawal", w.Key, "payment_hash", w.PaymentHash, "amount_msat", w.AmountMsat)
		p, err = node.Pay(ctx, w.BOLT11, PayoutMaxFeeMsat(w.AmountMsat))
		if errors.Is(err, ErrPayoutRefused) {
			return PayOutResult{Status: PayoutFailed, Failure: err.Error()}, nil
		}
		if err != nil {
			return PayOutResult{}, fmt.Errorf("pay out %s: %w", w.Key, err)
		}
	}
	switch p.Status {
	case PayoutSucceeded:
		return PayOutResult{Status: PayoutSucceeded, PaidOut: true, PreimageHex: p.PreimageHex, FeeMsat: p.FeeMsat}, nil
	case PayoutFailed:
		reason := p.FailureReason
		if reason == "" {
			reason = "the payment failed"
		}
		return PayOutResult{Status: PayoutFailed, Failure: reason}, nil
	}
	return PayOutResult{}, fmt.Errorf("payout %s (payment %s) is still in flight", w.Key, w.PaymentHash)
}

// FinishPayoutInput is a payout's outcome to record.
type FinishPayoutInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	Key      string          `json:"key"`
	Result   PayOutResult    `json:"result"`
	At       time.Time       `json:"at"`
}

// FinishPayout records a payout's outcome (store.FinishWithdrawal, one
// transaction): paid out with the preimage, or failed with the amount back
// in the wallet, once. The balance sync is told either way.
func (a *Activities) FinishPayout(ctx context.Context, in FinishPayoutInput) (contract.WithdrawalResult, error) {
	res, err := a.Store.FinishWithdrawal(ctx, store.PayoutOutcome{TenantID: in.TenantID, Key: in.Key, PaidOut: in.Result.PaidOut,
		Reference: in.Result.PreimageHex, FeeMsat: in.Result.FeeMsat, Failure: in.Result.Failure, At: in.At})
	if err != nil {
		return contract.WithdrawalResult{}, classify(err)
	}
	if !res.Duplicate {
		a.balanceEvent(ctx, in.TenantID, contract.BalanceWithdrawalFinished, in.Key)
	}
	return withdrawalView(res), nil
}

// resumePayouts restarts the payout workflow of every open Lightning
// withdrawal requested more than a minute before at: a request recorded by
// a caller that crashed before the workflow started, or a workflow that
// was terminated. A running workflow is reused, and a new run asks the
// node about the payment before paying, so this never pays twice.
func (a *Activities) resumePayouts(ctx context.Context, tenant models.TenantID, open []store.Withdrawal, at time.Time) {
	ps, ok := a.Notify.(PayoutStarter)
	if !ok {
		return
	}
	for _, w := range open {
		if w.Method != store.WithdrawLightning || at.Sub(w.RequestedAt) < time.Minute {
			continue
		}
		if err := ps.ResumePayout(ctx, tenant, w.Key); err != nil {
			activity.GetLogger(ctx).Warn("payout not resumed; the next lifetime sync tries again", "tenant", tenant, "withdrawal", w.Key, "error", err)
		}
	}
}
