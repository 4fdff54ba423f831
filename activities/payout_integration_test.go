//go:build integration

package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/store"
)

// payoutNode is a scripted node: Lookup answers what was paid; Pay
// records each call and answers next.
type payoutNode struct {
	mu   sync.Mutex
	paid map[string]PayoutPayment
	pays int
	next PayoutPayment
	err  error
}

func (n *payoutNode) Pay(_ context.Context, bolt11 string, _ int64) (PayoutPayment, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pays++
	if n.err != nil {
		return PayoutPayment{}, n.err
	}
	inv, err := zpay32.Decode(bolt11, &chaincfg.RegressionNetParams)
	if err != nil {
		return PayoutPayment{}, err
	}
	if n.paid == nil {
		n.paid = map[string]PayoutPayment{}
	}
	n.paid[hex.EncodeToString(inv.PaymentHash[:])] = n.next
	return n.next, nil
}

func (n *payoutNode) Lookup(_ context.Context, hash string) (PayoutPayment, bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.paid[hash]
	return p, ok, nil
}

// payoutNotifier also resumes payouts.
type payoutNotifier struct {
	balanceNotifier
	resumed []string
}

func (n *payoutNotifier) ResumePayout(_ context.Context, _ models.TenantID, key string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resumed = append(n.resumed, key)
	return nil
}

var (
	payeeKey, _  = btcec.PrivKeyFromBytes(chainhash.HashB([]byte("tenant payee node")))
	engineKey, _ = btcec.PrivKeyFromBytes(chainhash.HashB([]byte("engine node")))
)

// bolt11For is an invoice of the tenant's node (or signer's) for msat.
func bolt11For(t *testing.T, net *chaincfg.Params, signer *btcec.PrivateKey, seed string, msat int64, created time.Time, expiry time.Duration) (string, string) {
	t.Helper()
	hash := sha256.Sum256([]byte(seed))
	inv, err := zpay32.NewInvoice(net, hash, created, zpay32.Amount(lnwire.MilliSatoshi(msat)), zpay32.Expiry(expiry),
		zpay32.Description("withdrawal"), zpay32.PaymentAddr(sha256.Sum256([]byte("addr"+seed))))
	require.NoError(t, err)
	out, err := inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(signer, chainhash.HashB(msg), true)
	}})
	require.NoError(t, err)
	return out, hex.EncodeToString(hash[:])
}

func payoutWorld(t *testing.T) (*Activities, *payoutNode, *payoutNotifier, models.TenantID) {
	a, node, n, tenant, _ := payoutWorldEnv(t)
	return a, node, n, tenant
}

func payoutWorldEnv(t *testing.T) (*Activities, *payoutNode, *payoutNotifier, models.TenantID, *testsuite.TestActivityEnvironment) {
	t.Helper()
	a, _, env, tenant := balanceWorld(t)
	node := &payoutNode{}
	n := &payoutNotifier{}
	rates, err := lightning.ParseStaticRate("usd=2000000")
	require.NoError(t, err)
	a.Notify = n
	a.Rails = Rails{Payouts: node, Rates: rates, Network: &chaincfg.RegressionNetParams,
		Payee: hex.EncodeToString(engineKey.PubKey().SerializeCompressed())}
	_, err = a.Store.Deposit(context.Background(), store.WalletWrite{TenantID: tenant, Key: "pay-1", Amount: 1000})
	require.NoError(t, err)
	return a, node, n, tenant, env
}

func requireAppError(t *testing.T, err error, typ string, contains string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, typ, appErr.Type())
	assert.Contains(t, appErr.Message(), contains)
	assert.True(t, appErr.NonRetryable())
}

