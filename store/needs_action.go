package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// MarkTenantNeedsAction records that a step of the tenant's billing failed
// for good (a renewal or claim an operator must look at) and writes a
// tenant.needs_action event, in one transaction. The tenant's workflow keeps
// running and retries the step; the mark stays until ClearTenantNeedsAction.
func (s *Store) MarkTenantNeedsAction(ctx context.Context, id models.TenantID, step, reason string, at time.Time) error {
	at = at.UTC().Truncate(time.Microsecond)
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tenants SET needs_action_at = $2, needs_action_reason = $3 WHERE id = $1`, id, at, step+": "+reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("tenant %s: %w", id, ErrNotFound)
		}
		return insertEvent(ctx, tx, id, "tenant.needs_action", fmt.Sprintf("%s@%d", id, at.UnixNano()),
			map[string]any{"tenant_id": id, "step": step, "reason": reason, "at": at})
	})
}

// ClearTenantNeedsAction removes the mark once the failed step succeeded.
func (s *Store) ClearTenantNeedsAction(ctx context.Context, id models.TenantID) error {
	_, err := s.pool.Exec(ctx, `UPDATE tenants SET needs_action_at = NULL, needs_action_reason = NULL WHERE id = $1`, id)
	return err
}

// TenantNeedsAction returns the tenant's needs-action mark: when and why, or nil.
func (s *Store) TenantNeedsAction(ctx context.Context, id models.TenantID) (*time.Time, string, error) {
	var at *time.Time
	var reason *string
	err := s.pool.QueryRow(ctx, `SELECT needs_action_at, needs_action_reason FROM tenants WHERE id = $1`, id).Scan(&at, &reason)
	if err == pgx.ErrNoRows {
		return nil, "", fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	if err != nil || at == nil {
		return nil, "", err
	}
	u := at.UTC()
	return &u, *reason, nil
}
