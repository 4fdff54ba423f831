//go:build integration

package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// Wallet as the first rail: a tenant whose wallet holds 25.00 USD gets its
// 20.00 USD subscription invoice paid from the wallet, in one transaction
// (promise and settle entries, the payment with rail wallet, the
// entitlement, invoice.paid), and neither its NWC wallet nor its card is
// charged although both are connected.
func TestCascadeWalletPays(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit-" + string(u.id)[:8], Amount: 2500, Currency: "usd"})
	require.NoError(t, err)

	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, store.RailWallet, res.Rail)
	require.Equal(t, "invoice/"+inv, res.Reference)

	require.Empty(t, r.wallet.Payments(), "no NWC payment when the wallet paid")
	require.Zero(t, r.stripe.ChargeCount(inv), "no card charge when the wallet paid")
	bolts, err := s.store.Bolt11s(ctx, inv)
	require.NoError(t, err)
	require.Empty(t, bolts, "no BOLT11 issued")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1 AND rail='wallet' AND money_ref=$2 AND applied_amount=2000`, inv, "wallet:"+inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM entitlements WHERE invoice_id=$1`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE subject_id=$1 AND type='invoice.paid'`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='promise' AND source_key=$2 AND amount=2000`, u.id, "invoice/"+inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='settle' AND source_key=$2 AND amount=2000`, u.id, "invoice/"+inv))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	require.Equal(t, int64(500), w.Spendable)
	require.Empty(t, w.Violation)
	attempts, err := s.store.Attempts(ctx, inv)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, "wallet:paid", attempts[0].Rail+":"+attempts[0].Outcome)
	require.Empty(t, r.dms(t, u), "no DM when the wallet paid")
	s.checkLedger(u.id)

	_, events := s.historyText(workflows.InvoiceWorkflowID(inv))
	t.Logf("wallet-paid invoice: workflow history has %d events", events)
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.InvoiceWorkflowID(inv), "", "invoice_payment_wallet_v3.json")
	}
}

// A wallet that does not cover the invoice (5.00 of 20.00 USD) writes
// nothing and the cascade goes on to NWC, which pays as before.
func TestCascadeWalletNotCoveredNWCPays(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit-" + string(u.id)[:8], Amount: 500, Currency: "usd"})
	require.NoError(t, err)

	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, store.RailNWC, res.Rail)
	require.Len(t, r.wallet.Payments(), 1)
	require.Zero(t, r.stripe.ChargeCount(inv))
	require.Equal(t, 0, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind <> 'deposit'`, u.id), "the wallet paid nothing")
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	require.Equal(t, int64(500), w.Spendable)
	attempts, err := s.store.Attempts(ctx, inv)
	require.NoError(t, err)
	require.Len(t, attempts, 2)
	require.Equal(t, []string{"wallet:not_covered", "nwc:paid"}, []string{attempts[0].Rail + ":" + attempts[0].Outcome, attempts[1].Rail + ":" + attempts[1].Outcome})
	require.Contains(t, attempts[0].Detail, "does not cover")

	_, events := s.historyText(workflows.InvoiceWorkflowID(inv))
	t.Logf("wallet not covered, NWC paid: workflow history has %d events", events)
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.InvoiceWorkflowID(inv), "", "invoice_payment_wallet_nwc_v3.json")
	}
}