// Each way a payout invoice can be wrong is refused with a message naming
// it, and refused requests record nothing.
func TestRequestWithdrawalChecksTheInvoice(t *testing.T) {
	a, _, n, tenant := payoutWorld(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// 5.00 USD at 2,000,000 msat per dollar is 10,000,000 msat.
	good, hash := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, "good", 10_000_000, now, time.Hour)
	req := func(bolt11 string, amount int64) RequestWithdrawalInput {
		return RequestWithdrawalInput{Request: contract.WithdrawalRequest{TenantID: tenant, Key: "w-" + bolt11[len(bolt11)-8:], Amount: amount, BOLT11: bolt11}, At: now}
	}
	mainnet, _ := bolt11For(t, &chaincfg.MainNetParams, payeeKey, "mainnet", 10_000_000, now, time.Hour)
	wrongAmount, _ := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, "amount", 9_999_000, now, time.Hour)
	expiring, _ := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, "expiring", 10_000_000, now, 30*time.Second)
	own, _ := bolt11For(t, &chaincfg.RegressionNetParams, engineKey, "own", 10_000_000, now, time.Hour)
	for name, c := range map[string]struct {
		in   RequestWithdrawalInput
		typ  string
		want string
	}{
		"another network": {req(mainnet, 500), ErrValidation, "bolt11"},
		"wrong amount":    {req(wrongAmount, 500), ErrValidation, "a withdrawal of 5.00 USD pays 10000000 msat"},
		"expiring soon":   {req(expiring, 500), ErrValidation, "expires within 1m0s"},
		"engine's own":    {req(own, 500), ErrValidation, "the engine's own"},
		"not a bolt11":    {req("lnbcrt1garbage", 500), ErrValidation, "bolt11"},
		"above withdrawable": {func() RequestWithdrawalInput {
			big, _ := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, "big", 40_000_000, now, time.Hour)
			return req(big, 2000)
		}(), ErrNotEnough, "withdrawable"},
		"both bolt11 and reference": {func() RequestWithdrawalInput {
			r := req(good, 500)
			r.Request.Reference = "bank-1"
			return r
		}(), ErrValidation, "either bolt11 or reference"},
		"currency mismatch": {func() RequestWithdrawalInput {
			r := req(good, 500)
			r.Request.Currency = "eur"
			return r
		}(), ErrValidation, "eur does not match the wallet's currency usd"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := a.RequestWithdrawal(ctx, c.in)
			requireAppError(t, err, c.typ, c.want)
		})
	}
	open, err := a.Store.OpenWithdrawals(ctx, tenant)
	require.NoError(t, err)
	require.Empty(t, open, "refused requests record nothing")

	// Without a payout node the engine refuses Lightning withdrawals.
	node := a.Rails.Payouts
	a.Rails.Payouts = nil
	_, err = a.RequestWithdrawal(ctx, req(good, 500))
	requireAppError(t, err, ErrValidation, "not configured")
	a.Rails.Payouts = node

	res, err := a.RequestWithdrawal(ctx, req(good, 500))
	require.NoError(t, err)
	assert.Equal(t, contract.WithdrawalRequested, res.Withdrawal.Status)
	assert.Equal(t, hash, res.Withdrawal.PaymentHash)
	assert.Equal(t, int64(10_000_000), res.Withdrawal.AmountMsat)
	assert.Equal(t, int64(500), res.Spendable)
	assert.Equal(t, []contract.BalanceEvent{{Kind: contract.BalanceWithdrawalRequested, Reference: res.Withdrawal.Key}}, n.events)
	again, err := a.RequestWithdrawal(ctx, req(good, 500))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Len(t, n.events, 1, "a retried request tells nothing again")

	// An unknown tenant is NotFound.
	_, err = a.RequestWithdrawal(ctx, RequestWithdrawalInput{Request: contract.WithdrawalRequest{TenantID: models.TenantID("ab" + string(tenant)[2:]), Key: "x", Amount: 1, BOLT11: good}, At: now})
	requireAppError(t, err, ErrNotFound, "does not exist")
}

