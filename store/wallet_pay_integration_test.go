//go:build integration

package store_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// walletState is everything PayFromWallet can write, for "nothing written" checks.
type walletState struct {
	DB      dbState
	Entries int64
	Totals  models.WalletTotals
}

func walletSnapshot(t tb, st *store.Store, tenant models.TenantID) walletState {
	t.Helper()
	return walletState{DB: snapshot(t, st), Entries: scalar(t, st, `SELECT count(*) FROM wallet_entries`), Totals: walletRow(t, st, tenant)}
}

func deposit(t tb, st *store.Store, tenant models.TenantID, key string, amount int64) {
	t.Helper()
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: key, Amount: amount, At: at(1)})
	require.NoError(t, err)
}

func TestPayFromWalletCovered(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "w1", "collecting")
	inv, _, err := st.GetInvoice(bg(), id)
	require.NoError(t, err)
	require.Positive(t, inv.Total)
	_, err = st.CreateDiscountCode(bg(), "WAL", 1)
	require.NoError(t, err)
	require.NoError(t, st.ReserveDiscount(bg(), id, "WAL", at(2)))
	// A grant that expires is consumed before the deposit.
	exp := at(86400)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "promo", Amount: 100, ExpiresAt: &exp, At: at(1)})
	require.NoError(t, err)
	deposit(t, st, tenant, "lightning:dep1", inv.Total+50)

	res, err := st.PayFromWallet(bg(), id, at(10))
	require.NoError(t, err)
	require.Equal(t, store.WalletPaid, res.Outcome)
	assert.False(t, res.Duplicate)
	assert.Equal(t, inv.Total, res.Due)
	assert.Equal(t, store.InvoicePaid, res.Invoice.Status)
	assert.Equal(t, store.RailWallet, res.Invoice.PaidRail)
	assert.Equal(t, store.RailWallet, res.Payment.Rail)
	assert.Equal(t, "invoice/"+id, res.Payment.Reference)
	assert.True(t, res.Payment.Applied)
	assert.Equal(t, inv.Total, res.Payment.AppliedAmount)
	assert.Equal(t, int64(150), res.Spendable, "100 grant + total+50 deposit - total")

	// The payment row, with its money reference.
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM payments WHERE invoice_id = $1 AND rail = 'wallet' AND money_ref = $2`, id, "wallet:"+id))
	// The ledger: a promise and its settle entry keyed by the invoice, grant first.
	assert.Equal(t, inv.Total, scalar(t, st, `SELECT amount FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise' AND source_key = $2`, tenant, "invoice/"+id))
	assert.Equal(t, inv.Total, scalar(t, st, `SELECT amount FROM wallet_entries WHERE tenant_id = $1 AND kind = 'settle' AND source_key = $2`, tenant, "invoice/"+id))
	assert.Equal(t, int64(100), res.Settle.FromGrants)
	w, err := st.WalletState(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, int64(150), w.Spendable)
	assert.Equal(t, int64(0), w.Unsettled)
	requireLedgerMatchesTotals(t, st, tenant)
	// Everything a paid invoice gets.
	_, err = st.GetEntitlement(bg(), id)
	require.NoError(t, err)
	_, status, err := st.DiscountReservation(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, "consumed", status)
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))

	// A retry returns the first outcome and writes nothing.
	before := walletSnapshot(t, st, tenant)
	again, err := st.PayFromWallet(bg(), id, at(20))
	require.NoError(t, err)
	assert.Equal(t, store.WalletPaid, again.Outcome)
	assert.True(t, again.Duplicate)
	assert.Equal(t, res.Payment.ID, again.Payment.ID)
	assert.Equal(t, res.Settle.Seq, again.Settle.Seq)
	assert.Equal(t, res.Promise.Seq, again.Promise.Seq)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))

	// The same money reported through Settle is refused: no outside report
	// can claim the wallet rail.
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailWallet, Reference: "invoice/" + id, ReceivedAt: at(30)})
	requireValidation(t, err)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))
}

func TestPayFromWalletNotCoveredWritesNothing(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "n1", "collecting")
	inv, _, err := st.GetInvoice(bg(), id)
	require.NoError(t, err)

	// No wallet at all.
	res, err := st.PayFromWallet(bg(), id, at(10))
	require.NoError(t, err)
	assert.Equal(t, store.WalletNotCovered, res.Outcome)
	assert.Equal(t, store.WalletNoWallet, res.Reason)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM wallets`), "no wallet is made by looking")

	// One minor unit short.
	deposit(t, st, tenant, "lightning:short", inv.Total-1)
	before := walletSnapshot(t, st, tenant)
	res, err = st.PayFromWallet(bg(), id, at(11))
	require.NoError(t, err)
	assert.Equal(t, store.WalletNotCovered, res.Outcome)
	assert.Equal(t, store.WalletNotEnough, res.Reason)
	assert.Equal(t, inv.Total-1, res.Spendable)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))
	got, _, err := st.GetInvoice(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, "collecting", got.Status)

	// Spendable held by an outstanding promise does not pay invoices.
	deposit(t, st, tenant, "lightning:more", 10)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "receipt-1", Amount: 11, At: at(12)})
	require.NoError(t, err)
	before = walletSnapshot(t, st, tenant)
	res, err = st.PayFromWallet(bg(), id, at(13))
	require.NoError(t, err)
	assert.Equal(t, store.WalletNotEnough, res.Reason)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))

	// A wallet in another currency never pays (forced by SQL: the store
	// makes wallets in the tenant's currency).
	_, err = st.Pool().Exec(bg(), `INSERT INTO currencies (code, minor_units) VALUES ('eur', 2) ON CONFLICT DO NOTHING`)
	require.NoError(t, err)
	deposit(t, st, tenant, "lightning:plenty", 10*inv.Total)
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET currency = 'eur' WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	before = walletSnapshot(t, st, tenant)
	res, err = st.PayFromWallet(bg(), id, at(14))
	require.NoError(t, err)
	assert.Equal(t, store.WalletOtherCur, res.Reason)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))
}

func TestPayFromWalletTurnedOff(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "o1", "collecting")
	deposit(t, st, tenant, "lightning:big", 1_000_000)
	_, err := st.Pool().Exec(bg(), `UPDATE wallets SET pay_invoices_from_wallet = false WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	before := walletSnapshot(t, st, tenant)
	res, err := st.PayFromWallet(bg(), id, at(10))
	require.NoError(t, err)
	assert.Equal(t, store.WalletNotCovered, res.Outcome)
	assert.Equal(t, store.WalletTurnedOff, res.Reason)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))

	// Turned back on, it pays.
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET pay_invoices_from_wallet = true WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	res, err = st.PayFromWallet(bg(), id, at(11))
	require.NoError(t, err)
	assert.Equal(t, store.WalletPaid, res.Outcome)
}

