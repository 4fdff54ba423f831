//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The pool and tier commands against Postgres: credit (once per key),
// show, tier set/show, decide (a dry run), grants; bad flags exit 2 naming
// the flag.
func TestPoolCommands(t *testing.T) {
	st, url := newTestStore(t)
	ctx := context.Background()
	cfgPath := filepath.Join(t.TempDir(), "pool.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"currency": "usd", "credit_share_bps": 1000, "low_balance_floor": 100,
		"tiers": {"new": {"daily_budget": 0}, "established": {"daily_budget": 50, "paid_invoices": 1, "min_age": "168h"},
		"trusted": {"daily_budget": 200, "paid_invoices": 3, "min_age": "720h"}, "elite": {"daily_budget": 1000, "paid_invoices": 12, "min_age": "4320h"}}}`), 0o600))
	t.Setenv("BILLFLOW_POOL", cfgPath)
	cfg, err := api.LoadPoolConfig(cfgPath)
	require.NoError(t, err)
	_, err = st.ConfigurePool(ctx, cfg)
	require.NoError(t, err)
	tenant := walletTenant(t, st)

	r := runWithDB(t, url, "pool", "credit", "--key", "launch", "--amount", "1000", "--note", "seed")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "credited 1000 under launch; the pool holds 1000")
	r = runWithDB(t, url, "pool", "credit", "--key", "launch", "--amount", "1000")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "already credited")

	r = runWithDB(t, url, "pool", "show")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "balance         10.00 USD")

	r = runWithDB(t, url, "pool", "decide", "--tenant", tenant, "--amount", "300")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "gate")
	r = runWithDB(t, url, "tier", "set", "--tenant", tenant, "--tier", "trusted", "--reason", "demo")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "trusted (pinned: demo")
	r = runWithDB(t, url, "pool", "decide", "--tenant", tenant, "--amount", "300", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v store.PoolVerdict
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.Equal(t, models.ServePartial, v.Serve)
	assert.Equal(t, int64(200), v.Absorb)

	_, err = st.DecideAndReserveFree(ctx, cfg, store.PoolRequest{Payer: models.TenantID(tenant), Key: "r1", Estimated: 40})
	require.NoError(t, err)
	r = runWithDB(t, url, "pool", "grants", "--payer", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "r1")
	assert.Contains(t, r.stdout, "reserved")
	r = runWithDB(t, url, "tier", "show", "--tenant", tenant)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "absorbed today")
	assert.Contains(t, r.stdout, "40 (160 left)")
	r = runWithDB(t, url, "tier", "set", "--tenant", tenant, "--unpin")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "new (derived")

	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"pool", "credit", "--key", "k", "--amount", "-5"}, "-5"},
		{[]string{"pool", "grants", "--outcome", "lost"}, "--outcome"},
		{[]string{"pool", "decide", "--tenant", "bob", "--amount", "1"}, "--tenant"},
		{[]string{"tier", "set", "--tenant", tenant, "--tier", "gold"}, "gold"},
		{[]string{"tier", "set", "--tenant", tenant}, "--tier"},
	} {
		r := runWithDB(t, url, c.args...)
		assert.Equal(t, exitInvalid, r.code, "%v: %s", c.args, r.stderr)
		assert.Contains(t, r.stderr, c.mention, c.args)
	}
}
