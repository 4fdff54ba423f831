//go:build integration

package billing_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

// The wallet through package billing only (Temporal, no Postgres): grant,
// ledger, auto-recharge, top-up and a manual withdrawal, each run by the
// worker as an update of balance/<tenant>; refusals come back typed and
// naming the field.
func TestWalletThroughBillingPackage(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	tenant := testkit.NewTenantID(t)
	_, err := e.bc.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Period: time.Hour})
	require.NoError(t, err)

	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	g, err := e.bc.Grant(ctx, string(tenant), billing.GrantRequest{Key: "promo-1", Amount: 700, ExpiresAt: &exp})
	require.NoError(t, err)
	assert.Equal(t, int64(700), g.Spendable)
	assert.Equal(t, int64(0), g.Withdrawable, "grants are not withdrawable")
	again, err := e.bc.Grant(ctx, string(tenant), billing.GrantRequest{Key: "promo-1", Amount: 700, ExpiresAt: &exp})
	require.NoError(t, err)
	assert.True(t, again.Duplicate)

	var ve *billing.ValidationError
	_, err = e.bc.Grant(ctx, string(tenant), billing.GrantRequest{Key: "promo-2", Amount: 0})
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Error(), "not positive")
	past := time.Now().Add(-time.Hour)
	_, err = e.bc.Grant(ctx, string(tenant), billing.GrantRequest{Key: "promo-3", Amount: 10, ExpiresAt: &past})
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Error(), "in the past")
	_, err = e.bc.Grant(ctx, string(tenant), billing.GrantRequest{Key: "promo-4", Amount: 10, Currency: "eur"})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "currency", ve.Field)
	_, err = e.bc.Grant(ctx, string(testkit.NewTenantID(t)), billing.GrantRequest{Key: "k", Amount: 10})
	require.True(t, errors.Is(err, billing.ErrTenantNotFound), "%v", err)

	page, err := e.bc.Ledger(ctx, string(tenant), billing.LedgerRequest{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "grant", page.Entries[0].Kind)
	assert.Equal(t, "promo-1", page.Entries[0].Key)

	th, amt := int64(300), int64(1000)
	set, err := e.bc.SetAutoRecharge(ctx, string(tenant), billing.AutoRecharge{Threshold: &th, Amount: &amt})
	require.NoError(t, err)
	require.NotNil(t, set.Threshold)
	assert.Equal(t, th, *set.Threshold)
	_, err = e.bc.SetAutoRecharge(ctx, string(tenant), billing.AutoRecharge{Threshold: &th})
	require.ErrorAs(t, err, &ve)

	top, err := e.bc.TopUp(ctx, string(tenant), billing.TopUpRequest{Key: "tu-1", Amount: 2000})
	require.NoError(t, err)
	assert.Equal(t, int64(2000), top.Amount)
	same, err := e.bc.TopUp(ctx, string(tenant), billing.TopUpRequest{Key: "tu-1", Amount: 2000})
	require.NoError(t, err)
	assert.Equal(t, top.InvoiceID, same.InvoiceID, "the same key returns the same top-up")
	kind, err := e.st.InvoiceKind(ctx, top.InvoiceID)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceKindTopUp, kind)

	// A manual withdrawal through the payout workflow: nothing to withdraw yet.
	_, err = e.bc.Withdraw(ctx, billing.WithdrawalRequest{TenantID: tenant, Key: "w-1", Amount: 100, Reference: "bank-1"})
	var ne *billing.NotEnoughError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "withdrawable", ne.Of)
	_, err = e.st.Deposit(ctx, store.WalletWrite{TenantID: tenant, Key: "bank-in-1", Amount: 500})
	require.NoError(t, err)
	w, err := e.bc.Withdraw(ctx, billing.WithdrawalRequest{TenantID: tenant, Key: "w-2", Amount: 100, Reference: "bank-2"})
	require.NoError(t, err)
	assert.Equal(t, contract.WithdrawalPaidOut, w.Withdrawal.Status)
	assert.Equal(t, contract.WithdrawManual, w.Withdrawal.Method)
	_, err = e.bc.Withdraw(ctx, billing.WithdrawalRequest{TenantID: tenant, Key: "w-3", Amount: 100, BOLT11: "lnbcrt1xyz"})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "bolt11", ve.Field, "no payout node in this worker: %v", ve)

	// The balance sync saw every write.
	v, err := e.bc.SyncBalance(ctx, string(tenant))
	require.NoError(t, err)
	assert.Equal(t, int64(700+500-100), v.Spendable)
}