// PayOut asks the node before paying, so a retry after success pays
// nothing twice; FinishPayout records the preimage, or gives the amount
// back when the payment failed, was refused, or the invoice expired unpaid.
func TestPayOutOnceAndReturnOnFailure(t *testing.T) {
	a, node, _, tenant, env := payoutWorldEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	payOut := func(in PayOutInput) (PayOutResult, error) {
		var r PayOutResult
		v, err := env.ExecuteActivity(a.PayOut, in)
		if err == nil {
			err = v.Get(&r)
		}
		return r, err
	}
	request := func(seed string, amount int64, expiry time.Duration) (string, string) {
		b, hash := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, seed, amount*20_000, now, expiry)
		res, err := a.RequestWithdrawal(ctx, RequestWithdrawalInput{Request: contract.WithdrawalRequest{TenantID: tenant, Key: seed, Amount: amount, BOLT11: b}, At: now})
		require.NoError(t, err)
		return res.Withdrawal.Key, hash
	}
	finish := func(key string, r PayOutResult) contract.WithdrawalResult {
		res, err := a.FinishPayout(ctx, FinishPayoutInput{TenantID: tenant, Key: key, Result: r, At: now})
		require.NoError(t, err)
		return res
	}

	// Success, then a retry of PayOut before and after it was recorded.
	key, _ := request("ok", 300, time.Hour)
	node.next = PayoutPayment{Status: PayoutSucceeded, PreimageHex: "ff01", FeeMsat: 1000}
	r, err := payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.NoError(t, err)
	require.True(t, r.PaidOut)
	r2, err := payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.NoError(t, err)
	assert.Equal(t, r, r2, "a retry finds the first payment")
	assert.Equal(t, 1, node.pays, "paid once")
	done := finish(key, r)
	assert.Equal(t, contract.WithdrawalPaidOut, done.Withdrawal.Status)
	assert.Equal(t, "ff01", done.Withdrawal.Reference)
	assert.Equal(t, int64(700), done.Spendable)
	r3, err := payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.NoError(t, err)
	assert.True(t, r3.Finished)

	// A failed payment gives the amount back.
	key, _ = request("noroute", 200, time.Hour)
	node.next = PayoutPayment{Status: PayoutFailed, FailureReason: "FAILURE_REASON_NO_ROUTE"}
	r, err = payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.NoError(t, err)
	assert.Equal(t, PayoutFailed, r.Status)
	failed := finish(key, r)
	assert.Equal(t, contract.WithdrawalFailed, failed.Withdrawal.Status)
	assert.Equal(t, "FAILURE_REASON_NO_ROUTE", failed.Withdrawal.Failure)
	assert.Equal(t, int64(700), failed.Spendable, "the 2.00 came back")

	// A payment the node refuses to try fails the payout too.
	key, _ = request("refused", 100, time.Hour)
	node.err = ErrPayoutRefused
	r, err = payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.NoError(t, err)
	assert.Equal(t, PayoutFailed, r.Status)
	assert.Equal(t, int64(700), finish(key, r).Spendable)

	// A node that cannot be reached, or a payment in flight, is retried.
	key, hash := request("flight", 100, time.Hour)
	node.err = errors.New("connection refused")
	_, err = payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	assert.False(t, errors.As(err, &appErr) && appErr.NonRetryable(), "unreachable node is retryable")
	node.err = nil
	node.paid[hash] = PayoutPayment{Status: PayoutInFlight}
	pays := node.pays
	_, err = payOut(PayOutInput{TenantID: tenant, Key: key, At: now})
	require.ErrorContains(t, err, "in flight")
	assert.Equal(t, pays, node.pays, "a payment in flight is not paid again")

	// An invoice that expired before the node tried it fails without paying.
	key, _ = request("late", 100, 2*time.Minute)
	pays = node.pays
	r, err = payOut(PayOutInput{TenantID: tenant, Key: key, At: now.Add(time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, PayoutFailed, r.Status)
	assert.Contains(t, r.Failure, "can no longer be paid")
	assert.Equal(t, pays, node.pays)
}

// The lifetime sync lists open payouts and resumes those left for a
// minute (a caller crashed before starting the workflow), not fresh ones.
func TestSyncWalletResumesStalePayouts(t *testing.T) {
	a, _, n, tenant := payoutWorld(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, seed := range []string{"stale", "fresh"} {
		at := now
		if seed == "stale" {
			at = now.Add(-2 * time.Minute)
		}
		b, _ := bolt11For(t, &chaincfg.RegressionNetParams, payeeKey, seed, 2_000_000, at, time.Hour)
		_, err := a.RequestWithdrawal(ctx, RequestWithdrawalInput{Request: contract.WithdrawalRequest{TenantID: tenant, Key: seed, Amount: 100, BOLT11: b}, At: at})
		require.NoError(t, err)
	}
	res, err := a.SyncWallet(ctx, SyncWalletInput{TenantID: tenant, At: now})
	require.NoError(t, err)
	require.Len(t, res.View.OpenPayouts, 2)
	assert.Equal(t, []string{"stale"}, n.resumed)
}

// graceNotifier counts the grace windows opened.
type graceNotifier struct {
	balanceNotifier
	opened []string
}

func (n *graceNotifier) ReportCollectionFailed(_ context.Context, in CollectionFailedInput) error {
	n.opened = append(n.opened, in.InvoiceID)
	return nil
}

// A top-up that could not be collected is not owed: it opens no grace
// window (found by the e2e auto-recharge test: it did before).
func TestTopUpCollectionFailureOpensNoGrace(t *testing.T) {
	a, _, env, tenant := balanceWorld(t)
	n := &graceNotifier{}
	a.Notify = n
	env.RegisterActivity(a)
	top, err := a.Store.CreateTopUp(context.Background(), store.TopUpParams{TenantID: tenant, Key: "k1", Amount: 500})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.ReportCollectionFailed, CollectionFailedInput{TenantID: tenant, InvoiceID: top.ID, Reason: "NWC refused"})
	require.NoError(t, err)
	assert.Empty(t, n.opened, "a failed top-up opens no grace window")
	// An invoice the store does not know still reaches the grace window
	// (the workflow's own input says it was owed).
	_, err = env.ExecuteActivity(a.ReportCollectionFailed, CollectionFailedInput{TenantID: tenant, InvoiceID: "inv-elsewhere", Reason: "declined"})
	require.NoError(t, err)
	assert.Equal(t, []string{"inv-elsewhere"}, n.opened)
}
