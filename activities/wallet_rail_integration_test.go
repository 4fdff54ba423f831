//go:build integration

package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// walletWorld is a 20.00 USD invoice in a real store.
func walletWorld(t *testing.T) (*Activities, store.Invoice) {
	t.Helper()
	ctx := context.Background()
	st := testkit.NewStore(t)
	id := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, id, "usd", 600)
	require.NoError(t, err)
	at := time.Now().UTC().Truncate(time.Second)
	_, err = st.RecordActivity(ctx, id, models.Activity{ID: "w-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", At: at}, false)
	require.NoError(t, err)
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "w-" + string(id), Period: models.Period{Start: at, End: at.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	return &Activities{Store: st}, *res.Invoice
}

func TestPayFromWalletActivity(t *testing.T) {
	ctx := context.Background()
	a, inv := walletWorld(t)
	in := RailAttemptInput{InvoiceID: inv.ID, Attempt: 1}

	// No wallet: not covered, and not listed.
	res, err := a.PayFromWallet(ctx, in)
	require.NoError(t, err)
	require.Equal(t, OutcomeNotCovered, res.Outcome)
	require.True(t, res.NoWallet)
	attempts, err := a.Store.Attempts(ctx, inv.ID)
	require.NoError(t, err)
	require.Empty(t, attempts)

	// Too little: not covered, listed with why.
	_, err = a.Store.Deposit(ctx, store.WalletWrite{TenantID: inv.TenantID, Key: "d1", Amount: 1500})
	require.NoError(t, err)
	res, err = a.PayFromWallet(ctx, in)
	require.NoError(t, err)
	require.Equal(t, OutcomeNotCovered, res.Outcome)
	require.Equal(t, "spendable 15.00 USD does not cover 20.00 USD due", res.Summary)
	attempts, err = a.Store.Attempts(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, "wallet", attempts[0].Rail)

	// Enough, but the tenant is suspended: skipped like every automatic rail.
	_, err = a.Store.Deposit(ctx, store.WalletWrite{TenantID: inv.TenantID, Key: "d2", Amount: 1000})
	require.NoError(t, err)
	_, err = a.Store.Pool().Exec(ctx, `UPDATE tenants SET status = 'suspended', suspended_at = now() WHERE id = $1`, inv.TenantID)
	require.NoError(t, err)
	res, err = a.PayFromWallet(ctx, RailAttemptInput{InvoiceID: inv.ID, Attempt: 2})
	require.NoError(t, err)
	require.Equal(t, OutcomeSkipped, res.Outcome)
	require.Equal(t, SuspendedSummary, res.Summary)
	w, err := a.Store.WalletState(ctx, inv.TenantID)
	require.NoError(t, err)
	require.Equal(t, int64(2500), w.Spendable, "a suspended tenant's wallet pays nothing")

	// Restored: paid from the wallet; a retry answers the same.
	_, err = a.Store.Pool().Exec(ctx, `UPDATE tenants SET status = 'active', suspended_at = NULL WHERE id = $1`, inv.TenantID)
	require.NoError(t, err)
	in3 := RailAttemptInput{InvoiceID: inv.ID, Attempt: 3}
	res, err = a.PayFromWallet(ctx, in3)
	require.NoError(t, err)
	require.Equal(t, OutcomePaid, res.Outcome)
	require.Nil(t, res.PaidElsewhere)
	require.Equal(t, "invoice/"+inv.ID, res.Reference)
	require.Equal(t, "paid 20.00 USD from the wallet (5.00 USD left)", res.Summary)
	again, err := a.PayFromWallet(ctx, in3)
	require.NoError(t, err)
	require.Equal(t, res, again)
	w, err = a.Store.WalletState(ctx, inv.TenantID)
	require.NoError(t, err)
	require.Equal(t, int64(500), w.Spendable)

	// A later turn of a rail finds it paid via the wallet.
	turn, err := a.PayByNWC(ctx, RailAttemptInput{InvoiceID: inv.ID, Attempt: 4})
	require.NoError(t, err)
	require.Equal(t, OutcomePaid, turn.Outcome)
	require.Equal(t, store.RailWallet, turn.Payment.Rail)
}

// An invoice paid another way before the wallet's turn is reported as that
// payment, and the wallet is not touched.
func TestPayFromWalletActivityPaidElsewhere(t *testing.T) {
	ctx := context.Background()
	a, inv := walletWorld(t)
	_, err := a.Store.Deposit(ctx, store.WalletWrite{TenantID: inv.TenantID, Key: "d1", Amount: 5000})
	require.NoError(t, err)
	_, err = a.Store.Settle(ctx, store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailStripe, Reference: "pi_x", ReceivedAt: time.Now()})
	require.NoError(t, err)
	res, err := a.PayFromWallet(ctx, RailAttemptInput{InvoiceID: inv.ID, Attempt: 1})
	require.NoError(t, err)
	require.Equal(t, OutcomePaid, res.Outcome)
	require.Equal(t, &PaymentReport{Rail: store.RailStripe, Reference: "pi_x"}, res.PaidElsewhere)
	w, err := a.Store.WalletState(ctx, inv.TenantID)
	require.NoError(t, err)
	require.Equal(t, int64(5000), w.Spendable)
}
