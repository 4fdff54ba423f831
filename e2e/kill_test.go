//go:build integration

package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
)

// The worker is SIGKILLed while Stripe is executing the card charge: the
// charge happens, its answer never reaches the worker. After a restart the
// activity is retried with the same idempotency key, and Stripe replays the
// first outcome: one charge, one settlement.
func TestWorkerKilledMidCardCharge(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	target, err := url.Parse(r.stripe.URL())
	require.NoError(t, err)
	forward := httputil.NewSingleHostReverseProxy(target)
	var once sync.Once
	killed := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		charge := req.Method == http.MethodPost && req.URL.Path == "/v1/payment_intents"
		first := false
		if charge {
			once.Do(func() { first = true })
		}
		if !first {
			forward.ServeHTTP(w, req)
			return
		}
		// Let Stripe execute the charge, then kill the worker before it can
		// read the answer, and drop the connection.
		rec := httptest.NewRecorder()
		forward.ServeHTTP(rec, req)
		s.stopWorker(syscall.SIGKILL)
		close(killed)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
	}))
	t.Cleanup(proxy.Close)
	s.env = append(s.env, "BILLFLOW_STRIPE_API_URL="+proxy.URL)
	s.startWorker()
	u := s.newTenant(r, payer{card: "pm_card_visa"})
	inv := s.bill(u, "pro")
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("the card charge never reached Stripe")
	}
	require.Equal(t, 1, r.stripe.ChargeCount(inv), "Stripe charged before the kill")
	require.Equal(t, store.InvoiceCollecting, s.invoiceStatus(inv), "nothing settled yet")
	s.startWorker()
	res := s.outcome(inv, 2*time.Minute)
	require.Equal(t, store.RailStripe, res.Rail)
	require.Equal(t, 1, r.stripe.ChargeCount(inv), "exactly one Stripe charge")
	require.Equal(t, 1, r.stripe.PaymentIntentCount(inv), "one PaymentIntent: the retry replayed the key")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv), "one settlement")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM card_payments WHERE invoice_id=$1`, inv))
	charges, err := s.store.CardPayments(ctx, inv)
	require.NoError(t, err)
	require.Equal(t, "invoice/"+inv+"/card/1", charges[0].IdempotencyKey)
}

// The tenant's wallet has paid (the engine's node settled the invoice) but
// the worker is SIGKILLed before the settlement is written. After a restart
// the retried attempt finds the payment on the node instead of paying again,
// and the settlement stream's report of the same money is a duplicate: one
// wallet payment, one settlement, no card charge.
func TestWorkerKilledBetweenNWCPaymentAndSettlement(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h", "BILLFLOW_NWC_TIMEOUT=60s"}})
	// The wallet pays at once but holds its answer back.
	r.wallet.SetReplyDelay(45 * time.Second)
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true, card: "pm_card_visa"})
	inv := s.bill(u, "pro")
	s.waitFor("the wallet's payment", 60*time.Second, func() (bool, error) { return len(r.wallet.Payments()) == 1, nil })
	s.stopWorker(syscall.SIGKILL)
	require.Zero(t, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv), "killed before the settlement write")
	r.wallet.SetReplyDelay(0)
	s.startWorker()
	res := s.outcome(inv, 2*time.Minute)
	require.Equal(t, store.InvoicePaid, res.Status)
	require.Contains(t, []string{store.RailNWC, store.RailLightning}, res.Rail)
	require.Len(t, r.wallet.Payments(), 1, "the wallet paid once")
	require.Zero(t, r.stripe.ChargeCount(inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv), "one settlement")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM entitlements WHERE invoice_id=$1`, inv))
	s.waitFor("the settlement stream catches up after the restart", 60*time.Second, func() (bool, error) {
		idx, err := s.store.SettleCursor(ctx, "lnd")
		return idx >= 1, err
	})
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv), "still one settlement")
}