func TestPayFromWalletPaidElsewhereClosedTopUpAndPartial(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	deposit(t, st, tenant, "lightning:big", 1_000_000)

	// Paid by card before the wallet's turn: nothing written.
	paid := newInvoice(t, st, tenant, "e1", "collecting")
	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: paid, Rail: store.RailStripe, Reference: "pi_e1", ReceivedAt: at(5)})
	require.NoError(t, err)
	before := walletSnapshot(t, st, tenant)
	res, err := st.PayFromWallet(bg(), paid, at(10))
	require.NoError(t, err)
	assert.Equal(t, store.WalletAlreadyPaid, res.Outcome)
	assert.Equal(t, before, walletSnapshot(t, st, tenant))

	// Voided: closed.
	void := newInvoice(t, st, tenant, "e2", "collecting")
	_, err = st.CloseInvoice(bg(), void, store.InvoiceVoid, "test", at(6))
	require.NoError(t, err)
	_, err = st.PayFromWallet(bg(), void, at(10))
	require.ErrorIs(t, err, store.ErrInvoiceClosed)

	// Unknown.
	_, err = st.PayFromWallet(bg(), "no-such-invoice", at(10))
	require.ErrorIs(t, err, store.ErrNotFound)

	// A top-up is never paid from the wallet it fills.
	top, err := st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 700, At: at(7)})
	require.NoError(t, err)
	res, err = st.PayFromWallet(bg(), top.ID, at(10))
	require.NoError(t, err)
	assert.Equal(t, store.WalletTopUpOnly, res.Reason)

	// A partly paid invoice: the wallet pays what is still due.
	part := newInvoice(t, st, tenant, "e3", "collecting")
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: part, Rail: store.RailStripe, Reference: "pi_e3", Amount: 100, Currency: "usd", ReceivedAt: at(8)})
	require.NoError(t, err)
	inv, _, err := st.GetInvoice(bg(), part)
	require.NoError(t, err)
	res, err = st.PayFromWallet(bg(), part, at(10))
	require.NoError(t, err)
	require.Equal(t, store.WalletPaid, res.Outcome)
	assert.Equal(t, inv.Total-100, res.Due)
	assert.Equal(t, inv.Total-100, res.Settle.Amount)
	assert.Equal(t, store.InvoicePaid, res.Invoice.Status)
	requireLedgerMatchesTotals(t, st, tenant)
}

// TestPayFromWalletConcurrentNeverOverspends: 16 invoices paid from one
// wallet at once, which covers only some of them: exactly as many are paid
// as fit, and spendable never goes below zero.
func TestPayFromWalletConcurrentNeverOverspends(t *testing.T) {
	const n = 16
	st := wideStore(t, n+2)
	require.NoError(t, st.UpsertPlans(bg(), testkit.Plans))
	tenant := newTenant(t, st, fixed)
	ids := make([]string, n)
	var total int64
	for i := range ids {
		ids[i] = newInvoice(t, st, tenant, "c"+string(rune('a'+i)), "collecting")
		inv, _, err := st.GetInvoice(bg(), ids[i])
		require.NoError(t, err)
		if i == 0 {
			total = inv.Total
		}
		require.Equal(t, total, inv.Total, "every invoice costs the same")
	}
	const fits = 5
	deposit(t, st, tenant, "lightning:some", fits*total+total/2)

	var wg sync.WaitGroup
	outcomes := make([]store.WalletPayResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			outcomes[i], errs[i] = st.PayFromWallet(bg(), ids[i], at(10))
		}(i)
	}
	close(start)
	wg.Wait()
	paid, refused := 0, 0
	for i := range ids {
		require.NoError(t, errs[i])
		switch outcomes[i].Outcome {
		case store.WalletPaid:
			paid++
		case store.WalletNotCovered:
			assert.Equal(t, store.WalletNotEnough, outcomes[i].Reason)
			refused++
		default:
			t.Fatalf("invoice %d: outcome %q", i, outcomes[i].Outcome)
		}
	}
	t.Logf("%d concurrent wallet payments: %d paid, %d not covered", n, paid, refused)
	assert.Equal(t, fits, paid)
	assert.Equal(t, n-fits, refused)
	assert.Equal(t, int64(fits), scalar(t, st, `SELECT count(*) FROM payments WHERE rail = 'wallet'`))
	assert.Equal(t, int64(fits), scalar(t, st, `SELECT count(*) FROM invoices WHERE status = 'paid'`))
	w, err := st.WalletState(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, total/2, w.Spendable)
	assert.Empty(t, w.Violation)
	requireLedgerMatchesTotals(t, st, tenant)
}
