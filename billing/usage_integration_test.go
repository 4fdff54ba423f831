//go:build integration

package billing_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/internal/usagestub"
	"github.com/billflow/billflow/models"
)

// usageEnv is a billing client whose task queue runs the stub UsageSession
// workflow (internal/usagestub), so these tests pin billing's side of the
// contract without the real session machine.
func usageEnv(t *testing.T) *billing.Client {
	t.Helper()
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	usagestub.Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return billing.New(tc, queue)
}

// newPayer is a payer's secret key and its public key as a tenant id.
func newPayer(t *testing.T) (string, models.TenantID) {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	return sk, models.TenantID(pk)
}

func requireUsageError(t *testing.T, err error, code models.UsageErrorCode) *billing.UsageError {
	t.Helper()
	var ue *billing.UsageError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, code, ue.Code, "%v", err)
	return ue
}

// A session through billing: started by update-with-start (again: the same
// session), signed, reported, queried and ended; bad signatures come back
// as typed UsageErrors and the session keeps waiting.
func TestUsageSessionThroughBillingPackage(t *testing.T) {
	bc := usageEnv(t)
	ctx := ctxFor(t)
	sk, payer := newPayer(t)
	id := "sess-" + string(payer[:8])

	res, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: id, ServiceID: "vpn", Payer: payer, MaxUnitPrice: 5})
	require.NoError(t, err)
	assert.Equal(t, contract.UsageIdle, res.State)
	assert.Equal(t, contract.SubWaitingFirstReceiptSign, res.SubState)
	require.NotNil(t, res.Receipt)
	assert.Equal(t, usagestub.ReceiptID(id, 1), res.Receipt.ReceiptID)
	again, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: id, ServiceID: "vpn", Payer: payer, MaxUnitPrice: 5})
	require.NoError(t, err)
	assert.Equal(t, res.Receipt.ReceiptID, again.Receipt.ReceiptID, "starting again reaches the running session")

	// Wrong key, then the wrong receipt: refused, typed; still waiting.
	otherSK, _ := newPayer(t)
	bad, err := payersign.Sign(otherSK, *res.Receipt, time.Now())
	require.NoError(t, err)
	_, err = bc.SignReceipt(ctx, id, bad)
	requireUsageError(t, err, models.UsageReceiptWrongPayer)
	wrong := *res.Receipt
	wrong.ReceiptID = usagestub.ReceiptID(id, 2)
	bad, err = payersign.Sign(sk, wrong, time.Now())
	require.NoError(t, err)
	_, err = bc.SignReceipt(ctx, id, bad)
	ue := requireUsageError(t, err, models.UsageReceiptCantFind)
	assert.Contains(t, ue.Message, wrong.ReceiptID)
	tampered, err := payersign.Sign(sk, *res.Receipt, time.Now())
	require.NoError(t, err)
	tampered.Content = "changed"
	_, err = bc.SignReceipt(ctx, id, tampered)
	requireUsageError(t, err, models.UsageReceiptBadSignature)
	v, err := bc.UsageSession(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, v.Waiting)
	assert.Equal(t, res.Receipt.ReceiptID, v.Waiting.ReceiptID)

	good, err := payersign.Sign(sk, *res.Receipt, time.Now())
	require.NoError(t, err)
	v, err = bc.SignReceipt(ctx, id, good)
	require.NoError(t, err)
	assert.Equal(t, contract.UsageNormal, v.State)
	assert.Equal(t, int64(1), v.ReceiptsSigned)

	require.NoError(t, bc.ReportUsage(ctx, id, billing.UsageReport{ID: "r-1", Seconds: 30, BytesReceived: 10, BytesSent: 5}))
	require.NoError(t, bc.ReportUsage(ctx, id, billing.UsageReport{ID: "r-1", Seconds: 30, BytesReceived: 10, BytesSent: 5}))
	v, err = bc.UsageSession(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int64(30), v.Seconds, "a report is counted once by its id")
	assert.Equal(t, payer, v.Payer)

	end, err := bc.EndUsage(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, contract.UsageEnded, end.State)
	require.NotNil(t, end.EndedAt)

	// An ended session: its id is not started again, and it takes nothing more.
	_, err = bc.EndUsage(ctx, id)
	requireUsageError(t, err, models.UsageSessionEnded)
	err = bc.ReportUsage(ctx, id, billing.UsageReport{ID: "r-2", Seconds: 1})
	requireUsageError(t, err, models.UsageSessionEnded)
	_, err = bc.SignReceipt(ctx, id, good)
	requireUsageError(t, err, models.UsageSessionEnded)
	_, err = bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: id, ServiceID: "vpn", Payer: payer, MaxUnitPrice: 5})
	requireUsageError(t, err, models.UsageSessionEnded)
	v, err = bc.UsageSession(ctx, id)
	require.NoError(t, err, "an ended session can still be shown")
	assert.Equal(t, contract.UsageEnded, v.State)
}

