//go:build integration

package main

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// walletTenant makes a usd tenant in a fresh database.
func walletTenant(t *testing.T, st *store.Store) string {
	t.Helper()
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(context.Background(), tenant, "usd", 600)
	require.NoError(t, err)
	return string(tenant)
}

func showWallet(t *testing.T, url, tenant string) api.WalletView {
	t.Helper()
	r := runWithDB(t, url, "wallet", "show", "--tenant", tenant, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v api.WalletView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	return v
}

// Every wallet command answers an unknown tenant with the one not-found
// error and exit code 3.
func TestWalletUnknownTenant(t *testing.T) {
	_, url := newTestStore(t)
	nobody := string(testkit.NewTenantID(t))
	for _, args := range [][]string{
		{"show"}, {"history"}, {"grant", "--amount", "100"}, {"top-up", "--amount", "100"},
		{"withdraw", "--amount", "100", "--reference", "r"}, {"auto-recharge", "--off"}, {"pay-invoices", "--off"},
	} {
		r := runWithDB(t, url, append(append([]string{"wallet"}, args...), "--tenant", nobody)...)
		assert.Equal(t, exitNotFound, r.code, "wallet %v: %s", args, r.stdout)
		assert.Contains(t, r.stderr, "tenant "+nobody+" not found", "wallet %v", args)
	}
}

// grant credits the wallet (idempotent by --key) and show lists it with its
// expiry and remainder; a grant that is not positive, expires in the past
// or names another currency is refused with exit code 2 naming why.
func TestWalletGrantAndShow(t *testing.T) {
	st, url := newTestStore(t)
	tenant := walletTenant(t, st)
	expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)

	r := runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "1500", "--key", "promo-1", "--expires", expires.Format(time.RFC3339))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "recorded grant promo-1 of 15.00 USD")
	r = runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "1500", "--key", "promo-1", "--expires", expires.Format(time.RFC3339))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "already recorded")

	v := showWallet(t, url, tenant)
	assert.Equal(t, int64(1500), v.Spendable)
	assert.Equal(t, int64(1500), v.Funds)
	assert.Equal(t, int64(0), v.Withdrawable, "grants are not withdrawable")
	require.Len(t, v.Grants, 1)
	assert.Equal(t, "promo-1", v.Grants[0].Key)
	assert.Equal(t, int64(1500), v.Grants[0].Remaining)
	require.NotNil(t, v.Grants[0].ExpiresAt)
	assert.True(t, expires.Equal(*v.Grants[0].ExpiresAt))
	assert.Empty(t, v.Violation)
	assert.Empty(t, v.OpenTopUps)

	r = runWithDB(t, url, "wallet", "show", "--tenant", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `spendable\s+15\.00 USD`, r.stdout)
	assert.Regexp(t, `promo-1\s+15\.00 USD of 15\.00 USD left, expires `+expires.Format(time.RFC3339), r.stdout)
	assert.Regexp(t, `auto-recharge\s+off`, r.stdout)

	requireInvalid(t, runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "0"), "amount 0 is not positive")
	requireInvalid(t, runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "10", "--expires", "2020-01-01T00:00:00Z"),
		"expiry 2020-01-01T00:00:00Z is in the past")
	requireInvalid(t, runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "10", "--currency", "eur"),
		"eur does not match the wallet's currency usd")
	requireInvalid(t, runWithDB(t, url, "wallet", "grant", "--tenant", tenant, "--amount", "10", "--expires", "tomorrow"), "--expires")
}

