package lightning_test

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzNetworks maps the fuzzer's network byte to an expectation's network.
var fuzzNetworks = []*chaincfg.Params{
	&chaincfg.RegressionNetParams,
	&chaincfg.SimNetParams,
	&chaincfg.MainNetParams,
	&chaincfg.TestNet3Params,
	&chaincfg.SigNetParams,
}

// FuzzValidateBOLT11 holds ValidateBOLT11 to two promises on any input: it
// never panics, and it never accepts an invoice whose amount (as a payer's
// wallet decodes it), network or expiry differs from the expectation.
//
// The checked-in corpus (testdata/fuzz/FuzzValidateBOLT11) holds invoices
// issued by the sandbox node over gRPC, then truncated, mutated and paired
// with wrong amounts, networks and instants; `go test -tags fuzzcorpus -run
// TestWriteFuzzCorpus` regenerates it.
func FuzzValidateBOLT11(f *testing.F) {
	valid := makeInvoice(f, invoiceSpec{msat: 2_000_000, expiry: 10 * time.Minute})
	now := created.Add(time.Minute).Unix()
	f.Add(valid, int64(2_000_000), now, uint8(0))
	f.Add(valid, int64(2_000_001), now, uint8(0))
	f.Add(valid, int64(2_000_000), created.Add(10*time.Minute).Unix(), uint8(0))
	f.Add(valid, int64(2_000_000), now, uint8(2))
	f.Add(strings.ToUpper(valid), int64(2_000_000), now, uint8(0))
	f.Add(valid[:len(valid)/2], int64(2_000_000), now, uint8(0))
	f.Add(makeInvoice(f, invoiceSpec{}), int64(1), now, uint8(0))
	f.Add(makeInvoice(f, invoiceSpec{net: &chaincfg.SimNetParams, msat: 1}), int64(1), now, uint8(1))
	f.Add(makeInvoice(f, invoiceSpec{net: &chaincfg.SigNetParams, msat: 10}), int64(10), now, uint8(4))
	f.Add("", int64(0), int64(0), uint8(0))

	f.Fuzz(func(t *testing.T, bolt11 string, amountMsat, nowUnix int64, netByte uint8) {
		net := fuzzNetworks[int(netByte)%len(fuzzNetworks)]
		at := time.Unix(nowUnix, 0)
		d, err := lightning.ValidateBOLT11(bolt11, lightning.Expectation{Network: net, AmountMsat: amountMsat, Now: at})
		if err != nil {
			var bad *lightning.InvalidInvoiceError
			switch {
			case amountMsat <= 0:
				if !errors.Is(err, lightning.ErrInvalidRequest) {
					t.Fatalf("non-positive expectation: want ErrInvalidRequest, got %v", err)
				}
			case !errors.As(err, &bad):
				t.Fatalf("rejection is not an *InvalidInvoiceError: %T %v", err, err)
			case bad.Reason < lightning.ReasonMalformed || bad.Reason > lightning.ReasonExpired:
				t.Fatalf("unknown reason %d", bad.Reason)
			}
			return
		}

		// Accepted: a payer decoding the same string must see exactly the
		// expected amount on the expected network, not yet expired.
		if amountMsat <= 0 {
			t.Fatalf("accepted with expectation %d msat", amountMsat)
		}
		inv, err := zpay32.Decode(bolt11, net)
		if err != nil {
			t.Fatalf("accepted, but zpay32 rejects it on %s: %v", net.Name, err)
		}
		if inv.MilliSat == nil || uint64(*inv.MilliSat) != uint64(amountMsat) || d.AmountMsat != amountMsat {
			t.Fatalf("accepted with amount %v, expected %d", inv.MilliSat, amountMsat)
		}
		if !inv.Timestamp.Add(inv.Expiry()).After(at) || !d.ExpiresAt.After(at) {
			t.Fatalf("accepted an invoice expired at %s (now %s)", d.ExpiresAt, at)
		}
		if d.Network != net.Name || d.PaymentHash != hex.EncodeToString(inv.PaymentHash[:]) {
			t.Fatalf("decoded %+v does not match zpay32's view", d)
		}
	})
}

// TestFuzzCorpusOutcomes pins what the checked-in corpus means: the entries
// named valid, upper, last_second and repayee (an edit the signature no
// longer covers, accepted as signed by another node because no payee is
// pinned) pass, every other one is rejected. It keeps the corpus honest, so
// the fuzzer starts from both sides.
func TestFuzzCorpusOutcomes(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateBOLT11")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	accepted := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Len(t, lines, 5, e.Name())
		bolt11, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		require.NoError(t, err, e.Name())
		num := func(line, typ string) int64 {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(line, typ+"("), ")"), 10, 64)
			require.NoError(t, err, e.Name())
			return n
		}
		want := lightning.Expectation{
			AmountMsat: num(lines[2], "int64"),
			Now:        time.Unix(num(lines[3], "int64"), 0),
			Network:    fuzzNetworks[num(lines[4], "uint8")],
		}
		_, err = lightning.ValidateBOLT11(bolt11, want)
		payable := false
		for _, tag := range []string{"_valid", "_upper_", "_last_second_", "_repayee_"} {
			payable = payable || strings.Contains(e.Name(), tag)
		}
		if payable {
			accepted++
			assert.NoError(t, err, e.Name())
		} else {
			assert.Error(t, err, e.Name())
		}
	}
	assert.Positive(t, accepted)
}
