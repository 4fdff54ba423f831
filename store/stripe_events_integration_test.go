//go:build integration

package store_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

func stripeEvent(id, typ, pi, invoice string) store.StripeEvent {
	payload, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ,
		"data": map[string]any{"object": map[string]any{"id": pi, "object": "payment_intent", "amount": 500,
			"metadata": map[string]string{"invoice_id": invoice}}},
	})
	return store.StripeEvent{ID: id, Type: typ, PaymentIntentID: pi, InvoiceID: invoice, Payload: payload}
}

// stripeEventRow is a stripe_events row read back with SQL.
type stripeEventRow struct {
	Type, PaymentIntentID, InvoiceID *string
	Amount                           int64
	ReceivedAt                       time.Time
}

func readStripeEvent(t *testing.T, st *store.Store, id string) stripeEventRow {
	t.Helper()
	var r stripeEventRow
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT type, payment_intent_id, invoice_id,
		(payload->'data'->'object'->>'amount')::bigint, received_at FROM stripe_events WHERE id = $1`, id).
		Scan(&r.Type, &r.PaymentIntentID, &r.InvoiceID, &r.Amount, &r.ReceivedAt))
	return r
}

func TestRecordStripeEventFreshThenReplay(t *testing.T) {
	st := testkit.NewStore(t)
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st.Now = func() time.Time { return first }

	ev := stripeEvent("evt_1", "payment_intent.succeeded", "pi_1", "inv-1")
	fresh, err := st.RecordStripeEvent(bg(), ev)
	require.NoError(t, err)
	assert.True(t, fresh, "first delivery is fresh")

	// A redelivery, even one whose payload differs (Stripe re-renders events),
	// is not fresh and does not overwrite what was recorded first.
	st.Now = func() time.Time { return first.Add(time.Hour) }
	replay := stripeEvent("evt_1", "payment_intent.payment_failed", "pi_other", "inv-other")
	for range 3 {
		fresh, err = st.RecordStripeEvent(bg(), replay)
		require.NoError(t, err)
		assert.False(t, fresh, "replayed event id must not be fresh")
	}

	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM stripe_events`))
	row := readStripeEvent(t, st, "evt_1")
	assert.Equal(t, "payment_intent.succeeded", *row.Type)
	assert.Equal(t, "pi_1", *row.PaymentIntentID)
	assert.Equal(t, "inv-1", *row.InvoiceID)
	assert.Equal(t, int64(500), row.Amount)
	assert.True(t, first.Equal(row.ReceivedAt), "received_at of the first delivery, got %s", row.ReceivedAt)

	got, err := st.GetStripeEvent(bg(), "evt_1")
	require.NoError(t, err)
	assert.Equal(t, "pi_1", got.PaymentIntentID)
	assert.JSONEq(t, string(ev.Payload), string(got.Payload))

	// A different id is fresh.
	fresh, err = st.RecordStripeEvent(bg(), stripeEvent("evt_2", "payment_intent.succeeded", "pi_1", "inv-1"))
	require.NoError(t, err)
	assert.True(t, fresh)
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM stripe_events`))
}

func TestRecordStripeEventWithoutPaymentIntentStoresNulls(t *testing.T) {
	st := testkit.NewStore(t)
	fresh, err := st.RecordStripeEvent(bg(), store.StripeEvent{ID: "evt_c", Type: "customer.updated", Payload: json.RawMessage(`{"id":"evt_c"}`)})
	require.NoError(t, err)
	assert.True(t, fresh)
	row := readStripeEventNulls(t, st, "evt_c")
	assert.Equal(t, [2]bool{true, true}, row, "empty payment intent and invoice are stored as NULL")
}

func readStripeEventNulls(t *testing.T, st *store.Store, id string) [2]bool {
	t.Helper()
	var r [2]bool
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT payment_intent_id IS NULL, invoice_id IS NULL FROM stripe_events WHERE id = $1`, id).
		Scan(&r[0], &r[1]))
	return r
}

func TestRecordStripeEventRejectsBadInput(t *testing.T) {
	st := testkit.NewStore(t)
	for name, ev := range map[string]store.StripeEvent{
		"no id":            {Type: "x", Payload: json.RawMessage(`{}`)},
		"no type":          {ID: "evt_x", Payload: json.RawMessage(`{}`)},
		"no payload":       {ID: "evt_x", Type: "x"},
		"payload not json": {ID: "evt_x", Type: "x", Payload: json.RawMessage(`{"a":`)},
		"payload array":    {ID: "evt_x", Type: "x", Payload: json.RawMessage(`[1]`)},
		"payload null":     {ID: "evt_x", Type: "x", Payload: json.RawMessage(`null`)},
	} {
		t.Run(name, func(t *testing.T) {
			fresh, err := st.RecordStripeEvent(bg(), ev)
			requireValidation(t, err)
			assert.False(t, fresh)
		})
	}
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM stripe_events`), "nothing stored")

	_, err := st.GetStripeEvent(bg(), "evt_missing")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestRecordStripeEventConcurrentDeliveries races many deliveries of the same
// event ids (as Stripe's retries and a manual replay could): for each id
// exactly one caller is told it is fresh.
func TestRecordStripeEventConcurrentDeliveries(t *testing.T) {
	st := testkit.NewStore(t)
	const ids, deliveries = 5, 16
	var mu sync.Mutex
	freshCount := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, ids*deliveries)
	for i := range ids {
		id := "evt_race_" + string(rune('a'+i))
		for range deliveries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fresh, err := st.RecordStripeEvent(bg(), stripeEvent(id, "payment_intent.succeeded", "pi_"+id, "inv-"+id))
				if err != nil {
					errs <- err
					return
				}
				if fresh {
					mu.Lock()
					freshCount[id]++
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, freshCount, ids)
	for id, n := range freshCount {
		assert.Equal(t, 1, n, "exactly one fresh delivery of %s", id)
	}
	assert.Equal(t, int64(ids), scalar(t, st, `SELECT count(*) FROM stripe_events`))
}
