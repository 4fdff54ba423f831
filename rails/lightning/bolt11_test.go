package lightning_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Deterministic test identities: invoices signed with them are the same on
// every run (RFC 6979 signatures), so they can seed the fuzzer too.
var (
	testKey, _  = btcec.PrivKeyFromBytes(sha(t0Seed))
	otherKey, _ = btcec.PrivKeyFromBytes(sha("billflow-other-node"))
	testPayee   = hex.EncodeToString(testKey.PubKey().SerializeCompressed())
	created     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

const t0Seed = "billflow-test-node"

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

type invoiceSpec struct {
	net    *chaincfg.Params
	msat   int64 // 0: no amount
	expiry time.Duration
	signer *btcec.PrivateKey
	// withPayee adds the payee as an explicit 'n' field, so that a wrong
	// signature is detected instead of recovering another key.
	withPayee *btcec.PublicKey
	descHash  bool
}

// makeInvoice encodes an invoice as an lnd node would.
func makeInvoice(t testing.TB, s invoiceSpec) string {
	t.Helper()
	if s.net == nil {
		s.net = &chaincfg.RegressionNetParams
	}
	if s.signer == nil {
		s.signer = testKey
	}
	var hash [32]byte
	copy(hash[:], sha("preimage"))
	opts := []func(*zpay32.Invoice){zpay32.PaymentAddr([32]byte(sha("addr")))}
	if s.descHash {
		opts = append(opts, zpay32.DescriptionHash([32]byte(sha("a long description"))))
	} else {
		opts = append(opts, zpay32.Description("billflow invoice"))
	}
	if s.msat > 0 {
		opts = append(opts, zpay32.Amount(lnwire.MilliSatoshi(s.msat)))
	}
	if s.expiry > 0 {
		opts = append(opts, zpay32.Expiry(s.expiry))
	}
	if s.withPayee != nil {
		opts = append(opts, zpay32.Destination(s.withPayee))
	}
	inv, err := zpay32.NewInvoice(s.net, hash, created, opts...)
	require.NoError(t, err)
	out, err := inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(s.signer, chainhash.HashB(msg), true)
	}})
	require.NoError(t, err)
	return out
}

// reencode rewrites an invoice's bech32 parts and recomputes the checksum,
// as an attacker would: the result is well-formed but the signature no
// longer covers it.
func reencode(t testing.TB, bolt11 string, edit func(hrp string, data []byte) (string, []byte)) string {
	t.Helper()
	hrp, data, err := bech32.DecodeNoLimit(bolt11)
	require.NoError(t, err)
	hrp, data = edit(hrp, data)
	out, err := bech32.Encode(hrp, data)
	require.NoError(t, err)
	return out
}

func expect(msat int64) lightning.Expectation {
	return lightning.Expectation{Network: &chaincfg.RegressionNetParams, AmountMsat: msat, Now: created.Add(time.Minute)}
}

func TestValidateBOLT11Accepts(t *testing.T) {
	bolt11 := makeInvoice(t, invoiceSpec{msat: 2_000_000, expiry: 10 * time.Minute})
	d, err := lightning.ValidateBOLT11(bolt11, expect(2_000_000))
	require.NoError(t, err)
	assert.Equal(t, lightning.Decoded{
		PaymentHash: hex.EncodeToString(sha("preimage")),
		AmountMsat:  2_000_000,
		Network:     "regtest",
		Payee:       testPayee,
		Description: "billflow invoice",
		CreatedAt:   created,
		Expiry:      10 * time.Minute,
		ExpiresAt:   created.Add(10 * time.Minute),
	}, d)

	// Pinned payee, any case; BOLT11 is case-insensitive as a whole.
	want := expect(2_000_000)
	want.Payee = strings.ToUpper(testPayee)
	_, err = lightning.ValidateBOLT11(strings.ToUpper(bolt11), want)
	require.NoError(t, err)

	// Without an expiry field BOLT11 means one hour.
	d, err = lightning.ValidateBOLT11(makeInvoice(t, invoiceSpec{msat: 1}), expect(1))
	require.NoError(t, err)
	assert.Equal(t, time.Hour, d.Expiry)

	d, err = lightning.ValidateBOLT11(makeInvoice(t, invoiceSpec{msat: 1, descHash: true}), expect(1))
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(sha("a long description")), d.DescriptionHash)
	assert.Empty(t, d.Description)
}

