package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
)

// The worker's node is a lightning.Payer when BILLFLOW_LND_PAYOUT_MACAROON
// is set (path or hex), and refuses payouts clearly when it is not.
func TestBuildRailsPayouts(t *testing.T) {
	node, err := lnnode.Start(t.Context(), lnnode.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := []string{"BILLFLOW_LND_ADDR=" + node.Addr(), "BILLFLOW_LND_TLS_CERT=" + node.TLSCertPath(),
		"BILLFLOW_LND_MACAROON=" + node.MacaroonPath(), "BILLFLOW_LND_NETWORK=regtest", "BILLFLOW_LND_PUBKEY=" + node.PubKey(),
		"BILLFLOW_RATES=usd=1", "BILLFLOW_NWC_ENABLED=false"}

	for name, extra := range map[string][]string{
		"file": {"BILLFLOW_LND_PAYOUT_MACAROON=" + node.PayoutMacaroonPath()},
		"hex":  {"BILLFLOW_LND_PAYOUT_MACAROON=" + node.PayoutMacaroonHex()},
		"off":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := load(t, append(base, extra...)...)
			require.NoError(t, err)
			r, closeAll, err := buildRails(logger, nil, c.Rails)
			require.NoError(t, err)
			t.Cleanup(closeAll)
			payer, ok := r.Node.(lightning.Payer)
			require.True(t, ok, "the worker's node is a lightning.Payer")
			bolt11, _, err := node.PayeeInvoice(t.Context(), 1_000, "withdrawal", time.Hour)
			require.NoError(t, err)
			p, err := payer.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: bolt11})
			if extra == nil {
				require.ErrorIs(t, err, lightning.ErrPayoutsNotConfigured)
				return
			}
			require.NoError(t, err)
			require.Equal(t, lightning.StatusSucceeded, p.Status)
		})
	}
}
