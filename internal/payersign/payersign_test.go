package payersign

import (
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/receipts"
)

func request() contract.SignRequest {
	return contract.SignRequest{ReceiptID: "rcpt-1", Receipt: contract.Receipt{Version: 2, Seq: 1},
		Event: contract.NostrEvent{ID: strings.Repeat("ab", 32)}}
}

// The payer's event: kind EventKind, tags e (the engine's event) and r
// (the receipt), content the receipt id, signed by the payer's key; any
// change breaks it.
func TestSignAndVerify(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	pk, err := PublicKey(sk)
	require.NoError(t, err)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ev, err := Sign(sk, request(), at)
	require.NoError(t, err)
	assert.Equal(t, EventKind, ev.Kind)
	assert.Equal(t, pk, ev.PubKey)
	assert.Equal(t, at.Unix(), ev.CreatedAt)
	assert.Equal(t, [][]string{{"receipt", "rcpt-1"}, {"v", "2"}, {"e", strings.Repeat("ab", 32)}}, ev.Tags)
	assert.Equal(t, string(receipts.Canonical(request().Receipt)), ev.Content, "the content is the canonical receipt")
	assert.Equal(t, "rcpt-1", ReceiptID(ev))
	require.NoError(t, Verify(ev))

	tampered := ev
	tampered.Tags = [][]string{{"receipt", "rcpt-2"}, {"v", "2"}, {"e", strings.Repeat("ab", 32)}}
	assert.ErrorContains(t, Verify(tampered), "id")
	wrongKind := ev
	wrongKind.Kind = 1
	assert.ErrorContains(t, Verify(wrongKind), "kind 1")
	badSig := ev
	badSig.Sig = strings.Repeat("0", 128)
	assert.ErrorContains(t, Verify(badSig), "signature")

	_, err = Sign(sk, contract.SignRequest{}, at)
	assert.Error(t, err, "a request without a receipt is not signed")
}

func TestParseSecretKey(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	got, err := ParseSecretKey("  " + strings.ToUpper(sk) + "\n")
	require.NoError(t, err)
	assert.Equal(t, sk, got)
	nsec, err := nip19.EncodePrivateKey(sk)
	require.NoError(t, err)
	got, err = ParseSecretKey(nsec)
	require.NoError(t, err)
	assert.Equal(t, sk, got)
	for _, bad := range []string{"", "nsec1xyz", strings.Repeat("g", 64), strings.Repeat("0", 64), sk[:62]} {
		_, err := ParseSecretKey(bad)
		assert.Error(t, err, "%q", bad)
		if bad != "" {
			assert.NotContains(t, err.Error(), bad, "the error never repeats the key")
		}
	}
}