func TestValidateBOLT11Rejects(t *testing.T) {
	valid := makeInvoice(t, invoiceSpec{msat: 2_000_000, expiry: 10 * time.Minute})
	withAt := func(now time.Time) lightning.Expectation {
		e := expect(2_000_000)
		e.Now = now
		return e
	}
	onNet := func(net *chaincfg.Params) lightning.Expectation {
		e := expect(2_000_000)
		e.Network = net
		return e
	}
	payee := func(p string) lightning.Expectation {
		e := expect(2_000_000)
		e.Payee = p
		return e
	}
	flipped := []byte(valid)
	flipped[len(flipped)/2] ^= 0x01 // breaks the bech32 checksum

	for _, tc := range []struct {
		name   string
		bolt11 string
		want   lightning.Expectation
		reason lightning.InvalidReason
		detail string
	}{
		{"empty", "", expect(1), lightning.ReasonMalformed, ""},
		{"garbage", "hello world", expect(1), lightning.ReasonMalformed, ""},
		{"truncated", valid[:len(valid)-10], expect(2_000_000), lightning.ReasonMalformed, ""},
		{"hrp only", "lnbcrt1", expect(1), lightning.ReasonMalformed, ""},
		{"bad checksum", string(flipped), expect(2_000_000), lightning.ReasonMalformed, ""},
		{"mixed case", valid[:10] + strings.ToUpper(valid[10:]), expect(2_000_000), lightning.ReasonMalformed, ""},
		{
			"signature does not match the n field",
			reencode(t, makeInvoice(t, invoiceSpec{msat: 2_000_000, withPayee: testKey.PubKey()}), func(hrp string, data []byte) (string, []byte) {
				data[len(data)-20] ^= 0x01 // inside the signature
				return hrp, data
			}),
			expect(2_000_000), lightning.ReasonMalformed, "signature",
		},
		{
			// Without an n field BOLT11 recovers the payee from the
			// signature, so a re-checksummed amount decodes, "signed" by
			// some other key: only a pinned payee catches it.
			"amount rewritten, payee pinned",
			reencode(t, valid, func(hrp string, data []byte) (string, []byte) {
				return strings.Replace(hrp, "20u", "30u", 1), data
			}),
			payee(testPayee), lightning.ReasonWrongPayee, "expected " + testPayee,
		},
		{"mainnet invoice on regtest", makeInvoice(t, invoiceSpec{net: &chaincfg.MainNetParams, msat: 2_000_000}), expect(2_000_000), lightning.ReasonWrongNetwork, "mainnet"},
		{"regtest invoice on mainnet", valid, onNet(&chaincfg.MainNetParams), lightning.ReasonWrongNetwork, "invoice is for regtest, expected mainnet"},
		{"regtest invoice on testnet", valid, onNet(&chaincfg.TestNet3Params), lightning.ReasonWrongNetwork, ""},
		{"signet invoice on testnet", makeInvoice(t, invoiceSpec{net: &chaincfg.SigNetParams, msat: 2_000_000}), onNet(&chaincfg.TestNet3Params), lightning.ReasonWrongNetwork, "signet"},
		{"simnet invoice on regtest", makeInvoice(t, invoiceSpec{net: &chaincfg.SimNetParams, msat: 2_000_000}), expect(2_000_000), lightning.ReasonWrongNetwork, "simnet"},
		{"wrong payee", valid, payee(hex.EncodeToString(otherKey.PubKey().SerializeCompressed())), lightning.ReasonWrongPayee, testPayee},
		{"no amount", makeInvoice(t, invoiceSpec{}), expect(2_000_000), lightning.ReasonMissingAmount, "expected 2000000 msat"},
		{"one msat more", valid, expect(1_999_999), lightning.ReasonAmountMismatch, "invoice asks 2000000 msat, expected 1999999 msat"},
		{"one msat less", valid, expect(2_000_001), lightning.ReasonAmountMismatch, ""},
		{"at expiry", valid, withAt(created.Add(10 * time.Minute)), lightning.ReasonExpired, "expired at 2026-03-01T12:10:00Z"},
		{"after expiry", valid, withAt(created.Add(time.Hour)), lightning.ReasonExpired, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lightning.ValidateBOLT11(tc.bolt11, tc.want)
			var bad *lightning.InvalidInvoiceError
			require.ErrorAs(t, err, &bad)
			assert.Equal(t, tc.reason, bad.Reason, err.Error())
			assert.Contains(t, err.Error(), "invalid BOLT11 invoice ("+tc.reason.String()+")")
			assert.Contains(t, err.Error(), tc.detail)
			if len(tc.bolt11) > 20 {
				assert.NotContains(t, err.Error(), tc.bolt11, "the invoice is not echoed")
			}
		})
	}

	// One second before expiry it is still payable.
	_, err := lightning.ValidateBOLT11(valid, withAt(created.Add(10*time.Minute-time.Second)))
	require.NoError(t, err)
}

func TestValidateBOLT11RejectsBadExpectations(t *testing.T) {
	valid := makeInvoice(t, invoiceSpec{msat: 1000})
	_, err := lightning.ValidateBOLT11(valid, lightning.Expectation{AmountMsat: 1000})
	assert.ErrorIs(t, err, lightning.ErrInvalidRequest)
	for _, amt := range []int64{0, -1000} {
		e := expect(amt)
		_, err = lightning.ValidateBOLT11(valid, e)
		assert.ErrorIs(t, err, lightning.ErrInvalidRequest)
	}
}

func TestInvalidReasonStrings(t *testing.T) {
	seen := map[string]bool{}
	for r := lightning.ReasonMalformed; r <= lightning.ReasonExpired; r++ {
		s := r.String()
		assert.NotContains(t, s, "InvalidReason(")
		assert.False(t, seen[s])
		seen[s] = true
	}
	assert.Equal(t, "InvalidReason(99)", lightning.InvalidReason(99).String())
}

// TestRewrittenInvoiceNeedsAPinnedPayee documents a BOLT11 property the
// engine must design around: a rewritten amount with a fresh checksum
// decodes, its payee recovered as some unrelated key. Checking the amount
// is then not enough; the payee must be pinned when it is known.
func TestRewrittenInvoiceNeedsAPinnedPayee(t *testing.T) {
	valid := makeInvoice(t, invoiceSpec{msat: 2_000_000, expiry: 10 * time.Minute})
	rewritten := reencode(t, valid, func(hrp string, data []byte) (string, []byte) {
		return strings.Replace(hrp, "20u", "30u", 1), data
	})
	d, err := lightning.ValidateBOLT11(rewritten, expect(3_000_000))
	require.NoError(t, err)
	assert.NotEqual(t, testPayee, d.Payee)

	want := expect(3_000_000)
	want.Payee = testPayee
	_, err = lightning.ValidateBOLT11(rewritten, want)
	var bad *lightning.InvalidInvoiceError
	require.ErrorAs(t, err, &bad)
	assert.Equal(t, lightning.ReasonWrongPayee, bad.Reason)
}
