//go:build integration

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// The happy path: the tenant's wallet pays over NWC. The BOLT11 is priced by
// the rate source (20.00 USD at 2,000,000 msat per dollar), exactly one
// payment, entitlement and event are written, no card is charged, and the
// NWC secret appears in no workflow history and no log.
func TestCascadeNWCPays(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, store.RailNWC, res.Rail)

	bolts, err := s.store.Bolt11s(ctx, inv)
	require.NoError(t, err)
	require.Len(t, bolts, 1)
	require.Equal(t, int64(2000*msatPerDollar/100), bolts[0].AmountMsat, "20.00 USD in msat")
	require.NotNil(t, bolts[0].SettledAt)
	require.Equal(t, bolts[0].PaymentHash, res.Reference)
	require.Len(t, r.wallet.Payments(), 1)
	require.Zero(t, r.stripe.ChargeCount(inv), "no card charge when NWC paid")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM entitlements WHERE invoice_id=$1`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE subject_id=$1 AND type='invoice.paid'`, inv))
	methods, err := s.store.GetPaymentMethods(ctx, u.id)
	require.NoError(t, err)
	require.Empty(t, methods.NWCLastError)
	s.waitFor("the settlement stream has caught up", 30*time.Second, func() (bool, error) {
		idx, err := s.store.SettleCursor(ctx, "lnd")
		return idx >= 1, err
	})

	// No secret in any history or log.
	conn, err := r.vault.NWC(ctx, u.id)
	require.NoError(t, err)
	secretURL := conn.SecretURL()
	i := strings.Index(secretURL, "secret=")
	require.Positive(t, i)
	nwcSecret := secretURL[i+len("secret=") : i+len("secret=")+64]
	ids := []string{workflows.InvoiceWorkflowID(inv), workflows.TenantWorkflowID(u.id),
		workflows.SettlementsWorkflowID(s.taskQueue), workflows.OutboxWorkflowID(s.taskQueue)}
	total := 0
	for _, id := range ids {
		text, n := s.historyText(id)
		require.Positive(t, n, id)
		total += n
		for _, secret := range []string{nwcSecret, stripeAPIKey, r.robotSK, r.node.MacaroonHex()} {
			require.NotContains(t, text, secret, "a secret in the history of %s", id)
		}
	}
	_, invoiceEvents := s.historyText(workflows.InvoiceWorkflowID(inv))
	t.Logf("NWC happy path: invoice workflow history has %d events (%d events across %d workflows scanned)", invoiceEvents, total, len(ids))
	s.stopWorker(15) // SIGTERM: flush logs
	for _, secret := range []string{nwcSecret, stripeAPIKey, r.robotSK} {
		require.NotContains(t, s.logs.String(), secret, "a secret in the worker's logs")
	}
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.InvoiceWorkflowID(inv), "", "invoice_payment_nwc_v2.json")
		// The stream runs for ever: its history so far (a partial one) replays too.
		recordHistory(t, s.temporal, workflows.SettlementsWorkflowID(s.taskQueue), "", "lightning_settlements_v2.json")
	}
}

// NWC fails (insufficient balance): the error is kept on the tenant and the
// saved card pays, once.
func TestCascadeNWCFailsCardPays(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	r.wallet.SetForceInsufficientBalance(true)
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, store.RailStripe, res.Rail)
	require.Equal(t, 1, r.stripe.ChargeCount(inv))
	methods, err := s.store.GetPaymentMethods(ctx, u.id)
	require.NoError(t, err)
	require.Contains(t, methods.NWCLastError, "INSUFFICIENT_BALANCE")
	attempts, err := s.store.Attempts(ctx, inv)
	require.NoError(t, err)
	require.Len(t, attempts, 2)
	require.Equal(t, []string{"nwc:failed", "card:paid"}, []string{attempts[0].Rail + ":" + attempts[0].Outcome, attempts[1].Rail + ":" + attempts[1].Outcome})
	require.Empty(t, r.dms(t, u), "no DM when the card paid")
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, workflows.InvoiceWorkflowID(inv), "", "invoice_payment_card_v2.json")
	}
}

// Both automatic rails fail: the DM carries the payment link and the last
// error's summary, and the tenant enters its grace window.
func TestCascadeBothFailDMCarriesSummary(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	r.wallet.SetForceInsufficientBalance(true)
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa_chargeDeclinedInsufficientFunds"})
	inv := s.bill(u, "pro")
	msg := s.waitDM(r, u, appURL+"/account?invoice="+inv)
	require.Contains(t, msg, "Auto-payment failed: card declined (insufficient_funds)")
	require.Contains(t, msg, "20.00 USD")
	s.waitFor("grace window opened", 30*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, u.id)
		return g.Status == store.TenantGrace, err
	})
	require.Equal(t, store.InvoiceAwaitingPayment, s.invoiceStatus(inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payment_attempts WHERE invoice_id=$1 AND rail='dm' AND outcome='sent'`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='tenant.grace_started'`, u.id))
}

