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
	"github.com/billflow/billflow/store"
)

// BalanceNotifier wakes a tenant's BalanceSync workflow (signal-with-start
// of balance/<tenant>) after money moved, so it syncs at the fast interval
// for a while. Package billing implements it; Settle uses it when the
// Notifier given to Activities also implements it.
type BalanceNotifier interface {
	ReportBalanceEvent(ctx context.Context, tenant models.TenantID, ev contract.BalanceEvent) error
}

// balanceEvent tells the tenant's balance sync that money moved. Best
// effort, like nudge: the lifetime sync repairs a lost event, so a failure
// is logged and never fails the caller.
func (a *Activities) balanceEvent(ctx context.Context, tenant models.TenantID, kind, ref string) {
	bn, ok := a.Notify.(BalanceNotifier)
	if !ok || bn == nil {
		return
	}
	if err := bn.ReportBalanceEvent(ctx, tenant, contract.BalanceEvent{Kind: kind, Reference: ref}); err != nil {
		activity.GetLogger(ctx).Warn("balance sync not told; its lifetime sync catches up", "tenant", tenant, "event", kind, "error", err)
	}
}

// balanceAfterSettle reports a settlement that moved a wallet: a paid
// top-up (a deposit was written) or a payment taken from the wallet.
func (a *Activities) balanceAfterSettle(ctx context.Context, inv store.Invoice, rail string) {
	if _, ok := a.Notify.(BalanceNotifier); !ok {
		return
	}
	if rail == "wallet" { // the wallet rail: a settle entry was written
		a.balanceEvent(ctx, inv.TenantID, contract.BalanceSettled, inv.ID)
		return
	}
	if inv.Status != store.InvoicePaid {
		return
	}
	kind, err := a.Store.InvoiceKind(ctx, inv.ID)
	if err != nil {
		activity.GetLogger(ctx).Warn("invoice kind unknown; balance sync not told", "invoice", inv.ID, "error", err)
		return
	}
	if kind == store.InvoiceKindTopUp {
		a.balanceEvent(ctx, inv.TenantID, contract.BalanceTopUpPaid, inv.ID)
		a.usageFundsArrived(ctx, inv.TenantID, inv.ID)
	}
}

// SyncWalletInput names the wallet to sync; At is the workflow's now.
type SyncWalletInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	At       time.Time       `json:"at"`
}

// SyncWalletResult is the wallet as the ledger of record has it.
type SyncWalletResult struct {
	View contract.BalanceView `json:"view"`
	// Before and After are the published spendable around this sync;
	// Changed and LowCrossed say which events were written.
	Before     int64 `json:"before"`
	After      int64 `json:"after"`
	Changed    bool  `json:"changed,omitempty"`
	LowCrossed bool  `json:"low_crossed,omitempty"`
	// NextGrantExpiry is the earliest expiry of a grant not expired yet.
	NextGrantExpiry *time.Time `json:"next_grant_expiry,omitempty"`
	// AutoRecharge is the wallet's auto-recharge setting (nil when off).
	AutoRecharge *AutoRechargeState `json:"auto_recharge,omitempty"`
}

// SyncWallet recomputes the wallet from the ledger of record, publishes
// wallet.balance_changed / wallet.low_balance when due (decided in
// Postgres, store.PublishBalance), and lists the open top-ups and payouts
// and the next grant expiry. A Lightning payout left unfinished for a
// minute gets its workflow started again (resumePayouts).
func (a *Activities) SyncWallet(ctx context.Context, in SyncWalletInput) (SyncWalletResult, error) {
	var out SyncWalletResult
	// The open auto top-up is read before the wallet: read after it, a
	// top-up paid in between looked closed while spendable was still the
	// old one, and the sync asked for a second top-up (the store skipped it,
	// but the workflow ran the step twice; seen in TestAutoRechargeOverNWCFiresOnce).
	openAuto, err := a.Store.OpenAutoTopUp(ctx, in.TenantID)
	if err != nil {
		return out, err
	}
	pub, err := a.Store.PublishBalance(ctx, in.TenantID, in.At)
	var ve *models.ValidationError
	if errors.As(err, &ve) && ve.Field == "tenant" {
		// No such tenant: NotFound, so the sync started for it can end.
		return out, temporal.NewNonRetryableApplicationError(ve.Error(), ErrNotFound, nil)
	}
	if err != nil {
		return out, classify(err)
	}
	if pub.Changed || pub.LowCrossed {
		a.nudge(ctx)
	}
	w := pub.Wallet
	out.Before, out.After, out.Changed, out.LowCrossed = pub.Before, pub.After, pub.Changed, pub.LowCrossed
	out.View = contract.BalanceView{TenantID: in.TenantID, Currency: w.Currency, Funds: w.Funds, Promised: w.Totals.Promised,
		Settled: w.Totals.Settled, Unsettled: w.Unsettled, Spendable: w.Spendable, Withdrawable: w.Withdrawable, Violation: w.Violation,
		SyncedAt: in.At}
	open, err := a.Store.OpenTopUps(ctx, in.TenantID)
	if err != nil {
		return out, err
	}
	for _, inv := range open {
		out.View.OpenTopUps = append(out.View.OpenTopUps, contract.OpenTopUp{InvoiceID: inv.ID, Amount: inv.Total, Currency: inv.Currency,
			Status: inv.Status, CreatedAt: inv.CreatedAt})
	}
	payouts, err := a.Store.OpenWithdrawals(ctx, in.TenantID)
	if err != nil {
		return out, err
	}
	for _, w := range payouts {
		out.View.OpenPayouts = append(out.View.OpenPayouts, withdrawalView(store.WithdrawalResult{Withdrawal: w}).Withdrawal)
	}
	a.resumePayouts(ctx, in.TenantID, payouts, in.At)
	if out.NextGrantExpiry, err = a.Store.NextGrantExpiry(ctx, in.TenantID); err != nil {
		return out, err
	}
	ar, err := a.Store.WalletAutoRecharge(ctx, in.TenantID)
	if err != nil {
		return out, classify(err)
	}
	if ar.On() {
		out.AutoRecharge = &AutoRechargeState{Threshold: *ar.Threshold, Amount: *ar.Amount}
		if openAuto != nil {
			out.AutoRecharge.OpenInvoiceID = openAuto.ID
		}
	}
	return out, nil
}

