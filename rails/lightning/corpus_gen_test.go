//go:build fuzzcorpus

package lightning_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/require"
)

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzValidateBOLT11 from
// invoices the sandbox node issues over gRPC:
//
//	go test -tags fuzzcorpus -run TestWriteFuzzCorpus ./rails/lightning/
//
// Preimages and node keys are random, so every run writes new strings;
// commit the result only when the corpus needs new shapes.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateBOLT11")
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))

	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	issue := func(net *chaincfg.Params, msat int64, expiry time.Duration) lightning.Invoice {
		node, err := lnnode.Start(t.Context(), lnnode.Options{Network: net, Now: func() time.Time { return clock }})
		require.NoError(t, err)
		defer node.Close()
		c, err := lightning.New(node.ClientConfig())
		require.NoError(t, err)
		defer c.Close()
		inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "billflow corpus", Expiry: expiry})
		require.NoError(t, err)
		return inv
	}
	netByte := map[string]uint8{}
	for i, n := range fuzzNetworks {
		netByte[n.Name] = uint8(i)
	}
	write := func(name, bolt11 string, msat int64, now time.Time, net *chaincfg.Params) {
		body := fmt.Sprintf("go test fuzz v1\nstring(%s)\nint64(%d)\nint64(%d)\nuint8(%d)\n",
			strconv.Quote(bolt11), msat, now.Unix(), netByte[net.Name])
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	regtest, simnet := &chaincfg.RegressionNetParams, &chaincfg.SimNetParams
	soon := clock.Add(time.Minute)

	for _, msat := range []int64{1, 1_000, 1_234_567, 2_000_000_000, 2_100_000_000_000_000} {
		inv := issue(regtest, msat, 15*time.Minute)
		p := inv.PaymentRequest
		tag := strconv.FormatInt(msat, 10)
		write("sandbox_valid_"+tag, p, msat, soon, regtest)
		write("sandbox_upper_"+tag, strings.ToUpper(p), msat, soon, regtest)
		write("sandbox_amount_plus_one_"+tag, p, msat+1, soon, regtest)
		write("sandbox_amount_minus_one_"+tag, p, msat-1, soon, regtest)
		write("sandbox_expired_"+tag, p, msat, inv.ExpiresAt, regtest)
		write("sandbox_last_second_"+tag, p, msat, inv.ExpiresAt.Add(-time.Second), regtest)
		write("sandbox_wrong_network_"+tag, p, msat, soon, &chaincfg.MainNetParams)
		write("sandbox_truncated_half_"+tag, p[:len(p)/2], msat, soon, regtest)
		write("sandbox_truncated_checksum_"+tag, p[:len(p)-6], msat, soon, regtest)
		write("sandbox_truncated_one_"+tag, p[:len(p)-1], msat, soon, regtest)
		write("sandbox_hrp_only_"+tag, p[:strings.LastIndexByte(p, '1')+1], msat, soon, regtest)
		flipped := []byte(p)
		flipped[len(p)/3] = map[bool]byte{true: 'q', false: 'p'}[flipped[len(p)/3] == 'p']
		write("sandbox_flipped_char_"+tag, string(flipped), msat, soon, regtest)
		// Re-checksummed edits: well-formed strings the signature no
		// longer covers. BOLT11 then recovers some other payee, so an edit
		// outside the amount is accepted when no payee is pinned (the
		// "repayee" entries); an edited amount never matches.
		write("sandbox_resigned_amount_"+tag, reencode(t, p, func(hrp string, data []byte) (string, []byte) {
			return hrp[:len(hrp)-1] + map[bool]string{true: "n", false: "u"}[hrp[len(hrp)-1] == 'u'], data
		}), msat, soon, regtest)
		write("sandbox_repayee_data_"+tag, reencode(t, p, func(hrp string, data []byte) (string, []byte) {
			data[10] ^= 1
			return hrp, data
		}), msat, soon, regtest)
	}

	sim := issue(simnet, 50_000, time.Hour)
	write("sandbox_simnet_valid", sim.PaymentRequest, 50_000, soon, simnet)
	write("sandbox_simnet_on_regtest", sim.PaymentRequest, 50_000, soon, regtest)
	write("noamount_regtest", makeInvoice(t, invoiceSpec{}), 1_000, created.Add(time.Minute), regtest)
	write("empty", "", 1, soon, regtest)
	write("prefix_only", "lnbcrt1", 1, soon, regtest)
	write("not_bech32", "lightning:lnbcrt10u1xyz", 1_000_000, soon, regtest)
	write("zero_expectation", sim.PaymentRequest, 0, soon, simnet)
}
