//go:build integration

package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// A suspended tenant is not billed: its boundary passes with no renewal
// item (and is not billed later); when it pays and is restored, each
// resource active on a paid plan gets the prorated price of the rest of the
// current period, once; the next boundary renews as usual.
func TestSuspendedTenantNotRenewedRestoreProrates(t *testing.T) {
	ctx := bg()
	st, id, inv := graceFixture(t) // "pro" (20.00 USD) from 2026-01-01T00:00Z, 10-minute periods
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.EnterGrace(ctx, id, anchor.Add(time.Minute), time.Minute)
	require.NoError(t, err)
	g, err := st.ExpireGrace(ctx, id, anchor.Add(2*time.Minute), time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.TenantSuspended, g.Status)

	boundary1 := anchor.Add(10 * time.Minute)
	res, err := st.Renew(ctx, id, boundary1)
	require.NoError(t, err)
	require.True(t, res.Suspended)
	require.Zero(t, res.Created, "no renewal while suspended")
	require.Equal(t, boundary1, *res.RenewedThrough)
	require.Empty(t, itemRows(t, st, `WHERE tenant_id = $1 AND kind = 'renewal'`, id))

	// Paid two minutes into period 1: restored, billed 8/10 of the period.
	restoredAt := boundary1.Add(2 * time.Minute)
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailManual, ReceivedAt: restoredAt})
	require.NoError(t, err)
	g, err = st.RestoreIfSettled(ctx, id, restoredAt)
	require.NoError(t, err)
	require.Equal(t, store.TenantActive, g.Status)
	items, err := st.OutstandingItems(ctx, id)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, store.KindRestore, items[0].Kind)
	require.Equal(t, int64(1600), items[0].Amount)
	require.Equal(t, boundary1, items[0].PeriodStart)
	require.Equal(t, "r", items[0].ResourceID)

	// Renewing the passed boundary again bills nothing; the next one renews.
	res, err = st.Renew(ctx, id, boundary1)
	require.NoError(t, err)
	require.Zero(t, res.Created)
	res, err = st.Renew(ctx, id, anchor.Add(20*time.Minute))
	require.NoError(t, err)
	require.False(t, res.Suspended)
	require.Equal(t, 1, res.Created)
	items, err = st.OutstandingItems(ctx, id)
	require.NoError(t, err)
	require.Len(t, items, 2)
}

// Restoring from grace (never suspended) bills nothing extra: the period's
// renewal ran as usual.
func TestRestoreFromGraceBillsNothingExtra(t *testing.T) {
	ctx := bg()
	st, id, inv := graceFixture(t)
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.EnterGrace(ctx, id, anchor.Add(time.Minute), time.Hour)
	require.NoError(t, err)
	_, err = st.Renew(ctx, id, anchor.Add(10*time.Minute))
	require.NoError(t, err)
	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailManual, ReceivedAt: anchor.Add(11 * time.Minute)})
	require.NoError(t, err)
	g, err := st.RestoreIfSettled(ctx, id, anchor.Add(11*time.Minute))
	require.NoError(t, err)
	require.Equal(t, store.TenantActive, g.Status)
	items, err := st.OutstandingItems(ctx, id)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, models.KindRenewal, items[0].Kind)
}

// A tenant's billing step that failed for good is marked with a
// tenant.needs_action event in the same transaction, and cleared.
func TestTenantNeedsAction(t *testing.T) {
	ctx := bg()
	st, id, _ := graceFixture(t)
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	require.NoError(t, st.MarkTenantNeedsAction(ctx, id, "renew and claim", "plan missing", at))
	when, reason, err := st.TenantNeedsAction(ctx, id)
	require.NoError(t, err)
	require.Equal(t, at, *when)
	require.Equal(t, "renew and claim: plan missing", reason)
	require.Equal(t, 1, countEvents(t, st, id, "tenant.needs_action"))
	require.NoError(t, st.ClearTenantNeedsAction(ctx, id))
	when, _, err = st.TenantNeedsAction(ctx, id)
	require.NoError(t, err)
	require.Nil(t, when)
	require.ErrorIs(t, st.MarkTenantNeedsAction(ctx, "nobody", "x", "y", at), store.ErrNotFound)
}

// A boundary that fell before the suspension is renewed even when the
// renewal step runs after it (a worker outage delayed the boundary); the
// boundaries from the suspension on are not.
func TestRenewalLateAfterSuspensionRenewsTheEarlierBoundary(t *testing.T) {
	ctx := bg()
	st, id, _ := graceFixture(t) // "pro" (20.00 USD) from 2026-01-01T00:00Z, 10-minute periods
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.EnterGrace(ctx, id, anchor.Add(time.Minute), time.Minute)
	require.NoError(t, err)
	// Suspended at +12 min: after the first boundary (+10), before the second (+20).
	g, err := st.ExpireGrace(ctx, id, anchor.Add(12*time.Minute), time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.TenantSuspended, g.Status)

	res, err := st.Renew(ctx, id, anchor.Add(20*time.Minute))
	require.NoError(t, err)
	require.True(t, res.Suspended)
	require.Equal(t, 1, res.Created, "the boundary before the suspension")
	require.Equal(t, anchor.Add(20*time.Minute), *res.RenewedThrough)
	rows := itemRows(t, st, `WHERE tenant_id = $1 AND kind = 'renewal'`, id)
	require.Len(t, rows, 1)

	// Again, and the boundary after: nothing more.
	res, err = st.Renew(ctx, id, anchor.Add(30*time.Minute))
	require.NoError(t, err)
	require.True(t, res.Suspended)
	require.Zero(t, res.Created)
	require.Len(t, itemRows(t, st, `WHERE tenant_id = $1 AND kind = 'renewal'`, id), 1)
}
