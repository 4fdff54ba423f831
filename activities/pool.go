package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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

// PoolOperation runs one operator or application operation on the pool
// (contract.PoolOpRequest; the PoolOperation workflow's one activity). Bad
// input, an unknown payer or an unconfigured pool are non-retryable
// validation errors naming what was wrong.
func (a *Activities) PoolOperation(ctx context.Context, req contract.PoolOpRequest) (contract.PoolOpAnswer, error) {
	var out contract.PoolOpAnswer
	cfg := models.DefaultPoolConfig()
	if a.Usage.Pool != nil {
		cfg = *a.Usage.Pool
	}
	needPayer := func() error {
		if req.Payer == "" {
			return &models.ValidationError{Field: "payer", Reason: "must not be empty"}
		}
		if _, err := models.ParseTenantID(string(req.Payer)); err != nil {
			return &models.ValidationError{Field: "payer", Reason: err.Error()}
		}
		return nil
	}
	var res any
	var err error
	switch req.Op {
	case contract.PoolOpShow:
		res, err = a.Store.PoolStatus(ctx)
		out.Status = &contract.PoolStatusView{}
	case contract.PoolOpCredit:
		if strings.HasPrefix(strings.TrimSpace(req.Key), "invoice:") {
			return out, classify(&models.ValidationError{Field: "key", Reason: "keys starting invoice: are the shares of paid invoices"})
		}
		res, err = a.Store.CreditPool(ctx, req.Key, req.Amount, req.Note)
		out.Credit = &contract.PoolCreditView{}
	case contract.PoolOpGrants:
		if req.Limit < 0 || req.Limit > 1000 {
			return out, classify(&models.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is not from 1 to 1000", req.Limit)})
		}
		var gs []store.PoolGrant
		gs, err = a.Store.ListGrants(ctx, store.GrantFilter{Payer: req.Payer, Outcome: req.Outcome, Limit: req.Limit})
		res = gs
		out.Grants = []contract.PoolGrantView{}
	case contract.PoolOpDecide:
		if err = needPayer(); err == nil && req.Amount <= 0 {
			err = &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not a positive amount in minor units", req.Amount)}
		}
		if err == nil {
			res, err = a.Store.DecidePool(ctx, cfg, store.PoolRequest{Payer: req.Payer, Key: "dry-run", Estimated: req.Amount})
		}
		out.Verdict = &contract.PoolVerdictView{}
	case contract.PoolOpTier, contract.PoolOpPin, contract.PoolOpUnpin:
		err = needPayer()
		switch {
		case err != nil:
		case req.Op == contract.PoolOpPin:
			var tier models.TrustTier
			if tier, err = models.ParseTrustTier(req.Tier); err == nil {
				err = a.Store.PinTier(ctx, req.Payer, tier, req.Reason)
			}
		case req.Op == contract.PoolOpUnpin:
			err = a.Store.UnpinTier(ctx, req.Payer)
		}
		if err == nil {
			res, err = a.Store.PayerTier(ctx, cfg, req.Payer)
		}
		out.Tier = &contract.PayerTierView{}
	default:
		return out, classify(&models.ValidationError{Field: "op", Reason: fmt.Sprintf("%q is not show, credit, grants, decide, tier, pin or unpin", req.Op)})
	}
	switch {
	case errors.Is(err, store.ErrPoolNotConfigured):
		err = &models.ValidationError{Field: "pool", Reason: err.Error()}
	case errors.Is(err, store.ErrNotFound) && req.Payer != "":
		err = &models.ValidationError{Field: "payer", Reason: fmt.Sprintf("%s is not a tenant", req.Payer)}
	}
	if err != nil {
		return contract.PoolOpAnswer{}, classify(err)
	}
	// The store's rows and the contract's views share their JSON.
	b, err := json.Marshal(res)
	if err != nil {
		return out, err
	}
	var target any
	switch {
	case out.Status != nil:
		target = out.Status
	case out.Credit != nil:
		target = out.Credit
	case out.Grants != nil:
		target = &out.Grants
	case out.Verdict != nil:
		target = out.Verdict
	default:
		target = out.Tier
	}
	return out, json.Unmarshal(b, target)
}