// show prints a broken invariant as a warning, and spendable as zero.
func TestWalletShowWarnsOfViolation(t *testing.T) {
	ctx := context.Background()
	st, url := newTestStore(t)
	tenant := walletTenant(t, st)
	_, _, err := st.EnsureWallet(ctx, models.TenantID(tenant))
	require.NoError(t, err)
	// Break the totals past the CHECK (spendable >= 0) the way only a bug
	// or a hand edit could: the CHECK is dropped for the test's database.
	_, err = st.Pool().Exec(ctx, `ALTER TABLE wallets DROP CONSTRAINT wallets_spendable_not_negative`)
	require.NoError(t, err)
	_, err = st.Pool().Exec(ctx, `UPDATE wallets SET promised = 300 WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)

	r := runWithDB(t, url, "wallet", "show", "--tenant", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "warning: wallet invariant spendable >= 0 broken: -300")
	assert.Regexp(t, `spendable\s+0\.00 USD`, r.stdout)
}

// history pages the ledger newest first with --before/--limit.
func TestWalletHistoryPages(t *testing.T) {
	ctx := context.Background()
	st, url := newTestStore(t)
	tenant := walletTenant(t, st)
	for i := 1; i <= 3; i++ {
		_, err := st.Grant(ctx, store.WalletWrite{TenantID: models.TenantID(tenant), Key: "g" + strconv.Itoa(i), Amount: int64(100 * i)})
		require.NoError(t, err)
	}
	r := runWithDB(t, url, "wallet", "history", "--tenant", tenant, "--limit", "2", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var page store.LedgerPage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	require.Len(t, page.Entries, 2)
	assert.Equal(t, "g3", page.Entries[0].Key)
	assert.Equal(t, "g2", page.Entries[1].Key)
	require.NotZero(t, page.Next)

	r = runWithDB(t, url, "wallet", "history", "--tenant", tenant, "--limit", "2", "--before", strconv.FormatInt(page.Next, 10))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "g1")
	assert.NotContains(t, r.stdout, "g2")
	assert.NotContains(t, r.stdout, "more: --before")

	r = runWithDB(t, url, "wallet", "history", "--tenant", tenant, "--limit", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "more: --before "+strconv.FormatInt(page.Next, 10))

	requireInvalid(t, runWithDB(t, url, "wallet", "history", "--tenant", tenant, "--limit", "501"), "limit", "501 is not between 1 and 500")
}

// top-up creates a top_up invoice and starts its InvoicePayment workflow;
// the payment reported for it deposits into the wallet, which withdraw can
// then pay back, up to the withdrawable.
func TestWalletTopUpAndWithdraw(t *testing.T) {
	ctx := context.Background()
	st, url := startBillingWorker(t)
	tenant := walletTenant(t, st)
	t.Setenv("BILLFLOW_PUBLIC_URL", "https://billing.example/")
	t.Setenv("BILLFLOW_SECRET_KEY", pagesKey)

	r := runWithDB(t, url, "wallet", "top-up", "--tenant", tenant, "--amount", "2000", "--key", "tu-1", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var tu api.TopUpView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &tu), r.stdout)
	assert.Equal(t, int64(2000), tu.Invoice.Total)
	assert.Regexp(t, `^https://billing\.example/pay/[A-Za-z0-9_-]{43}$`, tu.PaymentURL)
	kind, err := st.InvoiceKind(ctx, tu.Invoice.ID)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceKindTopUp, kind)

	// The invoice's collection runs: its workflow was started.
	desc, err := testkit.TemporalClient(t).DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(tu.Invoice.ID), "")
	require.NoError(t, err)
	assert.Equal(t, contract.WorkflowInvoicePayment, desc.WorkflowExecutionInfo.Type.Name)

	// The same key is the same invoice, and its page link.
	r = runWithDB(t, url, "wallet", "top-up", "--tenant", tenant, "--amount", "2000", "--key", "tu-1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `invoice\s+`+tu.Invoice.ID, r.stdout)
	assert.Contains(t, r.stdout, tu.PaymentURL)
	v := showWallet(t, url, tenant)
	require.Len(t, v.OpenTopUps, 1)
	assert.Equal(t, tu.Invoice.ID, v.OpenTopUps[0].InvoiceID)

	requireInvalid(t, runWithDB(t, url, "wallet", "top-up", "--tenant", tenant, "--amount", "-5"), "amount -5 is not positive")
	requireInvalid(t, runWithDB(t, url, "wallet", "top-up", "--tenant", tenant, "--amount", "5", "--currency", "eur"), "eur does not match")

	// Paid (here by hand through the invoice's workflow), it deposits.
	r = runWithDB(t, url, "invoice", "mark-paid", "--invoice", tu.Invoice.ID, "--rail", "manual", "--reference", "wire-tu-1")
	require.Equal(t, 0, r.code, r.stderr)
	v = showWallet(t, url, tenant)
	assert.Equal(t, int64(2000), v.Totals.Deposits)
	assert.Equal(t, int64(2000), v.Withdrawable)
	assert.Empty(t, v.OpenTopUps)

	r = runWithDB(t, url, "wallet", "withdraw", "--tenant", tenant, "--amount", "2500", "--reference", "payout-1")
	requireInvalid(t, r, "withdrawal of 2500 is above the withdrawable 2000")
	r = runWithDB(t, url, "wallet", "withdraw", "--tenant", tenant, "--amount", "1200", "--reference", "payout-1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "recorded withdraw payout-1 of 12.00 USD")
	assert.Contains(t, r.stdout, "withdrawable 8.00 USD")
	requireInvalid(t, runWithDB(t, url, "wallet", "withdraw", "--tenant", tenant, "--amount", "100"), "--reference is required")
}

// auto-recharge stores the setting and --off clears it; half a setting is a
// usage error.
func TestWalletAutoRecharge(t *testing.T) {
	st, url := newTestStore(t)
	tenant := walletTenant(t, st)

	r := runWithDB(t, url, "wallet", "auto-recharge", "--tenant", tenant, "--threshold", "500", "--amount", "2000")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "top up 20.00 USD when spendable is below 5.00 USD")
	v := showWallet(t, url, tenant)
	require.True(t, v.AutoRecharge.On())
	assert.Equal(t, int64(500), *v.AutoRecharge.Threshold)
	assert.Equal(t, int64(2000), *v.AutoRecharge.Amount)

	r = runWithDB(t, url, "wallet", "auto-recharge", "--tenant", tenant, "--off", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `{"threshold": null, "amount": null}`, r.stdout)
	assert.False(t, showWallet(t, url, tenant).AutoRecharge.On())

	requireInvalid(t, runWithDB(t, url, "wallet", "auto-recharge", "--tenant", tenant, "--threshold", "500"), "--threshold and --amount, or --off")
	requireInvalid(t, runWithDB(t, url, "wallet", "auto-recharge", "--tenant", tenant, "--threshold", "500", "--amount", "0"), "amount 0 is not positive")
}

