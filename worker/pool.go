package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// defaultPool is read when BILLFLOW_POOL is unset and it exists.
const defaultPool = "config/pool.json"

// loadPool reads the free-tier pool's configuration (BILLFLOW_POOL, else
// config/pool.json when present; nil when neither: no receipt is
// subsidised) and writes its currency, share and floor to the pool's row,
// so that settlements credit the configured share.
func loadPool(ctx context.Context, st *store.Store, path string) (*models.PoolConfig, error) {
	explicit := path != ""
	if !explicit {
		path = defaultPool
	}
	data, err := os.ReadFile(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the free-tier pool configuration (BILLFLOW_POOL): %w", err)
	}
	cfg, err := models.ParsePoolConfig(data)
	if err != nil {
		return nil, fmt.Errorf("free-tier pool configuration %s: %w", path, err)
	}
	if _, err := st.ConfigurePool(ctx, cfg); err != nil {
		return nil, fmt.Errorf("configure the free-tier pool from %s: %w", path, err)
	}
	return &cfg, nil
}
