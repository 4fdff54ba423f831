package nwc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The JSON shapes below are NIP-47's own examples.
func TestWireShapesMatchNIP47(t *testing.T) {
	b, err := json.Marshal(PayInvoiceRequest{Invoice: "lnbc50n1x", AmountMsat: 123})
	require.NoError(t, err)
	assert.JSONEq(t, `{"invoice":"lnbc50n1x","amount":123}`, string(b))
	b, err = json.Marshal(PayInvoiceRequest{Invoice: "lnbc50n1x"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"invoice":"lnbc50n1x"}`, string(b), "amount is omitted when the invoice has one")

	b, err = json.Marshal(MakeInvoiceRequest{AmountMsat: 123, Description: "d", Expiry: 213 * time.Second})
	require.NoError(t, err)
	assert.JSONEq(t, `{"amount":123,"description":"d","expiry":213}`, string(b))
	var mi MakeInvoiceRequest
	require.NoError(t, json.Unmarshal(b, &mi))
	assert.Equal(t, 213*time.Second, mi.Expiry)

	var tx Transaction
	require.NoError(t, json.Unmarshal([]byte(`{
		"type":"incoming","invoice":"lnbc1","description":"d","preimage":"00",
		"payment_hash":"ab","amount":123,"fees_paid":1,"created_at":1700000000,
		"expires_at":1700003600,"settled_at":1700000100,"metadata":{}}`), &tx))
	assert.Equal(t, TransactionIncoming, tx.Type)
	assert.Equal(t, int64(123), tx.AmountMsat)
	assert.Equal(t, time.Unix(1700000100, 0).UTC(), tx.SettledAt)
	assert.True(t, tx.Settled())
	back, err := json.Marshal(tx)
	require.NoError(t, err)
	var again Transaction
	require.NoError(t, json.Unmarshal(back, &again))
	assert.Equal(t, tx, again)

	var unsettled Transaction
	require.NoError(t, json.Unmarshal([]byte(`{"type":"incoming","payment_hash":"ab","amount":1,"created_at":1}`), &unsettled))
	assert.False(t, unsettled.Settled())

	var resp Response
	require.NoError(t, json.Unmarshal([]byte(`{"result_type":"pay_invoice","error":{"code":"UNAUTHORIZED","message":"human readable error message"},"result":null}`), &resp))
	require.NotNil(t, resp.Error)
	assert.Equal(t, CodeUnauthorized, resp.Error.Code)

	var info InfoResult
	require.NoError(t, json.Unmarshal([]byte(`{"alias":"a","color":"#fff","pubkey":"p","network":"regtest","block_height":1,"block_hash":"h","methods":["pay_invoice","get_info"],"notifications":["payment_received"]}`), &info))
	assert.Equal(t, []string{"pay_invoice", "get_info"}, info.Methods)
	assert.Equal(t, uint32(1), info.BlockHeight)
}

func TestInfoEventRoundTripAndLegacy(t *testing.T) {
	ev := InfoEvent(WalletInfo{
		Methods:       []string{MethodPayInvoice, MethodGetBalance},
		Encryptions:   []Encryption{EncryptionNIP44v2, EncryptionNIP04},
		Notifications: []string{"payment_received"},
	})
	assert.Equal(t, KindInfo, ev.Kind)
	assert.Equal(t, "pay_invoice get_balance", ev.Content)
	assert.Equal(t, nostr.Tag{"encryption", "nip44_v2 nip04"}, *ev.Tags.GetFirst([]string{"encryption"}))
	info, err := ParseInfoEvent(&ev)
	require.NoError(t, err)
	assert.Equal(t, []Encryption{EncryptionNIP44v2, EncryptionNIP04}, info.Encryptions)
	assert.Equal(t, EncryptionNIP44v2, info.Preferred())
	assert.True(t, info.Supports(MethodPayInvoice))
	assert.False(t, info.Supports(MethodMakeInvoice))
	assert.Equal(t, []string{"payment_received"}, info.Notifications)

	// NIP-47's appendix example: no encryption tag means NIP-04 only.
	legacy := nostr.Event{Kind: KindInfo, Content: "pay_invoice get_balance", Tags: nostr.Tags{{"notifications", "payment_received payment_sent"}}}
	info, err = ParseInfoEvent(&legacy)
	require.NoError(t, err)
	assert.Equal(t, []Encryption{EncryptionNIP04}, info.Encryptions)
	assert.Equal(t, EncryptionNIP04, info.Preferred())

	// One value per tag element is read too.
	split := nostr.Event{Kind: KindInfo, Tags: nostr.Tags{{"encryption", "nip04", "nip44_v2"}}}
	info, err = ParseInfoEvent(&split)
	require.NoError(t, err)
	assert.Equal(t, EncryptionNIP44v2, info.Preferred())

	_, err = ParseInfoEvent(&nostr.Event{Kind: 1})
	assert.Error(t, err)
}

func TestRequestTags(t *testing.T) {
	ev := nostr.Event{Tags: nostr.Tags{{"expiration", "1700000000"}, {"encryption", "nip44_v2"}}}
	exp, ok := Expiration(&ev)
	assert.True(t, ok)
	assert.Equal(t, int64(1700000000), exp.Unix())
	assert.Equal(t, EncryptionNIP44v2, RequestEncryption(&ev))

	none := nostr.Event{Tags: nostr.Tags{{"expiration", "soon"}}}
	_, ok = Expiration(&none)
	assert.False(t, ok)
	assert.Equal(t, EncryptionNIP04, RequestEncryption(&none))
}

func TestEncryptDecryptBothSchemes(t *testing.T) {
	walletSK := nostr.GeneratePrivateKey()
	walletPub, err := nostr.GetPublicKey(walletSK)
	require.NoError(t, err)
	clientPub, err := nostr.GetPublicKey(testSecret)
	require.NoError(t, err)
	for _, enc := range []Encryption{EncryptionNIP44v2, EncryptionNIP04} {
		t.Run(string(enc), func(t *testing.T) {
			ct, err := EncryptContent(enc, testSecret, walletPub, `{"method":"get_balance","params":{}}`)
			require.NoError(t, err)
			assert.Equal(t, enc, SniffEncryption(ct))
			pt, err := DecryptContent(enc, walletSK, clientPub, ct)
			require.NoError(t, err)
			assert.Equal(t, `{"method":"get_balance","params":{}}`, pt)
		})
	}
	_, err = EncryptContent("rot13", testSecret, walletPub, "x")
	assert.Error(t, err)
}

func TestDecryptRejectsHostilePayloadsWithoutPanicking(t *testing.T) {
	walletSK := nostr.GeneratePrivateKey()
	clientPub, err := nostr.GetPublicKey(testSecret)
	require.NoError(t, err)
	hostile := []string{
		"", "?iv=", "AAAA?iv=AAAA", "AAAAAAAAAAAAAAAAAAAAAA==?iv=AA==",
		"AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAAAAAAAAAAAAAAAAAAAA==?iv=x",
		"AAAAAAAAAAAAAAAAAAAA?iv=AAAAAAAAAAAAAAAAAAAAAA==", // 15 bytes: not whole blocks
		strings.Repeat("A", 200), "#" + strings.Repeat("A", 200),
	}
	for _, enc := range []Encryption{EncryptionNIP04, EncryptionNIP44v2} {
		for _, h := range hostile {
			assert.NotPanics(t, func() { _, _ = DecryptContent(enc, walletSK, clientPub, h) }, "%s %q", enc, h)
		}
	}
	// A bad peer key must not echo our secret back in the error.
	_, err = EncryptContent(EncryptionNIP44v2, testSecret, "zz", "x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testSecret)
	_, err = EncryptContent(EncryptionNIP04, testSecret, "zz", "x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testSecret)
}
