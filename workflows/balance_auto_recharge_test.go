package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
)

// autoRecharges mocks StartAutoRecharge: each call opens an auto top-up
// (as the store would) and is counted at its instant.
func (b *balanceEnv) autoRecharges() *[]time.Duration {
	var calls []time.Duration
	b.env.OnActivity(b.acts.ReconcileTopUps, mock.Anything, mock.Anything).Return(activities.ReconcileTopUpsResult{Checked: 1}, nil).Maybe()
	b.env.OnActivity(b.acts.StartAutoRecharge, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.StartAutoRechargeInput) (activities.StartAutoRechargeResult, error) {
			calls = append(calls, b.syncs[len(b.syncs)-1])
			b.recharge.OpenInvoiceID = "auto-top-up"
			return activities.StartAutoRechargeResult{InvoiceID: "auto-top-up", Amount: b.recharge.Amount, Created: true}, nil
		}).Maybe()
	return &calls
}

// Below the threshold, the sync starts one auto top-up; the syncs after it
// (a fast window of them, and lifetime syncs) find it open and start no
// second one; once it is no longer open and spendable is below again, the
// next sync starts a new one (the lifetime sync an hour after the window
// closed at 2s+2min).
func TestBalanceAutoRechargeOncePerOpenTopUp(t *testing.T) {
	b := newBalanceEnv(t)
	b.spendable = 100
	b.recharge = &activities.AutoRechargeState{Threshold: 500, Amount: 2000}
	calls := b.autoRecharges()
	b.event(2 * time.Second)
	// The top-up was paid and spent again: none open, spendable below.
	b.env.RegisterDelayedCallback(func() { b.recharge.OpenInvoiceID = "" }, 30*time.Minute)
	b.stopAt(90 * time.Minute)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.Greater(t, len(b.syncs), 20, "a fast window of syncs ran")
	require.Equal(t, []time.Duration{0, 122*time.Second + time.Hour}, *calls, "one at the first sync, the next only after the first was no longer open")
}

// An auto top-up already open: no sync starts another.
func TestBalanceAutoRechargeNotWhileOpen(t *testing.T) {
	b := newBalanceEnv(t)
	b.spendable = 100
	b.recharge = &activities.AutoRechargeState{Threshold: 500, Amount: 2000, OpenInvoiceID: "auto-open"}
	calls := b.autoRecharges()
	b.event(2 * time.Second)
	b.stopAt(3 * time.Hour)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.NotEmpty(t, b.syncs)
	require.Empty(t, *calls)
}

// At or above the threshold (and with auto-recharge off) nothing starts.
func TestBalanceAutoRechargeNeverAboveThreshold(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spendable int64
		recharge  *activities.AutoRechargeState
	}{
		{"above", 1000, &activities.AutoRechargeState{Threshold: 500, Amount: 2000}},
		{"at", 500, &activities.AutoRechargeState{Threshold: 500, Amount: 2000}},
		{"off", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBalanceEnv(t)
			b.spendable, b.recharge = tc.spendable, tc.recharge
			calls := b.autoRecharges()
			b.event(2 * time.Second)
			b.stopAt(3 * time.Hour)
			b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
			require.NotEmpty(t, b.syncs)
			require.Empty(t, *calls)
		})
	}
}
