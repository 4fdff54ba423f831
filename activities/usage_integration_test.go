//go:build integration

package activities

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/receipts"
	"github.com/billflow/billflow/store"
)

const (
	usageEngineKey = "00000000000000000000000000000000000000000000000000000000000000e1"
	usagePayerKey  = "00000000000000000000000000000000000000000000000000000000000000a1"
)

var usageVPN = models.Service{ID: "vpn", Unit: models.UnitSeconds, Price: 10, Units: 60, Chunk: 60, GracePeriod: time.Minute}

func usageActs(t *testing.T, signed bool) (*Activities, *testsuite.TestActivityEnvironment, models.TenantID) {
	t.Helper()
	st := testkit.NewStore(t)
	pk, err := nostr.GetPublicKey(usagePayerKey)
	require.NoError(t, err)
	payer := models.TenantID(pk)
	_, _, err = st.EnsureTenant(context.Background(), payer, "usd", 0)
	require.NoError(t, err)
	a := &Activities{Store: st, Usage: Usage{Services: map[string]models.Service{"vpn": usageVPN}}}
	if signed {
		a.Usage.Signer, err = receipts.NewSigner(usageEngineKey)
		require.NoError(t, err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return a, env, payer
}

func usageCode(t *testing.T, err error) models.UsageErrorCode {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, contract.ErrUsage, appErr.Type())
	require.True(t, appErr.NonRetryable())
	var ue contract.UsageError
	require.NoError(t, appErr.Details(&ue))
	return ue.Code
}

// UsageStart: catalog, price, a signing key, a session id used once; it
// takes the payer's remain service once.
func TestUsageStartChecks(t *testing.T) {
	a, env, payer := usageActs(t, true)
	ctx := context.Background()
	now := time.Now()
	req := contract.UsageStartRequest{SessionID: "s1", ServiceID: "vpn", Payer: payer, MaxUnitPrice: 10}

	bad := req
	bad.ServiceID = "nope"
	_, err := env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: bad, At: now})
	require.Equal(t, models.UsageServiceNotFound, usageCode(t, err))
	bad = req
	bad.MaxUnitPrice = 9
	_, err = env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: bad, At: now})
	require.Equal(t, models.UsageUnitPriceTooHigh, usageCode(t, err))

	_, err = a.Store.AddUsageRemain(ctx, "old", payer, "vpn", models.UnitSeconds, 25, now)
	require.NoError(t, err)
	v, err := env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: req, At: now})
	require.NoError(t, err)
	var res UsageStartResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, int64(25), res.Remain)
	require.Equal(t, models.Currency("usd"), res.Currency)
	v, err = env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: req, At: now})
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.Equal(t, int64(25), res.Remain, "a retry answers the same take")

	require.NoError(t, a.Store.SetUsageSessionState(ctx, "s1", store.UsageSessionEnded, now))
	_, err = env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: req, At: now})
	require.Equal(t, models.UsageSessionEnded, usageCode(t, err), "an ended session id is not started again (its receipt ids would repeat)")

	stranger := req
	stranger.SessionID, stranger.Payer = "s3", models.TenantID(a.Usage.Signer.PubKey)
	_, err = env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: stranger, At: now})
	require.Equal(t, models.UsagePayerNotFound, usageCode(t, err))

	a2, env2, payer2 := usageActs(t, false)
	_, err = env2.ExecuteActivity(a2.UsageStart, UsageStartInput{Request: contract.UsageStartRequest{SessionID: "s2", ServiceID: "vpn",
		Payer: payer2, MaxUnitPrice: 10}, At: now})
	require.Equal(t, models.UsageUnavailable, usageCode(t, err), "no engine key, no paid sessions")
}

