//go:build integration

package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The auto-recharge setting is stored and read back (off for a wallet never
// written), half a setting or an amount not positive is refused, and open
// top-ups list only unpaid top_up invoices.
func TestWalletAutoRechargeAndOpenTopUps(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)

	a, err := st.WalletAutoRecharge(ctx, tenant)
	require.NoError(t, err)
	assert.False(t, a.On(), "no wallet yet: off")
	_, err = st.WalletAutoRecharge(ctx, testkit.NewTenantID(t))
	assert.Contains(t, requireValidation(t, err).Error(), "does not exist")

	threshold, amount := int64(300), int64(1500)
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold, Amount: &amount})
	require.NoError(t, err)
	var gotT, gotA *int64
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT auto_recharge_threshold, auto_recharge_amount FROM wallets WHERE tenant_id = $1`, tenant).Scan(&gotT, &gotA))
	require.NotNil(t, gotT)
	require.NotNil(t, gotA)
	assert.Equal(t, threshold, *gotT)
	assert.Equal(t, amount, *gotA)
	a, err = st.WalletAutoRecharge(ctx, tenant)
	require.NoError(t, err)
	assert.True(t, a.On())

	zero, neg := int64(0), int64(-1)
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold})
	assert.Contains(t, requireValidation(t, err).Error(), "set together")
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold, Amount: &zero})
	assert.Contains(t, requireValidation(t, err).Error(), "amount 0 is not positive")
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &neg, Amount: &amount})
	assert.Contains(t, requireValidation(t, err).Error(), "-1 is negative")
	_, err = st.SetWalletAutoRecharge(ctx, testkit.NewTenantID(t), store.AutoRecharge{})
	assert.Contains(t, requireValidation(t, err).Error(), "does not exist")

	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{})
	require.NoError(t, err)
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT auto_recharge_threshold, auto_recharge_amount FROM wallets WHERE tenant_id = $1`, tenant).Scan(&gotT, &gotA))
	assert.Nil(t, gotT)
	assert.Nil(t, gotA)

	open, err := st.OpenTopUpRefs(ctx, tenant)
	require.NoError(t, err)
	assert.Empty(t, open)
	tu1, err := st.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "tu-1", Amount: 1000})
	require.NoError(t, err)
	tu2, err := st.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "tu-2", Amount: 2000})
	require.NoError(t, err)
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: tu1.ID, Rail: "manual", Reference: "wire-1", Amount: 1000, Currency: "usd", ReceivedAt: st.Now()})
	require.NoError(t, err)
	open, err = st.OpenTopUpRefs(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, open, 1, "the paid top-up is not open")
	assert.Equal(t, tu2.ID, open[0].InvoiceID)
	assert.Equal(t, int64(2000), open[0].Total)
	assert.Equal(t, models.Currency("usd"), open[0].Currency)
}
