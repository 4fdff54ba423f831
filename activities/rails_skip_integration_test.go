//go:build integration

package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

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
