//go:build integration

package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// invoice-v5: BeginCollection, asked about the rails, says why PayByNWC
// would skip (here: no NWC connection) without recording anything; the
// card, given that reason, records the NWC row PayByNWC would have written,
// once however often it is retried, before its own.
func TestBeginCollectionTellsWhyNWCWouldSkip(t *testing.T) {
	ctx := context.Background()
	a, _, _, inv := lightningWorld(t)

	plain, err := a.BeginCollection(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.Empty(t, plain.NWCSkip, "not asked: not answered")
	res, err := a.BeginCollection(ctx, InvoiceInput{InvoiceID: inv.ID, Rails: true})
	require.NoError(t, err)
	require.Equal(t, "no NWC wallet connected", res.NWCSkip)
	rows, err := a.Store.Attempts(ctx, inv.ID)
	require.NoError(t, err)
	require.Empty(t, rows, "BeginCollection only reads")

	for range 2 { // a retried ChargeCard writes the same rows again
		out, err := a.ChargeCard(ctx, RailAttemptInput{InvoiceID: inv.ID, Attempt: 1, NWCSkipped: res.NWCSkip})
		require.NoError(t, err)
		require.Equal(t, OutcomeSkipped, out.Outcome, "no card on file")
	}
	rows, err = a.Store.Attempts(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, []string{"nwc", "card"}, []string{rows[0].Rail, rows[1].Rail})
	require.Equal(t, store.Attempt{InvoiceID: inv.ID, Attempt: 1, Rail: "nwc", Outcome: OutcomeSkipped, Detail: "no NWC wallet connected", At: rows[0].At}, rows[0])
}

// tellerNotifier records the tenants told, or fails every signal.
type tellerNotifier struct {
	Notifier
	fail  error
	told  []models.TenantID
	calls int
}

func (n *tellerNotifier) TellInvoiceSettled(_ context.Context, tenant models.TenantID, s contract.InvoiceSettled) error {
	n.calls++
	if n.fail != nil {
		return n.fail
	}
	if s.Status == store.InvoicePaid {
		n.told = append(n.told, tenant)
	}
	return nil
}

// invoice-v6: Settle, asked to (TellTenant), tells the tenant once the
// invoice is paid and says so; a failed signal fails nothing (the payment
// is recorded, TenantTold is false and the workflow tells the tenant).
func TestSettleTellsTheTenant(t *testing.T) {
	ctx := context.Background()
	for _, fail := range []bool{false, true} {
		a, _, _, inv := lightningWorld(t)
		n := &tellerNotifier{}
		if fail {
			n.fail = errors.New("frontend unavailable")
		}
		a.Notify = n
		pay := PaymentReport{Rail: "stripe", Reference: "pi_" + inv.ID, Amount: inv.Total, Currency: string(inv.Currency)}
		res, err := a.Settle(ctx, SettleInput{InvoiceID: inv.ID, Payment: pay, PaidAt: time.Now(), TellTenant: inv.TenantID})
		require.NoError(t, err)
		require.Equal(t, "paid", res.Invoice.Status)
		require.Equal(t, !fail, res.TenantTold)
		require.Equal(t, 1, n.calls)
		if !fail {
			require.Equal(t, []models.TenantID{inv.TenantID}, n.told)
		}
		// Not asked: not told.
		again, err := a.Settle(ctx, SettleInput{InvoiceID: inv.ID, Payment: pay, PaidAt: time.Now()})
		require.NoError(t, err)
		require.False(t, again.TenantTold)
		require.Equal(t, 1, n.calls)
	}
}