// The wallet pays but its answer never arrives in time: the node is asked
// before anything else and the invoice is paid "oob"; the card is not charged.
func TestCascadeNWCTimeoutPaidOutOfBand(t *testing.T) {
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_NWC_TIMEOUT=3s"}})
	r.wallet.SetReplyDelay(8 * time.Second)
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, store.RailOOB, res.Rail)
	require.Zero(t, r.stripe.ChargeCount(inv))
	require.Len(t, r.wallet.Payments(), 1)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv))
}

// A card that needs the cardholder: the invoice is flagged with an
// invoice.needs_action event, and the tenant gets the DM with the link.
func TestCascadeCardNeedsAuthentication(t *testing.T) {
	s := newStack(t)
	r := s.startRails(railsOpts{})
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_card_authenticationRequired"})
	inv := s.bill(u, "pro")
	msg := s.waitDM(r, u, "invoice="+inv)
	require.Contains(t, msg, "Auto-payment failed: card requires authentication")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE subject_id=$1 AND type='invoice.needs_action'`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoices WHERE id=$1 AND needs_action_at IS NOT NULL`, inv))
	s.waitFor("the application received invoice.needs_action", 30*time.Second, func() (bool, error) {
		return len(s.webhook.received("invoice.needs_action")) == 1, nil
	})
}

// Money arriving only through the Lightning settlement stream: the tenant
// pays the invoice's BOLT11 from the payment page with an outside wallet.
func TestPaidOnlyByLightningStream(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	s.startWorker()
	u := s.newTenant(r, payer{})
	inv := s.bill(u, "pro")
	s.waitDM(r, u, "invoice="+inv)
	li, err := s.billing.LightningInvoice(ctx, inv)
	require.NoError(t, err)
	require.Equal(t, int64(40_000_000), li.AmountMsat)
	again, err := s.billing.LightningInvoice(ctx, inv)
	require.NoError(t, err)
	require.Equal(t, li.PaymentHash, again.PaymentHash, "a payable BOLT11 is reused")
	_, err = r.node.Pay(ctx, li.PaymentRequest)
	require.NoError(t, err)
	res := s.outcome(inv, 60*time.Second)
	require.Equal(t, store.RailLightning, res.Rail)
	require.Equal(t, li.PaymentHash, res.Reference)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1 AND amount_msat=40000000`, inv))
}

// Money arriving only through Stripe's webhook: a processing charge
// succeeds later and payment_intent.succeeded settles it.
func TestPaidOnlyByStripeWebhook(t *testing.T) {
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_sandbox_processing"})
	inv := s.bill(u, "pro")
	pi := s.waitCardPayment(inv)
	s.waitFor("awaiting payment", 30*time.Second, func() (bool, error) { return s.invoiceStatus(inv) == store.InvoiceAwaitingPayment, nil })
	require.Empty(t, r.dms(t, u), "no DM while the charge is processing")
	require.NoError(t, r.stripe.SettleProcessing(pi, true))
	res := s.outcome(inv, 60*time.Second)
	require.Equal(t, store.RailStripe, res.Rail)
	require.Equal(t, pi, res.Reference)
	require.Equal(t, 1, r.stripe.ChargeCount(inv))
}

// The webhook is dropped: reconciliation asks Stripe and finds the money.
func TestPaidOnlyByReconciliation(t *testing.T) {
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=2s,4s,8s", "BILLFLOW_RECONCILE_EVERY=5s"}})
	r.stripe.SetDropWebhooks(true)
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_sandbox_processing"})
	inv := s.bill(u, "pro")
	pi := s.waitCardPayment(inv)
	require.NoError(t, r.stripe.SettleProcessing(pi, true))
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, store.RailStripe, res.Rail)
	require.Empty(t, r.stripe.Deliveries(), "no webhook was delivered")
}

// Paid twice on two rails: Lightning first, then the processing card
// succeeds. The second payment is recorded as an overpayment to refund.
func TestPaidTwiceRecordsOverpayment(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_sandbox_processing"})
	inv := s.bill(u, "pro")
	pi := s.waitCardPayment(inv)
	li, err := s.billing.LightningInvoice(ctx, inv)
	require.NoError(t, err)
	_, err = r.node.Pay(ctx, li.PaymentRequest)
	require.NoError(t, err)
	res := s.outcome(inv, 60*time.Second)
	require.Equal(t, store.RailLightning, res.Rail)
	require.NoError(t, r.stripe.SettleProcessing(pi, true))
	s.waitFor("the card payment recorded as an overpayment", 30*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1 AND NOT applied AND refund_status='to_refund' AND reference=$2`, inv, pi) == 1, nil
	})
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1 AND applied`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='payment.overpaid'`, u.id))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM entitlements WHERE invoice_id=$1`, inv))
	require.Equal(t, store.InvoicePaid, s.invoiceStatus(inv))
}

// waitCardPayment waits for the invoice's first card charge and returns its PaymentIntent.
func (s *stack) waitCardPayment(inv string) string {
	s.t.Helper()
	var pi string
	s.waitFor("a card charge", 60*time.Second, func() (bool, error) {
		charges, err := s.store.CardPayments(context.Background(), inv)
		if len(charges) > 0 {
			pi = charges[0].PaymentIntentID
		}
		return pi != "", err
	})
	return pi
}
