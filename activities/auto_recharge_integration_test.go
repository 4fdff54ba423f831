//go:build integration

package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// collectingNotifier is a balanceNotifier that also starts collections
// (as billing.Client does); failCollect makes the next start fail.
type collectingNotifier struct {
	balanceNotifier
	cmu         sync.Mutex
	collected   []string
	failCollect bool
}

func (n *collectingNotifier) CollectInvoice(_ context.Context, id string) (string, error) {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	if n.failCollect {
		n.failCollect = false
		return "", errors.New("temporal unreachable")
	}
	n.collected = append(n.collected, id)
	return "run-" + id, nil
}

// StartAutoRecharge makes the auto top-up and starts its collection; a
// collection that failed to start is started for the same invoice by the
// retry; SyncWallet then reports it open (so the workflow starts no
// second); with no collector configured it fails for good.
func TestStartAutoRechargeCollects(t *testing.T) {
	a, _, env, tenant := balanceWorld(t)
	ctx := context.Background()
	n := &collectingNotifier{failCollect: true}
	a.Notify = n
	threshold, amount := int64(500), int64(2000)
	_, err := a.Store.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold, Amount: &amount})
	require.NoError(t, err)

	sv, err := env.ExecuteActivity(a.SyncWallet, SyncWalletInput{TenantID: tenant, At: time.Now()})
	require.NoError(t, err)
	var sync1 SyncWalletResult
	require.NoError(t, sv.Get(&sync1))
	require.Equal(t, &AutoRechargeState{Threshold: 500, Amount: 2000}, sync1.AutoRecharge)
	require.True(t, sync1.AutoRecharge.Due(sync1.View.Spendable))

	_, err = env.ExecuteActivity(a.StartAutoRecharge, StartAutoRechargeInput{TenantID: tenant})
	require.ErrorContains(t, err, "temporal unreachable", "the collection did not start: retried")
	open, err := a.Store.OpenAutoTopUp(ctx, tenant)
	require.NoError(t, err)
	require.NotNil(t, open)

	v, err := env.ExecuteActivity(a.StartAutoRecharge, StartAutoRechargeInput{TenantID: tenant})
	require.NoError(t, err)
	var res StartAutoRechargeResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, open.ID, res.InvoiceID, "the retry collects the same invoice")
	require.False(t, res.Created)
	require.Equal(t, []string{open.ID}, n.collected)
	require.Equal(t, []contract.BalanceEvent{{Kind: contract.BalanceTopUpRequested, Reference: open.ID}}, n.events)

	sv, err = env.ExecuteActivity(a.SyncWallet, SyncWalletInput{TenantID: tenant, At: time.Now()})
	require.NoError(t, err)
	var sync2 SyncWalletResult
	require.NoError(t, sv.Get(&sync2))
	require.Equal(t, open.ID, sync2.AutoRecharge.OpenInvoiceID)
	require.False(t, sync2.AutoRecharge.Due(sync2.View.Spendable), "open: not due again")

	a.Notify = &balanceNotifier{}
	_, err = env.ExecuteActivity(a.StartAutoRecharge, StartAutoRechargeInput{TenantID: tenant})
	require.ErrorContains(t, err, "no invoice collector configured")
}
