//go:build integration

package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

// Auto-recharge starts one top-up of the configured amount when spendable
// is below the threshold: concurrent starts make one open auto top-up, a
// second open one is impossible in the database, and after it is paid (and
// spendable is back above the threshold) nothing starts; below it again, a
// new one does.
func TestStartAutoRechargeOnceWhileOpen(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)

	res, err := st.StartAutoRecharge(ctx, tenant)
	require.NoError(t, err)
	assert.Nil(t, res.Invoice)
	assert.Equal(t, "auto-recharge is off", res.Skipped)

	threshold, amount := int64(500), int64(2000)
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold, Amount: &amount})
	require.NoError(t, err)

	const n = 8
	results := make([]store.AutoRechargeStart, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = st.StartAutoRecharge(ctx, tenant)
		}()
	}
	wg.Wait()
	created := 0
	var id string
	for i := range n {
		require.NoError(t, errs[i])
		require.NotNil(t, results[i].Invoice, "call %d", i)
		if id == "" {
			id = results[i].Invoice.ID
		}
		assert.Equal(t, id, results[i].Invoice.ID, "every call answers the one open auto top-up")
		assert.Equal(t, amount, results[i].Invoice.Total)
		if results[i].Created {
			created++
		}
	}
	assert.Equal(t, 1, created, "one auto top-up made")
	open, err := st.OpenTopUps(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, open, 1)
	kind, err := st.InvoiceKind(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceKindTopUp, kind)

	// The database refuses a second open auto top-up whatever the caller.
	manual, err := st.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "manual", Amount: 100})
	require.NoError(t, err)
	_, err = st.Pool().Exec(ctx, `UPDATE invoices SET auto_recharge = true WHERE id = $1`, manual.ID)
	requirePgCode(t, err, "23505")

	// Paid: spendable 2000 is above the threshold, nothing starts.
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: id, Rail: "manual", Reference: "wire-auto-1", Amount: amount, Currency: "usd", ReceivedAt: st.Now()})
	require.NoError(t, err)
	res, err = st.StartAutoRecharge(ctx, tenant)
	require.NoError(t, err)
	assert.Nil(t, res.Invoice)
	assert.Equal(t, "spendable is not below the threshold", res.Skipped)

	// Spent below the threshold again: a new auto top-up starts.
	_, err = st.Withdraw(ctx, store.WalletWrite{TenantID: tenant, Key: "w-1", Amount: 1600})
	require.NoError(t, err)
	res, err = st.StartAutoRecharge(ctx, tenant)
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	assert.True(t, res.Created)
	assert.NotEqual(t, id, res.Invoice.ID)
	got, err := st.OpenAutoTopUp(ctx, tenant)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, res.Invoice.ID, got.ID)
}
