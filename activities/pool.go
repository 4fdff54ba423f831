package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The free-tier pool in usage sessions (issue 11): the pool decides each
// receipt before the wallet pays (store.PayUsageReceiptPooled), its cover
// counts as funds, and grants are recorded once their units are used or
// released when the session ends.

// poolCover is what the pool would pay of need for the payer now (a dry
// run: nothing reserved). Any failure is no cover: the wallet decides.
func (a *Activities) poolCover(ctx context.Context, payer models.TenantID, key string, need int64) int64 {
	if a.Usage.Pool == nil || need <= 0 {
		return 0
	}
	v, err := a.Store.DecidePool(ctx, *a.Usage.Pool, store.PoolRequest{Payer: payer, Key: key, Estimated: need})
	if err != nil {
		if !errors.Is(err, store.ErrPoolNotConfigured) {
			activity.GetLogger(ctx).Warn("free-tier pool dry run failed; counting no cover", "error", err)
		}
		return 0
	}
	return v.Absorb
}

// usagePayPooled pays a receipt with the pool first: the grants of earlier
// receipts whose units are used are recorded, then the receipt is decided
// and paid (free, partial or gate) in the store.
func (a *Activities) usagePayPooled(ctx context.Context, in UsagePayInput, pay store.UsageReceiptPayment) (UsagePayResult, error) {
	if err := a.settlePoolGrants(ctx, in.PoolSettle, nil); err != nil {
		return UsagePayResult{}, err
	}
	if a.Usage.Pool == nil {
		return a.usagePayPlain(ctx, pay, &contract.UsagePoolPaid{Serve: contract.PoolGate, Charge: pay.Value})
	}
	res, part, err := a.Store.PayUsageReceiptPooled(ctx, *a.Usage.Pool, pay)
	if errors.Is(err, store.ErrPoolNotConfigured) {
		return a.usagePayPlain(ctx, pay, &contract.UsagePoolPaid{Serve: contract.PoolGate, Charge: pay.Value})
	}
	var ne *store.NotEnoughError
	if errors.As(err, &ne) {
		return UsagePayResult{NotEnough: true, Spendable: ne.Available}, nil
	}
	if err != nil {
		return UsagePayResult{}, classify(err)
	}
	if part.Charge > 0 {
		a.balanceEvent(ctx, pay.Payer, contract.BalanceSettled, pay.ReceiptID)
	}
	a.nudge(ctx) // a pool.low event may have been written
	return UsagePayResult{Paid: true, Duplicate: res.Duplicate, Spendable: res.Wallet.Spendable, Pool: &contract.UsagePoolPaid{
		Serve: string(part.Serve), Absorbed: part.Absorbed, Charge: part.Charge, Balance: part.Balance, AbsorbedToday: part.AbsorbedToday,
		Tier: string(part.Tier)}}, nil
}

// usagePayPlain pays from the wallet alone (no pool configured).
func (a *Activities) usagePayPlain(ctx context.Context, pay store.UsageReceiptPayment, part *contract.UsagePoolPaid) (UsagePayResult, error) {
	res, err := a.Store.PayUsageReceipt(ctx, pay)
	var ne *store.NotEnoughError
	if errors.As(err, &ne) {
		return UsagePayResult{NotEnough: true, Spendable: ne.Available}, nil
	}
	if err != nil {
		return UsagePayResult{}, classify(err)
	}
	a.balanceEvent(ctx, pay.Payer, contract.BalanceSettled, pay.ReceiptID)
	return UsagePayResult{Paid: true, Duplicate: res.Duplicate, Spendable: res.Wallet.Spendable, Pool: part}, nil
}

// settlePoolGrants records grants (actual of reserved; the rest goes back
// to the pool) and releases whole reservations, each once per key (the
// store refuses nothing on a retry). A key the pool never reserved for (a
// payment that failed before its decision) has nothing to release.
func (a *Activities) settlePoolGrants(ctx context.Context, settle []contract.UsagePoolSettle, release []string) error {
	for _, s := range settle {
		if s.Reserved <= 0 {
			continue
		}
		if _, err := a.Store.RecordGrant(ctx, s.Key, s.Actual); err != nil {
			return classify(fmt.Errorf("record free-tier grant %s (%d of %d): %w", s.Key, s.Actual, s.Reserved, err))
		}
	}
	for _, k := range release {
		_, err := a.Store.ReleaseReservation(ctx, k, "the usage session's payment of the receipt failed")
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return classify(fmt.Errorf("release free-tier reservation %s: %w", k, err))
		}
	}
	return nil
}
