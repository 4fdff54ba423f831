package main

import (
	"context"
	"fmt"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// loadPool reads the free-tier pool's configuration (BILLFLOW_POOL, else
// config/pool.json when present, else models.DefaultPoolConfig) and writes
// its currency, share and floor to the pool's row, so that every
// settlement credits the configured share and decisions find the pool.
func loadPool(ctx context.Context, st *store.Store, path string) (*models.PoolConfig, error) {
	cfg, err := api.LoadPoolConfig(path)
	if err != nil {
		return nil, err
	}
	if _, err := st.ConfigurePool(ctx, cfg); err != nil {
		return nil, fmt.Errorf("configure the free-tier pool: %w", err)
	}
	return &cfg, nil
}