// UsageSend writes the sign request event; UsagePay pays once, answers
// NotEnough as a result, and refuses an answer that does not verify.
func TestUsageSendAndPay(t *testing.T) {
	a, env, payer := usageActs(t, true)
	ctx := context.Background()
	now := time.Now()
	_, err := a.Store.StartUsageSession(ctx, "s1", payer, "vpn", now)
	require.NoError(t, err)
	r := contract.Receipt{Version: 2, SessionID: "s1", ServiceID: "vpn", Payer: payer, Unit: models.UnitSeconds, Units: 60, UnitPrice: 10,
		PriceUnits: 60, Value: 10, Currency: "usd", Seq: 1}
	v, err := env.ExecuteActivity(a.UsageSend, UsageSendInput{Receipt: r, Attempt: 1, Send: 1, At: now})
	require.NoError(t, err)
	var req contract.SignRequest
	require.NoError(t, v.Get(&req))
	require.Equal(t, a.Usage.Signer.PubKey, req.Receipt.Provider)
	dms := &usageDMs{}
	a.Rails.DM = dms
	_, err = env.ExecuteActivity(a.UsageSend, UsageSendInput{Signed: &req, Attempt: 2, Send: 2, NotifyDM: true, At: now})
	require.NoError(t, err)
	require.Equal(t, []string{string(payer)}, dms.to, "the payer opted in: a DM too")
	require.Contains(t, dms.msgs[0], req.ReceiptID)
	require.NotContains(t, dms.msgs[0], usageEngineKey)
	var n int
	require.NoError(t, a.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'usage.sign_request'`).Scan(&n))
	require.Equal(t, 2, n, "a re-send is a new event")

	ans, err := receipts.SignAs(usagePayerKey, req.Receipt, now)
	require.NoError(t, err)
	v, err = env.ExecuteActivity(a.UsagePay, UsagePayInput{Request: req, Answer: ans, At: now})
	require.NoError(t, err)
	var paid UsagePayResult
	require.NoError(t, v.Get(&paid))
	require.True(t, paid.NotEnough, "an empty wallet is a result, not an error")

	_, err = a.Store.Grant(ctx, store.WalletWrite{TenantID: payer, Key: "g", Amount: 15})
	require.NoError(t, err)
	for i, dup := range []bool{false, true} {
		v, err = env.ExecuteActivity(a.UsagePay, UsagePayInput{Request: req, Answer: ans, At: now,
			Stats: []contract.UsageModeStats{{Mode: "paid", Seconds: 5}}})
		require.NoError(t, err)
		require.NoError(t, v.Get(&paid))
		require.True(t, paid.Paid, "try %d", i)
		require.Equal(t, dup, paid.Duplicate)
		require.Equal(t, int64(5), paid.Spendable)
	}
	bad := ans
	bad.Sig = ans.Sig[:127] + "0"
	if bad.Sig == ans.Sig {
		bad.Sig = ans.Sig[:127] + "1"
	}
	_, err = env.ExecuteActivity(a.UsagePay, UsagePayInput{Request: req, Answer: bad, At: now})
	require.Equal(t, models.UsageReceiptBadSignature, usageCode(t, err), "nothing unsigned is paid")

	require.NoError(t, a.Store.SetUsageSessionState(ctx, "s1", store.UsageSessionWaitingFunds, now))
	_, err = env.ExecuteActivity(a.UsageEnd, UsageEndInput{SessionID: "s1", Payer: payer, ServiceID: "vpn", Unit: models.UnitSeconds,
		Settle: 10, Remain: 20, Stats: []contract.UsageModeStats{{Mode: "paid", Seconds: 30}}, At: now})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.UsageEnd, UsageEndInput{SessionID: "s1", Payer: payer, ServiceID: "vpn", Unit: models.UnitSeconds,
		Settle: 10, Remain: 20, Stats: []contract.UsageModeStats{{Mode: "paid", Seconds: 30}}, At: now})
	require.NoError(t, err, "the end is idempotent")
	w, err := a.Store.WalletState(ctx, payer)
	require.NoError(t, err)
	require.Equal(t, int64(5), w.Spendable)
	require.Zero(t, w.Unsettled)
	remain, err := a.Store.UsageRemain(ctx, payer, "vpn", models.UnitSeconds)
	require.NoError(t, err)
	require.Equal(t, int64(20), remain)
	stats, err := a.Store.UsageStatsOf(ctx, "vpn", payer)
	require.NoError(t, err)
	require.Equal(t, int64(35), stats[0].Seconds)
	waiting, err := a.Store.WaitingUsageSessions(ctx, payer)
	require.NoError(t, err)
	require.Empty(t, waiting)
}

// usageDMs records DMs.
type usageDMs struct {
	to, msgs []string
}

func (d *usageDMs) Send(_ context.Context, to, msg string) (dm.Sent, error) {
	d.to, d.msgs = append(d.to, to), append(d.msgs, msg)
	return dm.Sent{}, nil
}
