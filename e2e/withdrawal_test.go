//go:build integration

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
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

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// payout waits for a withdrawal's payout workflow to end and returns its result.
func (s *stack) payout(tenant models.TenantID, key string) workflows.PayoutResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.PayoutResult
	require.NoError(s.t, s.temporal.GetWorkflow(ctx, contract.PayoutWorkflowID(tenant, key), "").Get(ctx, &res))
	return res
}

// strangerInvoice is a valid regtest BOLT11 of a node no route reaches.
func strangerInvoice(t *testing.T, msat int64) string {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	var hash [32]byte
	copy(hash[:], chainhash.HashB([]byte(t.Name()+time.Now().String())))
	inv, err := zpay32.NewInvoice(&chaincfg.RegressionNetParams, hash, time.Now(), zpay32.Amount(lnwire.MilliSatoshi(msat)),
		zpay32.Expiry(time.Hour), zpay32.Description("withdrawal"), zpay32.PaymentAddr(hash))
	require.NoError(t, err)
	out, err := inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(key, chainhash.HashB(msg), true)
	}})
	require.NoError(t, err)
	return out
}

// A withdrawal over the sandbox node: requested through the api (the
// amount leaves spendable at once), paid to the tenant's invoice by the
// engine's node over the router RPCs, recorded with the preimage; the
// same request again pays nothing twice. A payout no route reaches gives
// the amount back; an invoice for the wrong amount is refused up front,
// naming the msat the withdrawal pays.
func TestWithdrawalPaidOutOverLightning(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	s.startWorker()
	u := s.newTenant(r, payer{})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "bank-transfer-1", Amount: 1000})
	require.NoError(t, err)

	// 5.00 USD at 2,000,000 msat per dollar.
	bolt11, hash, err := r.node.PayeeInvoice(ctx, 10_000_000, "withdrawal to the tenant", time.Hour)
	require.NoError(t, err)
	path := "/v1/tenants/" + string(u.id) + "/wallet/withdrawals"
	var accepted contract.WithdrawalResult
	code := r.apiCall(t, http.MethodPost, path, map[string]any{"amount": 500, "key": "w-1", "bolt11": bolt11}, &accepted)
	require.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, contract.WithdrawalRequested, accepted.Withdrawal.Status)
	assert.Equal(t, hash, accepted.Withdrawal.PaymentHash)
	assert.Equal(t, int64(500), accepted.Spendable, "the withdrawal leaves spendable at request time")

	res := s.payout(u.id, "w-1")
	require.Equal(t, contract.WithdrawalPaidOut, res.Status, "%+v", res)
	pre, err := hex.DecodeString(res.Withdrawal.Reference)
	require.NoError(t, err)
	sum := sha256.Sum256(pre)
	assert.Equal(t, hash, hex.EncodeToString(sum[:]), "the reference is the payment's preimage")
	settled, amt, err := r.node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.True(t, settled)
	assert.Equal(t, int64(10_000_000), amt)
	w, err := s.store.Withdrawal(ctx, u.id, "w-1")
	require.NoError(t, err)
	assert.Equal(t, store.WithdrawalPaidOut, w.Status)
	_, events := s.historyText(contract.PayoutWorkflowID(u.id, "w-1"))
	t.Logf("WithdrawalPayout history (Lightning, paid out): %d events", events)
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, contract.PayoutWorkflowID(u.id, "w-1"), "", "withdrawal_payout_paid.json")
	}

	// The same request again: answered from the record, paid once.
	var again contract.WithdrawalResult
	require.Equal(t, http.StatusOK, r.apiCall(t, http.MethodPost, path, map[string]any{"amount": 500, "key": "w-1", "bolt11": bolt11}, &again))
	assert.True(t, again.Duplicate)
	assert.Equal(t, contract.WithdrawalPaidOut, again.Withdrawal.Status)
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'withdraw'`, u.id))

	// Wrong amount: refused with the msat the withdrawal pays; nothing recorded.
	wrong, _, err := r.node.PayeeInvoice(ctx, 3_000_000, "wrong amount", time.Hour)
	require.NoError(t, err)
	_, err = s.billing.Withdraw(ctx, billing.WithdrawalRequest{TenantID: u.id, Key: "w-wrong", Amount: 200, BOLT11: wrong})
	var ve *billing.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "bolt11", ve.Field)
	assert.Contains(t, ve.Reason, "pays 4000000 msat")
	var ne *billing.NotEnoughError
	big, _, err := r.node.PayeeInvoice(ctx, 20_000_000, "too much", time.Hour)
	require.NoError(t, err)
	_, err = s.billing.Withdraw(ctx, billing.WithdrawalRequest{TenantID: u.id, Key: "w-big", Amount: 1000, BOLT11: big})
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, int64(500), ne.Available)

	// No route to the payee: the payout fails and the 2.00 come back.
	got, err := s.billing.Withdraw(ctx, billing.WithdrawalRequest{TenantID: u.id, Key: "w-2", Amount: 200, BOLT11: strangerInvoice(t, 4_000_000)})
	require.NoError(t, err)
	assert.Equal(t, int64(300), got.Spendable)
	res = s.payout(u.id, "w-2")
	require.Equal(t, contract.WithdrawalFailed, res.Status, "%+v", res)
	assert.Contains(t, res.Withdrawal.Failure, "NO_ROUTE")
	wal, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	assert.Equal(t, int64(500), wal.Spendable, "the failed payout's amount came back")
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'withdraw_return'`, u.id))
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, s.temporal, contract.PayoutWorkflowID(u.id, "w-2"), "", "withdrawal_payout_failed.json")
	}
}
