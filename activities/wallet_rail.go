package activities

import (
	"context"
	"fmt"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// Outcomes of the wallet rail beyond the other rails' (paid, skipped).
const (
	// OutcomeNotCovered: the wallet does not pay this invoice (too little,
	// turned off, no wallet, another currency); the cascade goes on.
	OutcomeNotCovered = "not_covered"
)

// WalletRailResult is what the wallet rail did.
type WalletRailResult struct {
	// Outcome is paid (by the wallet, or PaidElsewhere), not_covered, or
	// skipped (a suspended tenant).
	Outcome string `json:"outcome"`
	// Summary is short, secret-free text for the attempt table.
	Summary string `json:"summary,omitempty"`
	// Reference is the wallet payment's reference (the ledger key
	// invoice/<id>) when the wallet paid.
	Reference string `json:"reference,omitempty"`
	// PaidElsewhere is the payment that had paid the invoice before the
	// wallet's turn; the workflow records it like any rail's report.
	PaidElsewhere *PaymentReport `json:"paid_elsewhere,omitempty"`
	// TenantStatus is the tenant's standing as of the payment.
	TenantStatus string `json:"tenant_status,omitempty"`
	// NoWallet: the tenant has no wallet; its turn is not listed in the
	// attempt table, which stays as it was before wallets.
	NoWallet bool `json:"no_wallet,omitempty"`
}

// PayFromWallet is the cascade's first rail: when the tenant's wallet covers
// the amount due in full (and the tenant has not turned it off), the
// invoice is paid from it in one store transaction (store.PayFromWallet).
// A retry finds the first payment instead of paying twice. A suspended
// tenant is skipped like every automatic rail.
func (a *Activities) PayFromWallet(ctx context.Context, in RailAttemptInput) (WalletRailResult, error) {
	defer heartbeat(ctx)()
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return WalletRailResult{}, classify(err)
	}
	if inv.Status == store.InvoicePaid && inv.PaidRail != store.RailWallet {
		return WalletRailResult{Outcome: OutcomePaid, Summary: "already paid via " + inv.PaidRail,
			PaidElsewhere: &PaymentReport{Rail: inv.PaidRail, Reference: inv.PaidReference}}, nil
	}
	if err := closed(inv); err != nil {
		return WalletRailResult{}, err
	}
	if inv.Status != store.InvoicePaid {
		if susp, err := a.suspended(ctx, inv.TenantID); err != nil {
			return WalletRailResult{}, err
		} else if susp {
			return a.recordWallet(ctx, in, WalletRailResult{Outcome: OutcomeSkipped, Summary: SuspendedSummary})
		}
	}
	res, err := a.Store.PayFromWallet(ctx, in.InvoiceID, a.now())
	if err != nil {
		return WalletRailResult{}, classify(err)
	}
	switch res.Outcome {
	case store.WalletPaid:
		if !res.Duplicate {
			a.nudge(ctx)
			// The wallet moved: its BalanceSync syncs fast for a while.
			a.balanceEvent(ctx, res.Invoice.TenantID, contract.BalanceSettled, in.InvoiceID)
		}
		return a.recordWallet(ctx, in, WalletRailResult{Outcome: OutcomePaid, Reference: res.Payment.Reference, TenantStatus: res.TenantStatus,
			Summary: fmt.Sprintf("paid %s from the wallet (%s left)", models.FormatAmount(res.Due, res.Invoice.Currency),
				models.FormatAmount(res.Spendable, res.Invoice.Currency))})
	case store.WalletAlreadyPaid:
		// Paid another way between the read above and the transaction.
		return WalletRailResult{Outcome: OutcomePaid, Summary: "already paid via " + res.Invoice.PaidRail,
			PaidElsewhere: &PaymentReport{Rail: res.Invoice.PaidRail, Reference: res.Invoice.PaidReference}}, nil
	}
	if res.Reason == store.WalletNoWallet {
		return WalletRailResult{Outcome: OutcomeNotCovered, Summary: notCoveredSummary(res), NoWallet: true}, nil
	}
	return a.recordWallet(ctx, in, WalletRailResult{Outcome: OutcomeNotCovered, Summary: notCoveredSummary(res)})
}

// recordWallet stores the wallet's turn in the attempt table.
func (a *Activities) recordWallet(ctx context.Context, in RailAttemptInput, res WalletRailResult) (WalletRailResult, error) {
	rec, err := a.record(ctx, in, store.RailWallet, RailAttemptResult{Outcome: res.Outcome, Summary: res.Summary})
	if err != nil {
		return WalletRailResult{}, err
	}
	res.Summary = rec.Summary
	return res, nil
}

// notCoveredSummary says why the wallet did not pay, for the attempt table.
func notCoveredSummary(res store.WalletPayResult) string {
	cur := res.Invoice.Currency
	switch res.Reason {
	case store.WalletNoWallet:
		return "no wallet"
	case store.WalletTurnedOff:
		return "paying invoices from the wallet is turned off"
	case store.WalletOtherCur:
		return "the wallet is in another currency than the invoice (" + string(cur) + ")"
	case store.WalletTopUpOnly:
		return "a top-up is not paid from the wallet"
	case store.WalletNothingDue:
		return "nothing due"
	case store.WalletNotEnough:
		return fmt.Sprintf("spendable %s does not cover %s due", models.FormatAmount(res.Spendable, cur), models.FormatAmount(res.Due, cur))
	}
	return "not covered: " + res.Reason
}
