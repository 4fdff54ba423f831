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

// poolInvoiceFixture: a pool of balance, a free_tier plan "pooled" (20.00 a
// period), a trusted tenant (budget 100 a day) and its claimed invoice.
func poolInvoiceFixture(t *testing.T, balance int64) (*store.Store, models.TenantID, store.Invoice, []store.Item) {
	t.Helper()
	ctx := context.Background()
	st := poolStore(t, 4, balance)
	require.NoError(t, st.UpsertPlans(ctx, append(append([]models.Plan(nil), testkit.Plans...),
		models.Plan{ID: "pooled", Name: "Pooled", Amount: 2000, Currency: "usd", FreeTier: true})))
	id := trustedPayer(t, st)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.RecordActivity(ctx, id, models.Activity{ID: "p-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pooled", At: at}, false)
	require.NoError(t, err)
	cfg := poolCfg()
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "pool-" + string(id), Period: models.Period{Start: at, End: at.Add(10 * time.Minute)},
		Pool: &cfg})
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	inv, items, err := st.GetInvoice(ctx, res.Invoice.ID)
	require.NoError(t, err)
	return st, id, inv, items
}

// A claim on a free_tier plan gets a credit item (total = sum of items);
// the pool is debited only when the remaining charge is paid, and once.
func TestInvoiceFreeTierCreditFundedAtSettlement(t *testing.T) {
	st, id, inv, items := poolInvoiceFixture(t, 1000)
	require.Len(t, items, 2)
	var sum int64
	for _, it := range items {
		sum += it.Amount
	}
	require.Equal(t, inv.Total, sum, "invoice total = sum of its items")
	credit := items[0]
	if credit.Kind != store.ItemKindFreeTier {
		credit = items[1]
	}
	require.Equal(t, models.ItemKind(store.ItemKindFreeTier), credit.Kind)
	require.Equal(t, int64(-100), credit.Amount, "the trusted tier's daily budget")
	require.Equal(t, int64(1000), poolBalance(t, st), "advisory until paid")

	for range 2 {
		_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: "manual", Reference: "wire-1", Amount: inv.Total, Currency: "usd",
			ReceivedAt: time.Now()})
		require.NoError(t, err)
	}
	share := (inv.Total * 1000) / 10000
	require.Equal(t, int64(1000)-100+share, poolBalance(t, st), "funded once, and credited the share of what was paid")
	g, err := st.GetGrant(bg(), "invoice-credit/"+inv.ID)
	require.NoError(t, err)
	require.Equal(t, store.GrantRecorded, g.Outcome)
	require.Equal(t, int64(100), g.Absorbed)
	require.Equal(t, int64(100), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, id))
	out, err := st.Outstanding(bg(), id)
	require.NoError(t, err)
	require.Zero(t, out)
}

// A pool drained between the claim and the payment funds what it has; the
// rest is charged on the next claim, never absorbed silently.
func TestInvoiceFreeTierCreditShortfallCharged(t *testing.T) {
	st, id, inv, _ := poolInvoiceFixture(t, 1000)
	cfg := poolCfg()
	// Another grant takes the payer's budget but 30 meanwhile.
	_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: id, Key: "usage-r1", Estimated: 70})
	require.NoError(t, err)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: "manual", Reference: "wire-1", Amount: inv.Total, Currency: "usd",
		ReceivedAt: time.Now()})
	require.NoError(t, err)
	g, err := st.GetGrant(bg(), "invoice-credit/"+inv.ID)
	require.NoError(t, err)
	require.Equal(t, int64(30), g.Absorbed)
	out, err := st.Outstanding(bg(), id)
	require.NoError(t, err)
	require.Equal(t, int64(70), out, "the unfunded 70 is outstanding")
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL AND kind = 'free_tier' AND amount = 70`, id))
}

// Plans without the flag, or no pool configured, claim as before.
func TestInvoiceWithoutFreeTierPlanHasNoCredit(t *testing.T) {
	ctx := context.Background()
	st := poolStore(t, 4, 1000)
	id := trustedPayer(t, st)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := st.RecordActivity(ctx, id, models.Activity{ID: "n-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", At: at}, false)
	require.NoError(t, err)
	cfg := poolCfg()
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "np-" + string(id), Period: models.Period{Start: at, End: at.Add(10 * time.Minute)}, Pool: &cfg})
	require.NoError(t, err)
	_, items, err := st.GetInvoice(ctx, res.Invoice.ID)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, int64(1000), poolBalance(t, st))
}
