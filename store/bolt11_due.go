package store

import (
	"context"
	"time"
)

// SupersedeBolt11 retires a payable, unsettled Lightning invoice that no
// longer asks for the amount due (a partial payment arrived since it was
// issued), so a BOLT11 for the remainder can replace it. Money that still
// arrives on it is recorded by Settle like any other report.
func (s *Store) SupersedeBolt11(ctx context.Context, paymentHash string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE bolt11_invoices SET superseded_at = $2 WHERE payment_hash = $1 AND settled_at IS NULL AND superseded_at IS NULL`,
		paymentHash, now.UTC())
	return err
}
