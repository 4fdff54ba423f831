//go:build integration

package billing_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
)

// The pool through package billing (one PoolOperation workflow per call):
// refused before the pool is configured, then credit, show, pin, a dry-run
// decision, grants, unpin; refusals name the field.
func TestPoolThroughBilling(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := e.st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)

	_, err = e.bc.Pool(ctx)
	var ve *billing.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	assert.Equal(t, "pool", ve.Field)
	_, err = e.st.ConfigurePool(ctx, models.DefaultPoolConfig())
	require.NoError(t, err)

	c, err := e.bc.CreditPool(ctx, "seed", 700, "launch")
	require.NoError(t, err)
	assert.Equal(t, int64(700), c.Balance)
	c, err = e.bc.CreditPool(ctx, "seed", 700, "launch")
	require.NoError(t, err)
	assert.True(t, c.Replayed)
	p, err := e.bc.Pool(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(700), p.Balance)

	tier, err := e.bc.PinTier(ctx, string(tenant), "elite", "partner")
	require.NoError(t, err)
	assert.Equal(t, models.TierElite, tier.Tier)
	assert.True(t, tier.Pinned)
	v, err := e.bc.DecidePool(ctx, string(tenant), 300)
	require.NoError(t, err)
	assert.Equal(t, models.ServeFree, v.Serve)
	assert.Equal(t, int64(300), v.Absorb)
	p, err = e.bc.Pool(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(700), p.Balance, "a dry run reserves nothing")
	gs, err := e.bc.PoolGrants(ctx, billing.PoolGrantFilter{Payer: string(tenant)})
	require.NoError(t, err)
	assert.Empty(t, gs)
	tier, err = e.bc.UnpinTier(ctx, string(tenant))
	require.NoError(t, err)
	assert.False(t, tier.Pinned)

	_, err = e.bc.PinTier(ctx, string(tenant), "gold", "")
	require.True(t, errors.As(err, &ve), "got %v", err)
	assert.Contains(t, ve.Error(), "gold")
	_, err = e.bc.CreditPool(ctx, "x", -1, "")
	require.True(t, errors.As(err, &ve), "got %v", err)
	_, err = e.bc.PayerTier(ctx, string(testkit.NewTenantID(t)))
	require.True(t, errors.As(err, &ve), "got %v", err)
	assert.Equal(t, "payer", ve.Field)
}
