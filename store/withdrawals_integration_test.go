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

// lightningRequest is a Lightning withdrawal of amount under key.
func lightningRequest(tenant models.TenantID, key, hash string, amount int64) store.WithdrawalRequest {
	return store.WithdrawalRequest{TenantID: tenant, Key: key, Amount: amount, Method: store.WithdrawLightning,
		BOLT11: "lnbcrt-" + hash, PaymentHash: hash, AmountMsat: amount * 10_000, At: at(0)}
}

func TestWithdrawalLeavesSpendableAtRequestAndReturnsOnFailure(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "pay-1", Amount: 1000, At: at(0)})
	require.NoError(t, err)

	req, err := st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-1", "aa01", 600))
	require.NoError(t, err)
	assert.False(t, req.Duplicate)
	assert.Equal(t, store.WithdrawalRequested, req.Withdrawal.Status)
	assert.Equal(t, models.EntryWithdraw, req.Entry.Kind)
	assert.Equal(t, int64(400), req.Wallet.Spendable, "the withdrawal leaves spendable at request time")
	open, err := st.OpenWithdrawals(bg(), tenant)
	require.NoError(t, err)
	require.Len(t, open, 1)

	// A second request for more than what is left is refused whole.
	_, err = st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-2", "aa02", 401))
	var ne *store.NotEnoughError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "withdrawable", ne.Of)
	assert.Equal(t, int64(400), ne.Available)
	_, err = st.Withdrawal(bg(), tenant, "w-2")
	require.ErrorIs(t, err, store.ErrNotFound, "a refused request leaves no row")

	// The payout fails: the amount comes back, once.
	failed, err := st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-1", Failure: "FAILURE_REASON_NO_ROUTE", At: at(60)})
	require.NoError(t, err)
	assert.Equal(t, store.WithdrawalFailed, failed.Withdrawal.Status)
	assert.Equal(t, models.EntryWithdrawReturn, failed.Entry.Kind)
	assert.Equal(t, int64(1000), failed.Wallet.Spendable)
	again, err := st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-1", Failure: "retried report", At: at(90)})
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, int64(1000), again.Wallet.Spendable, "a repeated failure returns nothing twice")
	_, err = st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-1", PaidOut: true, Reference: "preimage", At: at(90)})
	requireValidation(t, err)
	assert.Equal(t, int64(1), ledgerCount(t, st, tenant, "withdraw_return"))
	requireLedgerMatchesTotals(t, st, tenant)

	// A payout that succeeds keeps the amount out and records the preimage.
	_, err = st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-3", "aa03", 250))
	require.NoError(t, err)
	paid, err := st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-3", PaidOut: true, Reference: "preimage-3", FeeMsat: 1000, At: at(120)})
	require.NoError(t, err)
	assert.Equal(t, store.WithdrawalPaidOut, paid.Withdrawal.Status)
	assert.Equal(t, "preimage-3", paid.Withdrawal.Reference)
	assert.Equal(t, int64(750), paid.Wallet.Spendable)
	_, err = st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-3", Failure: "late failure", At: at(130)})
	requireValidation(t, err)
	assert.Equal(t, int64(750), walletRow(t, st, tenant).Deposits-walletRow(t, st, tenant).Withdrawn)
	open, err = st.OpenWithdrawals(bg(), tenant)
	require.NoError(t, err)
	assert.Empty(t, open)
	requireLedgerMatchesTotals(t, st, tenant)
}

func TestWithdrawalRequestIsIdempotentAndChecked(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "pay-1", Amount: 1000, At: at(0)})
	require.NoError(t, err)

	first, err := st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-1", "bb01", 300))
	require.NoError(t, err)
	again, err := st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-1", "bb01", 300))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Withdrawal, again.Withdrawal)
	assert.Equal(t, int64(700), again.Wallet.Spendable)

	// Another invoice under the same key, or the same invoice under another key.
	ve := requireValidation(t, func() error {
		_, err := st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-1", "bb02", 300))
		return err
	}())
	assert.Contains(t, ve.Reason, "different content")
	ve = requireValidation(t, func() error {
		_, err := st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-2", "bb01", 100))
		return err
	}())
	assert.Equal(t, "bolt11", ve.Field)
	assert.Equal(t, int64(700), walletRow(t, st, tenant).Deposits-walletRow(t, st, tenant).Withdrawn, "refusals changed nothing")

	// Requests that cannot be recorded name what is wrong.
	for name, r := range map[string]store.WithdrawalRequest{
		"lightning without invoice": {TenantID: tenant, Key: "x", Amount: 1, Method: store.WithdrawLightning},
		"manual with invoice":       {TenantID: tenant, Key: "x", Amount: 1, Method: store.WithdrawManual, BOLT11: "lnbcrt1"},
		"unknown method":            {TenantID: tenant, Key: "x", Amount: 1, Method: "cheque"},
		"zero amount":               {TenantID: tenant, Key: "x", Amount: 0, Method: store.WithdrawManual},
	} {
		_, err := st.RequestWithdrawal(bg(), r)
		requireValidation(t, err)
		_ = name
	}
	_, err = st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "nope", PaidOut: true, Reference: "r"})
	requireValidation(t, err)
	_, err = st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-1", PaidOut: true})
	requireValidation(t, err)

	// A manual withdrawal with a reference is paid out at once; without
	// one it waits for the operator.
	manual, err := st.RequestWithdrawal(bg(), store.WithdrawalRequest{TenantID: tenant, Key: "m-1", Amount: 100, Method: store.WithdrawManual, Reference: "bank-77"})
	require.NoError(t, err)
	assert.Equal(t, store.WithdrawalPaidOut, manual.Withdrawal.Status)
	assert.Equal(t, "bank-77", manual.Withdrawal.Reference)
	pending, err := st.RequestWithdrawal(bg(), store.WithdrawalRequest{TenantID: tenant, Key: "m-2", Amount: 100, Method: store.WithdrawManual})
	require.NoError(t, err)
	assert.Equal(t, store.WithdrawalRequested, pending.Withdrawal.Status)
	requireLedgerMatchesTotals(t, st, tenant)
}

// Concurrent failure reports of one payout return its amount exactly once.
func TestWithdrawalConcurrentFailuresReturnOnce(t *testing.T) {
	st := wideStore(t, 16)
	tenant := newTenant(t, st, fixed)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "pay-1", Amount: 1000, At: at(0)})
	require.NoError(t, err)
	_, err = st.RequestWithdrawal(bg(), lightningRequest(tenant, "w-1", "cc01", 500))
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.FinishWithdrawal(bg(), store.PayoutOutcome{TenantID: tenant, Key: "w-1", Failure: "no route", At: at(60)})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), ledgerCount(t, st, tenant, "withdraw_return"))
	assert.Equal(t, int64(0), walletRow(t, st, tenant).Withdrawn)
	requireLedgerMatchesTotals(t, st, tenant)
}

func ledgerCount(t *testing.T, st *store.Store, tenant models.TenantID, kind string) int64 {
	t.Helper()
	return scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = $2`, tenant, kind)
}
