package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/config"
)

// load reads a worker configuration from env alone (plus a database URL).
func load(t *testing.T, env ...string) (config.Worker, error) {
	t.Helper()
	return config.LoadWorker(append([]string{"DATABASE_URL=postgres://db/billflow"}, env...))
}

func TestBuildPolicy(t *testing.T) {
	c, err := load(t)
	require.NoError(t, err)
	require.Equal(t, activities.DefaultPaymentPolicy(), buildPolicy(c.Policy))

	c, err = load(t, "BILLFLOW_DUNNING=1m, 2m,4m", "BILLFLOW_RECONCILE=30s", "BILLFLOW_RECONCILE_EVERY=5m",
		"BILLFLOW_GRACE_WINDOW=3m", "BILLFLOW_BAN_FACTOR=7")
	require.NoError(t, err)
	p := buildPolicy(c.Policy)
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}, p.Dunning)
	require.Equal(t, []time.Duration{30 * time.Second}, p.Reconcile)
	require.Equal(t, 5*time.Minute, p.ReconcileEvery)
	require.Equal(t, 3*time.Minute, p.GraceWindow)
	require.Equal(t, 7, p.BanFactor)
}

func TestBuildPolicyRejectsBadValues(t *testing.T) {
	for name, env := range map[string][2]string{
		"not a duration": {"BILLFLOW_DUNNING", "1 day"},
		"decreasing":     {"BILLFLOW_DUNNING", "72h,24h"},
		"negative":       {"BILLFLOW_RECONCILE", "-1m"},
		"two windows":    {"BILLFLOW_GRACE_WINDOW", "1h,2h"},
		"zero ban":       {"BILLFLOW_BAN_FACTOR", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, env[0]+"="+env[1])
			require.ErrorContains(t, err, env[0])
		})
	}
}

func TestBuildRails(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := load(t)
	require.NoError(t, err)
	r, closeAll, err := buildRails(logger, nil, c.Rails)
	require.NoError(t, err)
	closeAll()
	require.Nil(t, r.Node)
	require.Nil(t, r.Cards)
	require.Nil(t, r.DM)
	require.Nil(t, r.Vault)
	require.Equal(t, "http://localhost:3000", r.AppURL)

	lnd := []string{"BILLFLOW_LND_ADDR=127.0.0.1:10009", "BILLFLOW_LND_PUBKEY=02aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899",
		"BILLFLOW_RATES=usd=1", "BILLFLOW_NWC_ENABLED=false"}
	_, err = load(t, append(lnd, "BILLFLOW_LND_NETWORK=moonnet", "BILLFLOW_LND_TLS_CERT=/x", "BILLFLOW_LND_MACAROON=/y")...)
	require.ErrorContains(t, err, "BILLFLOW_LND_NETWORK")

	c, err = load(t, append(lnd, "BILLFLOW_LND_NETWORK=regtest", "BILLFLOW_LND_TLS_CERT=/nonexistent/tls.cert", "BILLFLOW_LND_MACAROON=/nonexistent/invoice.macaroon")...)
	require.NoError(t, err)
	_, closeAll, err = buildRails(logger, nil, c.Rails)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_LND")

	_, err = load(t, "BILLFLOW_SECRET_KEY=not-hex")
	require.ErrorContains(t, err, "BILLFLOW_SECRET_KEY")
	require.NotContains(t, err.Error(), "not-hex")

	c, err = load(t, "BILLFLOW_ROBOT_KEY=zz")
	require.NoError(t, err)
	_, closeAll, err = buildRails(logger, nil, c.Rails)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_ROBOT_KEY")
}
