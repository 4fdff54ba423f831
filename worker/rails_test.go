package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
)

func TestBuildPolicy(t *testing.T) {
	p, err := buildPolicy()
	require.NoError(t, err)
	require.Equal(t, activities.DefaultPaymentPolicy(), p)

	t.Setenv("BILLFLOW_DUNNING", "1m, 2m,4m")
	t.Setenv("BILLFLOW_RECONCILE", "30s")
	t.Setenv("BILLFLOW_RECONCILE_EVERY", "5m")
	t.Setenv("BILLFLOW_GRACE_WINDOW", "3m")
	t.Setenv("BILLFLOW_BAN_FACTOR", "7")
	p, err = buildPolicy()
	require.NoError(t, err)
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
			t.Setenv(env[0], env[1])
			_, err := buildPolicy()
			require.ErrorContains(t, err, env[0])
		})
	}
}

func TestBuildRails(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, closeAll, err := buildRails(logger, nil)
	require.NoError(t, err)
	closeAll()
	require.Nil(t, r.Node)
	require.Nil(t, r.Cards)
	require.Nil(t, r.DM)
	require.Nil(t, r.Vault)
	require.Equal(t, "http://localhost:3000", r.AppURL)

	t.Setenv("BILLFLOW_LND_ADDR", "127.0.0.1:10009")
	t.Setenv("BILLFLOW_LND_NETWORK", "moonnet")
	_, closeAll, err = buildRails(logger, nil)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_LND_NETWORK")

	t.Setenv("BILLFLOW_LND_NETWORK", "regtest")
	t.Setenv("BILLFLOW_LND_TLS_CERT", "/nonexistent/tls.cert")
	t.Setenv("BILLFLOW_LND_MACAROON", "/nonexistent/invoice.macaroon")
	_, closeAll, err = buildRails(logger, nil)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_LND")

	t.Setenv("BILLFLOW_LND_ADDR", "")
	t.Setenv("BILLFLOW_SECRET_KEY", "not-hex")
	_, closeAll, err = buildRails(logger, nil)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_SECRET_KEY")
	require.NotContains(t, err.Error(), "not-hex")

	t.Setenv("BILLFLOW_SECRET_KEY", "")
	t.Setenv("BILLFLOW_ROBOT_KEY", "zz")
	_, closeAll, err = buildRails(logger, nil)
	closeAll()
	require.ErrorContains(t, err, "BILLFLOW_ROBOT_KEY")
}
