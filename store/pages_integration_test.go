//go:build integration

package store_test

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

func fakeHash(kind, subject string) func(int) []byte {
	return func(v int) []byte {
		h := sha256.Sum256(fmt.Appendf(nil, "%s:%s:%d", kind, subject, v))
		return h[:]
	}
}

// One live token per invoice, created once however many callers race for
// it; a revoked one stops resolving and the next is a new version.
func TestPageTokensEnsureLookupRevoke(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("p1", "relay-1", "pro", at(0)))
	inv := seedInvoice(t, st, tenant, store.InvoiceOpen)

	hash := fakeHash(store.PageInvoice, inv)
	var wg sync.WaitGroup
	versions := make([]int, 8)
	for i := range versions {
		wg.Go(func() {
			v, err := st.EnsurePageToken(bg(), store.PageInvoice, inv, hash)
			require.NoError(t, err)
			versions[i] = v
		})
	}
	wg.Wait()
	for _, v := range versions {
		require.Equal(t, 1, v)
	}
	require.EqualValues(t, 1, scalar(t, st, `SELECT count(*) FROM page_tokens`))
	got, err := st.LookupPageToken(bg(), hash(1))
	require.NoError(t, err)
	require.Equal(t, store.PageToken{Kind: store.PageInvoice, Subject: inv, Version: 1}, got)
	_, err = st.LookupPageToken(bg(), hash(2))
	require.ErrorIs(t, err, store.ErrNotFound)

	revoked, err := st.RevokePageTokens(bg(), store.PageInvoice, inv, at(5))
	require.NoError(t, err)
	require.True(t, revoked)
	_, err = st.LookupPageToken(bg(), hash(1))
	require.ErrorIs(t, err, store.ErrNotFound, "a revoked token")
	v, err := st.EnsurePageToken(bg(), store.PageInvoice, inv, hash)
	require.NoError(t, err)
	require.Equal(t, 2, v)

	_, err = st.EnsurePageToken(bg(), store.PageInvoice, "inv-nope", hash)
	require.ErrorIs(t, err, store.ErrNotFound)
	v, err = st.EnsurePageToken(bg(), store.PageAccount, string(tenant), fakeHash(store.PageAccount, string(tenant)))
	require.NoError(t, err)
	require.Equal(t, 1, v)
	_, err = st.EnsurePageToken(bg(), "other", inv, hash)
	requireValidation(t, err)
}

// A page charge keeps its idempotency key until it is declined: clicks
// while it is unknown, processing or succeeded get the same key, so Stripe
// charges once; a closed invoice takes no charge.
func TestReservePageCharge(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("p1", "relay-1", "pro", at(0)))
	inv := seedInvoice(t, st, tenant, store.InvoiceAwaitingPayment)

	first, err := st.ReservePageCharge(bg(), inv)
	require.NoError(t, err)
	require.True(t, first.Fresh)
	require.Equal(t, "invoice/"+inv+"/card/page-1", first.IdempotencyKey)
	require.EqualValues(t, pricePro, first.Amount)
	again, err := st.ReservePageCharge(bg(), inv)
	require.NoError(t, err)
	require.False(t, again.Fresh)
	require.Equal(t, first.IdempotencyKey, again.IdempotencyKey, "outcome unknown: the same key")

	require.NoError(t, st.FinishPageCharge(bg(), inv, 1, "pi_1", "processing"))
	again, err = st.ReservePageCharge(bg(), inv)
	require.NoError(t, err)
	require.Equal(t, first.IdempotencyKey, again.IdempotencyKey, "processing: the same key")

	require.NoError(t, st.FinishPageCharge(bg(), inv, 1, "pi_1", "declined"))
	second, err := st.ReservePageCharge(bg(), inv)
	require.NoError(t, err)
	require.True(t, second.Fresh)
	require.Equal(t, "invoice/"+inv+"/card/page-2", second.IdempotencyKey, "a decline allows a new charge")
	charges, err := st.PageCharges(bg(), inv)
	require.NoError(t, err)
	require.Len(t, charges, 2)
	require.Equal(t, "pi_1", charges[0].PaymentIntentID)

	_, err = st.Pool().Exec(bg(), `INSERT INTO page_card_charges (invoice_id, n, idempotency_key, amount, currency) VALUES ($1, 9, $2, 1, 'usd')`,
		inv, second.IdempotencyKey)
	requirePgCode(t, err, "23505")

	_, err = st.CloseInvoice(bg(), inv, store.InvoiceVoid, "test", at(30))
	require.NoError(t, err)
	_, err = st.ReservePageCharge(bg(), inv)
	require.ErrorIs(t, err, store.ErrInvoiceClosed, "a void invoice takes no charge")
}
