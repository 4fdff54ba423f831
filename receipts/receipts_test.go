package receipts

import (
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

const (
	engineKey = "0000000000000000000000000000000000000000000000000000000000000001"
	payerKey  = "0000000000000000000000000000000000000000000000000000000000000002"
	otherKey  = "0000000000000000000000000000000000000000000000000000000000000003"
)

func receipt(t *testing.T) (contract.Receipt, models.TenantID) {
	pk, err := nostr.GetPublicKey(payerKey)
	require.NoError(t, err)
	return contract.Receipt{Version: 2, SessionID: "s1", ServiceID: "vpn", Payer: models.TenantID(pk), Unit: models.UnitSeconds,
		Units: 60, UnitPrice: 10, PriceUnits: 60, Value: 10, Currency: "usd", Seq: 1}, models.TenantID(pk)
}

func TestIDIsStableAndContentBound(t *testing.T) {
	r, _ := receipt(t)
	require.Equal(t, ID(r), ID(r))
	require.Len(t, ID(r), 64)
	r2 := r
	r2.Seq = 2
	require.NotEqual(t, ID(r), ID(r2))
	require.Equal(t, `[2,"s1","vpn","`+string(r.Payer)+`","","SEC",60,10,60,10,"usd",1,""]`, string(Canonical(r)))
}

func TestEngineSignsAndPayerAnswerVerifies(t *testing.T) {
	s, err := NewSigner(engineKey)
	require.NoError(t, err)
	require.NotContains(t, s.String(), engineKey)
	r, payer := receipt(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req, err := s.Sign(r, at)
	require.NoError(t, err)
	require.Equal(t, s.PubKey, req.Receipt.Provider)
	require.Equal(t, ID(req.Receipt), req.ReceiptID)
	// The engine's own event verifies as an event by the engine.
	require.Nil(t, Verify(req.Event, models.TenantID(s.PubKey), req.ReceiptID))

	ans, err := SignAs(payerKey, req.Receipt, at)
	require.NoError(t, err)
	require.Nil(t, Verify(ans, payer, req.ReceiptID))

	// Wrong key: a valid event by someone else.
	other, err := SignAs(otherKey, req.Receipt, at)
	require.NoError(t, err)
	require.Equal(t, models.UsageReceiptWrongPayer, Verify(other, payer, req.ReceiptID).Code)
	// Wrong receipt.
	r2 := req.Receipt
	r2.Seq = 9
	wrong, err := SignAs(payerKey, r2, at)
	require.NoError(t, err)
	require.Equal(t, models.UsageReceiptCantFind, Verify(wrong, payer, req.ReceiptID).Code)
	// Tampered: content changed after signing.
	bad := ans
	bad.Content = strings.Replace(bad.Content, "60", "61", 1)
	require.Equal(t, models.UsageReceiptBadSignature, Verify(bad, payer, req.ReceiptID).Code)
	bad = ans
	bad.Sig = strings.Repeat("0", 128)
	require.Equal(t, models.UsageReceiptBadSignature, Verify(bad, payer, req.ReceiptID).Code)
	// Version 1.
	r1 := req.Receipt
	r1.Version = 1
	v1, err := SignAs(payerKey, r1, at)
	require.NoError(t, err)
	require.Equal(t, models.UsageReceiptBadVersion, Verify(v1, payer, ID(r1)).Code)
}

func TestNewSignerRejectsBadKeysWithoutEchoingThem(t *testing.T) {
	for _, k := range []string{"", "xyz", strings.Repeat("0", 64), "abc" + strings.Repeat("1", 61) + "zz"} {
		_, err := NewSigner(k)
		require.Error(t, err)
		if k != "" {
			require.NotContains(t, err.Error(), k)
		}
	}
}
