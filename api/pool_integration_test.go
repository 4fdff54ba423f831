//go:build integration

package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The pool's HTTP endpoints: show before and after configuration, credit
// once per key, pin and unpin a tier, a dry-run decision that reserves
// nothing, the grant audit, and bad input naming what was wrong.
func TestPoolAPI(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	cfg := models.DefaultPoolConfig()
	cfg.Tiers[models.TierTrusted] = models.TierRule{DailyBudget: 200, PaidInvoices: 3, MinAge: 30 * 24 * time.Hour}
	hs := httptest.NewServer((&api.Server{Store: st, Token: "t", Pool: &cfg}).Handler())
	t.Cleanup(hs.Close)
	h := walletHarness{st: st, hs: hs, tenant: testkit.NewTenantID(t)}
	_, _, err := st.EnsureTenant(ctx, h.tenant, "usd", 600)
	require.NoError(t, err)

	h.requireRefused(t, http.MethodGet, "/v1/pool", "", http.StatusBadRequest, "not configured")
	_, err = st.ConfigurePool(ctx, cfg)
	require.NoError(t, err)

	var c store.PoolCredit
	require.Equal(t, http.StatusCreated, h.call(t, http.MethodPost, "/v1/pool/credits", `{"key":"seed","amount":500,"note":"launch"}`, &c))
	assert.Equal(t, int64(500), c.Balance)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, "/v1/pool/credits", `{"key":"seed","amount":500,"note":"launch"}`, &c))
	assert.True(t, c.Replayed)
	h.requireRefused(t, http.MethodPost, "/v1/pool/credits", `{"key":"x","amount":-1}`, http.StatusBadRequest, "-1")
	h.requireRefused(t, http.MethodPost, "/v1/pool/credits", `{"key":"invoice:abc","amount":1}`, http.StatusBadRequest, "invoice:")

	var p store.PoolStatus
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/pool", "", &p))
	assert.Equal(t, int64(500), p.Balance)
	assert.Equal(t, int64(500), p.Credited)

	var tier store.PayerTier
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/pool/tiers/"+string(h.tenant), "", &tier))
	assert.Equal(t, models.TierNew, tier.Tier)
	var v store.PoolVerdict
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, "/v1/pool/decide", `{"payer":"`+string(h.tenant)+`","amount":300}`, &v))
	assert.Equal(t, models.ServeGate, v.Serve)

	require.Equal(t, http.StatusOK, h.call(t, http.MethodPut, "/v1/pool/tiers/"+string(h.tenant), `{"tier":"trusted","reason":"known"}`, &tier))
	assert.Equal(t, models.TierTrusted, tier.Tier)
	assert.True(t, tier.Pinned)
	assert.Equal(t, int64(200), tier.DailyBudget)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, "/v1/pool/decide", `{"payer":"`+string(h.tenant)+`","amount":300}`, &v))
	assert.Equal(t, models.ServePartial, v.Serve)
	assert.Equal(t, int64(200), v.Absorb)
	assert.Equal(t, int64(100), v.Charge)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/pool", "", &p))
	assert.Equal(t, int64(500), p.Balance, "a dry run reserves nothing")

	_, err = st.DecideAndReserveFree(ctx, cfg, store.PoolRequest{Payer: h.tenant, Key: "r1", Estimated: 50})
	require.NoError(t, err)
	var gs api.PoolGrants
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/pool/grants?payer="+string(h.tenant)+"&outcome=reserved", "", &gs))
	require.Len(t, gs.Grants, 1)
	assert.Equal(t, "r1", gs.Grants[0].RequestKey)
	assert.Equal(t, int64(50), gs.Grants[0].Reserved)
	h.requireRefused(t, http.MethodGet, "/v1/pool/grants?outcome=lost", "", http.StatusBadRequest, "lost")
	h.requireRefused(t, http.MethodGet, "/v1/pool/grants?limit=0", "", http.StatusBadRequest, "limit")

	require.Equal(t, http.StatusOK, h.call(t, http.MethodDelete, "/v1/pool/tiers/"+string(h.tenant), "", &tier))
	assert.False(t, tier.Pinned)
	assert.Equal(t, models.TierNew, tier.Tier)

	h.requireRefused(t, http.MethodPut, "/v1/pool/tiers/"+string(h.tenant), `{"tier":"gold"}`, http.StatusBadRequest, "gold")
	h.requireRefused(t, http.MethodPut, "/v1/pool/tiers/"+string(h.tenant), `{}`, http.StatusBadRequest, "tier")
	h.requireRefused(t, http.MethodGet, "/v1/pool/tiers/bob", "", http.StatusBadRequest, "bob")
	h.requireRefused(t, http.MethodPost, "/v1/pool/decide", `{"payer":"`+string(h.tenant)+`","amount":0}`, http.StatusBadRequest, "amount")
	nobody := testkit.NewTenantID(t)
	h.requireRefused(t, http.MethodPut, "/v1/pool/tiers/"+string(nobody), `{"tier":"elite"}`, http.StatusBadRequest, string(nobody))
}
