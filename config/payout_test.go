package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/config"
)

func TestPayoutMacaroonIsOptionalAndNeedsTheNode(t *testing.T) {
	c, err := config.LoadWorker(with(lnd))
	require.NoError(t, err)
	assert.False(t, c.PayoutsOn(), "payouts are off without a payout macaroon")
	path, hexText := c.LNDPayoutMacaroonSource()
	assert.Empty(t, path)
	assert.Empty(t, hexText)

	c, err = config.LoadWorker(with(lnd, "BILLFLOW_LND_PAYOUT_MACAROON=/lnd/payout.macaroon"))
	require.NoError(t, err)
	assert.True(t, c.PayoutsOn())
	path, hexText = c.LNDPayoutMacaroonSource()
	assert.Equal(t, "/lnd/payout.macaroon", path)
	assert.Empty(t, hexText)

	// The macaroon itself, as hex (a secret injected into the environment).
	hexMac := "0201036c6e6402f801030a10" + strings.Repeat("ab", 40)
	c, err = config.LoadWorker(with(lnd, "BILLFLOW_LND_PAYOUT_MACAROON="+hexMac))
	require.NoError(t, err)
	path, hexText = c.LNDPayoutMacaroonSource()
	assert.Empty(t, path)
	assert.Equal(t, hexMac, hexText)

	// Without the node there is nothing to pay from.
	_, err = config.LoadWorker(with(nil, "BILLFLOW_LND_PAYOUT_MACAROON="+hexMac))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "BILLFLOW_LND_PAYOUT_MACAROON is set but BILLFLOW_LND_ADDR is not")
	assert.NotContains(t, err.Error(), hexMac)

	// Redacted in the effective configuration, path or hex.
	for _, v := range []string{hexMac, "/secret/dir/payout.macaroon"} {
		c, err = config.LoadWorker(with(lnd, "BILLFLOW_LND_PAYOUT_MACAROON="+v))
		require.NoError(t, err)
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("configuration", "config", c)
		assert.NotContains(t, buf.String(), v)
		assert.Contains(t, buf.String(), "BILLFLOW_LND_PAYOUT_MACAROON="+config.Redacted)
	}
}