// ReconcileTopUpsInput names open top-up invoices to check against their rails.
type ReconcileTopUpsInput struct {
	TenantID   models.TenantID `json:"tenant_id"`
	InvoiceIDs []string        `json:"invoice_ids"`
	At         time.Time       `json:"at"`
}

// ReconcileTopUpsResult reports what the rails knew and the store did not.
type ReconcileTopUpsResult struct {
	Checked int `json:"checked"`
	// Found are payments found on a rail; each was handed to its invoice's
	// workflow, or settled here when that workflow had finished.
	Found []TopUpFound `json:"found,omitempty"`
}

// TopUpFound is a top-up payment found by asking its rail.
type TopUpFound struct {
	InvoiceID string        `json:"invoice_id"`
	Payment   PaymentReport `json:"payment"`
	// Settled: settled here (its workflow had finished); otherwise reported
	// to it.
	Settled bool `json:"settled,omitempty"`
}

// ReconcileTopUps asks the rails about each open top-up invoice (the same
// questions as Reconcile: the node's BOLT11s, Stripe's PaymentIntents), so
// a dropped webhook or stream event is repaired by the balance sync. A
// found payment goes to the invoice's workflow, which settles it (and the
// settlement deposits); when that workflow has finished it is settled here.
// A rail that cannot be asked is a retryable error: the activity's retry
// policy backs off, there is no sleep loop.
func (a *Activities) ReconcileTopUps(ctx context.Context, in ReconcileTopUpsInput) (ReconcileTopUpsResult, error) {
	var out ReconcileTopUpsResult
	var unreachable []string
	for _, id := range in.InvoiceIDs {
		res, err := a.Reconcile(ctx, InvoiceInput{InvoiceID: id})
		if err != nil {
			return out, err
		}
		out.Checked += res.Checked
		unreachable = append(unreachable, res.Unreachable...)
		for _, p := range res.Found {
			f := TopUpFound{InvoiceID: id, Payment: p}
			var rerr error = ErrWorkflowGone
			if a.Notify != nil {
				rerr = a.Notify.ReportPayment(ctx, id, p)
			}
			if errors.Is(rerr, ErrWorkflowGone) {
				if _, err := a.Settle(ctx, SettleInput{InvoiceID: id, Payment: p, PaidAt: in.At}); err != nil {
					return out, err
				}
				f.Settled = true
			} else if rerr != nil {
				return out, fmt.Errorf("report top-up payment of %s: %w", id, rerr)
			}
			out.Found = append(out.Found, f)
		}
	}
	if len(unreachable) > 0 {
		return out, fmt.Errorf("top-up reconciliation: rail unreachable: %s", strings.Join(unreachable, ", "))
	}
	return out, nil
}

// ExpireGrantsInput asks to expire the tenant's grants due at At.
type ExpireGrantsInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	At       time.Time       `json:"at"`
}

// ExpiredGrant is one grant's expiry: the unused remainder it removed.
type ExpiredGrant struct {
	Key    string `json:"key"`
	Amount int64  `json:"amount"`
	// Duplicate: it had expired already (a retry), nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ExpireGrantsResult lists the expiries written.
type ExpireGrantsResult struct {
	Expired []ExpiredGrant `json:"expired,omitempty"`
}

// ExpireGrants writes the expire entry of every grant of the tenant due at
// At; store.ExpireGrant is idempotent by grant key, so a retry or a second
// timer removes nothing twice.
func (a *Activities) ExpireGrants(ctx context.Context, in ExpireGrantsInput) (ExpireGrantsResult, error) {
	var out ExpireGrantsResult
	keys, err := a.Store.TenantDueGrants(ctx, in.TenantID, in.At)
	if err != nil {
		return out, err
	}
	for _, k := range keys {
		res, err := a.Store.ExpireGrant(ctx, in.TenantID, k, in.At)
		if err != nil {
			return out, classify(err)
		}
		out.Expired = append(out.Expired, ExpiredGrant{Key: k, Amount: res.Entry.Amount, Duplicate: res.Duplicate})
	}
	return out, nil
}