// pay-invoices --off and --on store wallets.pay_invoices_from_wallet and
// show reports it (on by default); neither or both flags is a usage error.
func TestWalletPayInvoices(t *testing.T) {
	st, url := newTestStore(t)
	tenant := walletTenant(t, st)
	assert.True(t, showWallet(t, url, tenant).PayInvoices, "on by default")

	r := runWithDB(t, url, "wallet", "pay-invoices", "--tenant", tenant, "--off")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "pay invoices from wallet: off")
	assert.False(t, showWallet(t, url, tenant).PayInvoices)
	on, err := st.WalletPaysInvoices(context.Background(), models.TenantID(tenant))
	require.NoError(t, err)
	assert.False(t, on, "stored in wallets.pay_invoices_from_wallet")
	r = runWithDB(t, url, "wallet", "show", "--tenant", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "pays invoices  off")

	r = runWithDB(t, url, "wallet", "pay-invoices", "--tenant", tenant, "--on", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `{"enabled": true}`, r.stdout)
	assert.True(t, showWallet(t, url, tenant).PayInvoices)

	requireInvalid(t, runWithDB(t, url, "wallet", "pay-invoices", "--tenant", tenant), "exactly one of --on and --off")
	requireInvalid(t, runWithDB(t, url, "wallet", "pay-invoices", "--tenant", tenant, "--on", "--off"), "exactly one of --on and --off")
}
