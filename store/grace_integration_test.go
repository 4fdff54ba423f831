//go:build integration

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// graceFixture is a tenant with one unpaid invoice.
func graceFixture(t *testing.T) (*store.Store, models.TenantID, string) {
	t.Helper()
	ctx := context.Background()
	st := testkit.NewStore(t)
	id := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, id, "usd", 600)
	require.NoError(t, err)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.RecordActivity(ctx, id, models.Activity{ID: "g-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", At: at}, false)
	require.NoError(t, err)
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "grace-" + string(id), Period: models.Period{Start: at, End: at.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	return st, id, res.Invoice.ID
}

func countEvents(t *testing.T, st *store.Store, id models.TenantID, typ string) int {
	t.Helper()
	var n int
	require.NoError(t, st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE tenant_id=$1 AND type=$2`, id, typ).Scan(&n))
	return n
}

func TestGracePaidInsideWindowRestores(t *testing.T) {
	ctx := context.Background()
	st, id, inv := graceFixture(t)
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	g, err := st.EnterGrace(ctx, id, now, 7*24*time.Hour)
	require.NoError(t, err)
	require.True(t, g.Changed)
	require.Equal(t, store.TenantGrace, g.Status)
	require.Equal(t, now.Add(7*24*time.Hour), *g.GraceExpiresAt)
	require.Len(t, g.Unpaid, 1)
	require.Equal(t, 1, countEvents(t, st, id, "tenant.grace_started"))

	// A second failure inside the window changes nothing.
	again, err := st.EnterGrace(ctx, id, now.Add(time.Hour), 7*24*time.Hour)
	require.NoError(t, err)
	require.False(t, again.Changed)
	require.Equal(t, 1, countEvents(t, st, id, "tenant.grace_started"))

	// Not yet paid: nothing to restore.
	g, err = st.RestoreIfSettled(ctx, id, now.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, g.Changed)
	require.Equal(t, store.TenantGrace, g.Status)

	paid, err := st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailManual, ReceivedAt: now.Add(3 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, paid.Outcome)
	g, err = st.RestoreIfSettled(ctx, id, now.Add(3*time.Hour))
	require.NoError(t, err)
	require.True(t, g.Changed)
	require.Equal(t, store.TenantActive, g.Status)
	require.Nil(t, g.BannedUntil)
	require.Equal(t, 1, countEvents(t, st, id, "tenant.restored"))

	// The window's timer firing afterwards is harmless.
	g, err = st.ExpireGrace(ctx, id, now.Add(7*24*time.Hour), 350*24*time.Hour)
	require.NoError(t, err)
	require.False(t, g.Changed)
	require.Equal(t, store.TenantActive, g.Status)
}

func TestGraceExpirySuspendsBansAndPaymentRestores(t *testing.T) {
	ctx := context.Background()
	st, id, inv := graceFixture(t)
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	window := 7 * 24 * time.Hour
	_, err := st.EnterGrace(ctx, id, now, window)
	require.NoError(t, err)
	expiry := now.Add(window)
	g, err := st.ExpireGrace(ctx, id, expiry, 50*window)
	require.NoError(t, err)
	require.True(t, g.Changed)
	require.Equal(t, store.TenantSuspended, g.Status)
	require.Equal(t, expiry.Add(50*window), *g.BannedUntil)
	require.Equal(t, 1, countEvents(t, st, id, "tenant.suspended"))

	// Paying everything while suspended restores; the ban stays.
	paid, err := st.Settle(ctx, store.PaymentReport{InvoiceID: inv, Rail: store.RailStripe, Reference: "pi_1", ReceivedAt: expiry.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, paid.Outcome)
	g, err = st.RestoreIfSettled(ctx, id, expiry.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, store.TenantActive, g.Status)
	require.NotNil(t, g.BannedUntil)

	// The next failure while banned suspends at once, without grace.
	at := time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
	_, err = st.RecordActivity(ctx, id, models.Activity{ID: "g2-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r2", PlanID: "basic", At: at}, false)
	require.NoError(t, err)
	_, err = st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "grace2-" + string(id), Period: models.Period{Start: at, End: at.Add(time.Minute)}})
	require.NoError(t, err)
	later := expiry.Add(48 * time.Hour)
	g, err = st.EnterGrace(ctx, id, later, window)
	require.NoError(t, err)
	require.True(t, g.Changed)
	require.Equal(t, store.TenantSuspended, g.Status)
	require.Nil(t, g.GraceExpiresAt, "no new grace while banned")
	require.Equal(t, 2, countEvents(t, st, id, "tenant.suspended"))
	require.Equal(t, 1, countEvents(t, st, id, "tenant.grace_started"))

	// After the ban runs out, a failure grants grace again.
	g, err = st.GetGraceState(ctx, id)
	require.NoError(t, err)
	require.False(t, g.Banned(g.BannedUntil.Add(time.Second)))
	require.True(t, g.Banned(later))
}

func TestGraceNothingUnpaidIsNoOp(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	id := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, id, "usd", 0)
	require.NoError(t, err)
	g, err := st.EnterGrace(ctx, id, time.Now(), time.Hour)
	require.NoError(t, err)
	require.False(t, g.Changed)
	require.Equal(t, store.TenantActive, g.Status)
	_, err = st.EnterGrace(ctx, testkit.NewTenantID(t), time.Now(), time.Hour)
	require.Error(t, err)
}
