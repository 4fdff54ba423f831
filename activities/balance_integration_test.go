//go:build integration

package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// balanceNotifier records balance events; fail makes every report fail.
type balanceNotifier struct {
	mu     sync.Mutex
	events []contract.BalanceEvent
	fail   bool
}

func (n *balanceNotifier) ReportPayment(context.Context, string, PaymentReport) error {
	return ErrWorkflowGone
}
func (n *balanceNotifier) ReportCollectionFailed(context.Context, CollectionFailedInput) error {
	return nil
}
func (n *balanceNotifier) ReportBalanceEvent(_ context.Context, _ models.TenantID, ev contract.BalanceEvent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail {
		return errors.New("temporal unreachable")
	}
	n.events = append(n.events, ev)
	return nil
}

func balanceWorld(t *testing.T) (*Activities, *balanceNotifier, *testsuite.TestActivityEnvironment, models.TenantID) {
	t.Helper()
	st := testkit.NewStore(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(context.Background(), tenant, "usd", 0)
	require.NoError(t, err)
	n := &balanceNotifier{}
	a := &Activities{Store: st, Notify: n}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return a, n, env, tenant
}

// A paid top-up tells the balance sync (signal-with-start through the
// notifier); a notifier failure never fails the settlement; a subscription
// invoice tells nothing.
func TestSettleTopUpReportsBalanceEvent(t *testing.T) {
	a, n, env, tenant := balanceWorld(t)
	ctx := context.Background()
	top, err := a.Store.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "k1", Amount: 500})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.Settle, SettleInput{InvoiceID: top.ID, PaidAt: time.Now(),
		Payment: PaymentReport{Rail: store.RailManual, Reference: "ref-1", Amount: 500, Currency: "usd"}})
	require.NoError(t, err)
	require.Equal(t, []contract.BalanceEvent{{Kind: contract.BalanceTopUpPaid, Reference: top.ID}}, n.events)

	// The same payment again changes nothing and tells nothing.
	_, err = env.ExecuteActivity(a.Settle, SettleInput{InvoiceID: top.ID, PaidAt: time.Now(),
		Payment: PaymentReport{Rail: store.RailManual, Reference: "ref-1", Amount: 500, Currency: "usd"}})
	require.NoError(t, err)
	require.Len(t, n.events, 1)

	n.fail = true
	top2, err := a.Store.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "k2", Amount: 300})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.Settle, SettleInput{InvoiceID: top2.ID, PaidAt: time.Now(),
		Payment: PaymentReport{Rail: store.RailManual, Reference: "ref-2", Amount: 300, Currency: "usd"}})
	require.NoError(t, err, "a lost balance event never fails the settlement")
	w, err := a.Store.WalletState(ctx, tenant)
	require.NoError(t, err)
	require.Equal(t, int64(800), w.Spendable)
}

// SyncWallet reads the ledger, lists open top-ups and publishes the change
// once; ExpireGrants expires a due grant exactly once; ReconcileTopUps with
// no rail configured checks nothing and succeeds.
func TestSyncWalletAndExpireGrants(t *testing.T) {
	a, _, env, tenant := balanceWorld(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	exp := now.Add(time.Minute)
	_, err := a.Store.Grant(ctx, store.WalletWrite{TenantID: tenant, Key: "trial", Amount: 200, ExpiresAt: &exp, At: now})
	require.NoError(t, err)
	top, err := a.Store.CreateTopUp(ctx, store.TopUpParams{TenantID: tenant, Key: "k1", Amount: 500})
	require.NoError(t, err)

	v, err := env.ExecuteActivity(a.SyncWallet, SyncWalletInput{TenantID: tenant, At: now})
	require.NoError(t, err)
	var res SyncWalletResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, int64(200), res.View.Spendable)
	require.True(t, res.Changed)
	require.Len(t, res.View.OpenTopUps, 1)
	require.Equal(t, top.ID, res.View.OpenTopUps[0].InvoiceID)
	require.NotNil(t, res.NextGrantExpiry)
	require.True(t, exp.Equal(*res.NextGrantExpiry))

	v, err = env.ExecuteActivity(a.ReconcileTopUps, ReconcileTopUpsInput{TenantID: tenant, InvoiceIDs: []string{top.ID}, At: now})
	require.NoError(t, err)
	var rec ReconcileTopUpsResult
	require.NoError(t, v.Get(&rec))
	require.Zero(t, rec.Checked)

	for i := 0; i < 2; i++ {
		v, err = env.ExecuteActivity(a.ExpireGrants, ExpireGrantsInput{TenantID: tenant, At: exp})
		require.NoError(t, err)
		var ex ExpireGrantsResult
		require.NoError(t, v.Get(&ex))
		if i == 0 {
			require.Equal(t, []ExpiredGrant{{Key: "trial", Amount: 200}}, ex.Expired)
		} else {
			require.Empty(t, ex.Expired, "nothing is due any more")
		}
	}
	v, err = env.ExecuteActivity(a.SyncWallet, SyncWalletInput{TenantID: tenant, At: exp})
	require.NoError(t, err)
	res = SyncWalletResult{}
	require.NoError(t, v.Get(&res))
	require.Zero(t, res.View.Spendable)
	require.Nil(t, res.NextGrantExpiry)
	require.True(t, res.Changed)
	require.Equal(t, int64(200), res.Before)
}

// An unknown tenant is a non-retryable NotFound (the sync started for it ends).
func TestSyncWalletUnknownTenant(t *testing.T) {
	a, _, env, _ := balanceWorld(t)
	_, err := env.ExecuteActivity(a.SyncWallet, SyncWalletInput{TenantID: testkit.NewTenantID(t), At: time.Now()})
	require.ErrorContains(t, err, "does not exist")
	require.ErrorContains(t, err, ErrNotFound)
}