// A refused start is a typed UsageError; a free service starts FREE.
func TestStartUsageRefusedAndFree(t *testing.T) {
	bc := usageEnv(t)
	ctx := ctxFor(t)
	_, payer := newPayer(t)
	_, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: "pricey-" + string(payer[:8]), ServiceID: usagestub.ServicePricey, Payer: payer, MaxUnitPrice: 1})
	ue := requireUsageError(t, err, models.UsageUnitPriceTooHigh)
	assert.Contains(t, ue.Error(), "UNIT_PRICE_TOO_HIGH: ")

	res, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: "free-" + string(payer[:8]), ServiceID: usagestub.ServiceFree, Payer: payer})
	require.NoError(t, err)
	assert.Equal(t, contract.UsageFree, res.State)
	assert.Nil(t, res.Receipt)
}

// Bad input is a ValidationError naming the field, before anything is
// sent; an unknown session is ErrUsageSessionNotFound naming it.
func TestUsageInputAndUnknownSession(t *testing.T) {
	bc := usageEnv(t)
	ctx := ctxFor(t)
	_, payer := newPayer(t)
	var ve *billing.ValidationError
	for _, c := range []struct {
		req   billing.UsageStartRequest
		field string
	}{
		{billing.UsageStartRequest{SessionID: "", ServiceID: "vpn", Payer: payer}, "session_id"},
		{billing.UsageStartRequest{SessionID: "a/b", ServiceID: "vpn", Payer: payer}, "session_id"},
		{billing.UsageStartRequest{SessionID: "s1", ServiceID: " ", Payer: payer}, "service_id"},
		{billing.UsageStartRequest{SessionID: "s1", ServiceID: "vpn", Payer: "nope"}, "payer"},
		{billing.UsageStartRequest{SessionID: "s1", ServiceID: "vpn", Payer: payer, MaxUnitPrice: -1}, "max_unit_price"},
	} {
		_, err := bc.StartUsage(ctx, c.req)
		require.ErrorAs(t, err, &ve, "%+v", c.req)
		assert.Equal(t, c.field, ve.Field)
	}
	err := bc.ReportUsage(ctx, "s1", billing.UsageReport{Seconds: 1})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "id", ve.Field)
	err = bc.ReportUsage(ctx, "s1", billing.UsageReport{ID: "r", BytesSent: -1})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "bytes_sent", ve.Field)
	_, err = bc.SignReceipt(ctx, "s1", billing.NostrEvent{ID: "xyz"})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "event.id", ve.Field)

	missing := "never-" + string(payer[:8])
	_, err = bc.UsageSession(ctx, missing)
	require.True(t, errors.Is(err, billing.ErrUsageSessionNotFound), "%v", err)
	assert.Contains(t, err.Error(), missing)
	_, err = bc.EndUsage(ctx, missing)
	require.ErrorIs(t, err, billing.ErrUsageSessionNotFound)
	err = bc.ReportUsage(ctx, missing, billing.UsageReport{ID: "r", Seconds: 1})
	require.ErrorIs(t, err, billing.ErrUsageSessionNotFound)
	sk, _ := newPayer(t)
	ev, err := payersign.Sign(sk, usagestub.SignRequestFor(contract.UsageStartRequest{SessionID: missing}, 1), time.Now())
	require.NoError(t, err)
	_, err = bc.SignReceipt(ctx, missing, ev)
	require.ErrorIs(t, err, billing.ErrUsageSessionNotFound)
}

// A report sent just before the end is counted in the end's answer: the
// SDK can run the end update's handler before a signal of the same
// workflow task reaches its channel, so EndUsage makes the end a later
// task. Repeated, since the two landing in one task is a matter of timing.
func TestEndUsageCountsTheReportJustBefore(t *testing.T) {
	bc := usageEnv(t)
	ctx := ctxFor(t)
	_, payer := newPayer(t)
	for i := range 20 {
		id := fmt.Sprintf("last-%d-%s", i, payer[:8])
		_, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: id, ServiceID: "vpn", Payer: payer, MaxUnitPrice: 5})
		require.NoError(t, err)
		require.NoError(t, bc.ReportUsage(ctx, id, billing.UsageReport{ID: "a", Seconds: 20}))
		require.NoError(t, bc.ReportUsage(ctx, id, billing.UsageReport{ID: "b", Seconds: 5}))
		v, err := bc.EndUsage(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(25), v.Seconds, "session %d: the last report is in the end's answer", i)
	}
}
