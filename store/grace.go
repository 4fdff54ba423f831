package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Tenant statuses.
const (
	TenantActive    = "active"
	TenantGrace     = "grace"
	TenantSuspended = "suspended"
)

// GraceState is a tenant's standing after a grace transition.
type GraceState struct {
	TenantID       models.TenantID `json:"tenant_id"`
	Status         string          `json:"status"`
	GraceStartedAt *time.Time      `json:"grace_started_at,omitempty"`
	GraceExpiresAt *time.Time      `json:"grace_expires_at,omitempty"`
	SuspendedAt    *time.Time      `json:"suspended_at,omitempty"`
	BannedUntil    *time.Time      `json:"banned_until,omitempty"`
	// Unpaid lists the invoices still being collected, oldest first.
	Unpaid []Invoice `json:"unpaid"`
	// Changed reports whether this call changed the tenant's status.
	Changed bool `json:"changed"`
}

// Banned reports whether the tenant is banned from grace at instant now.
func (g GraceState) Banned(now time.Time) bool {
	return g.BannedUntil != nil && now.Before(*g.BannedUntil)
}

func graceState(ctx context.Context, tx pgx.Tx, id models.TenantID) (GraceState, error) {
	g := GraceState{TenantID: id}
	err := tx.QueryRow(ctx, `SELECT status, grace_started_at, grace_expires_at, suspended_at, banned_until FROM tenants WHERE id = $1 FOR UPDATE`, id).
		Scan(&g.Status, &g.GraceStartedAt, &g.GraceExpiresAt, &g.SuspendedAt, &g.BannedUntil)
	if err == pgx.ErrNoRows {
		return g, &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", id)}
	}
	if err != nil {
		return g, err
	}
	for _, t := range []**time.Time{&g.GraceStartedAt, &g.GraceExpiresAt, &g.SuspendedAt, &g.BannedUntil} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	g.Unpaid, err = collectInvoices(tx.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices
		WHERE tenant_id = $1 AND status IN ('open', 'collecting', 'awaiting_payment') ORDER BY created_at, id`, id))
	return g, err
}

// graceEvent writes a tenant status event; each transition is its own
// subject, so replays of the same transaction cannot emit it twice.
func graceEvent(ctx context.Context, tx pgx.Tx, g GraceState, typ string, at time.Time, reason string) error {
	payload := map[string]any{"tenant_id": g.TenantID, "status": g.Status, "at": at, "reason": reason, "unpaid_invoices": len(g.Unpaid)}
	if g.BannedUntil != nil {
		payload["banned_until"] = g.BannedUntil
	}
	if g.GraceExpiresAt != nil {
		payload["grace_expires_at"] = g.GraceExpiresAt
	}
	return insertEvent(ctx, tx, g.TenantID, typ, fmt.Sprintf("%s@%d", g.TenantID, at.UnixNano()), payload)
}

// EnterGrace is called when a collection attempt fails. An active tenant with
// unpaid invoices enters a grace window of the given length, or, if banned
// from grace, is suspended at once. A tenant already in grace or suspended,
// or with nothing unpaid, is left as it is.
func (s *Store) EnterGrace(ctx context.Context, id models.TenantID, now time.Time, window time.Duration) (GraceState, error) {
	var g GraceState
	now = now.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if g, err = graceState(ctx, tx, id); err != nil {
			return err
		}
		if g.Status != TenantActive || len(g.Unpaid) == 0 {
			return nil
		}
		g.Changed = true
		if g.Banned(now) {
			g.Status, g.SuspendedAt = TenantSuspended, &now
			if _, err := tx.Exec(ctx, `UPDATE tenants SET status = 'suspended', suspended_at = $2 WHERE id = $1`, id, now); err != nil {
				return err
			}
			return graceEvent(ctx, tx, g, "tenant.suspended", now, "collection failed while banned from grace")
		}
		expires := now.Add(window)
		g.Status, g.GraceStartedAt, g.GraceExpiresAt = TenantGrace, &now, &expires
		if _, err := tx.Exec(ctx, `UPDATE tenants SET status = 'grace', grace_started_at = $2, grace_expires_at = $3 WHERE id = $1`, id, now, expires); err != nil {
			return err
		}
		return graceEvent(ctx, tx, g, "tenant.grace_started", now, "collection failed")
	})
	return g, err
}

// ExpireGrace ends a grace window: with anything still unpaid the tenant is
// suspended and banned from grace until now+banFor; with everything paid it
// is restored. Outside grace it changes nothing.
func (s *Store) ExpireGrace(ctx context.Context, id models.TenantID, now time.Time, banFor time.Duration) (GraceState, error) {
	var g GraceState
	now = now.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if g, err = graceState(ctx, tx, id); err != nil {
			return err
		}
		if g.Status != TenantGrace {
			return nil
		}
		if len(g.Unpaid) == 0 {
			return restore(ctx, tx, &g, now, "paid within the grace window")
		}
		banned := now.Add(banFor)
		g.Changed = true
		g.Status, g.SuspendedAt, g.BannedUntil, g.GraceExpiresAt = TenantSuspended, &now, &banned, nil
		if _, err := tx.Exec(ctx, `UPDATE tenants SET status = 'suspended', suspended_at = $2, banned_until = $3,
			grace_expires_at = NULL WHERE id = $1`, id, now, banned); err != nil {
			return err
		}
		return graceEvent(ctx, tx, g, "tenant.suspended", now, "grace window expired with unpaid invoices")
	})
	return g, err
}

// RestoreIfSettled restores a tenant in grace or suspended once nothing is
// left unpaid. The ban from grace stays in force until it runs out.
func (s *Store) RestoreIfSettled(ctx context.Context, id models.TenantID, now time.Time) (GraceState, error) {
	var g GraceState
	now = now.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if g, err = graceState(ctx, tx, id); err != nil {
			return err
		}
		if g.Status == TenantActive || len(g.Unpaid) > 0 {
			return nil
		}
		reason := "paid within the grace window"
		if g.Status == TenantSuspended {
			reason = "paid while suspended"
		}
		return restore(ctx, tx, &g, now, reason)
	})
	return g, err
}

// GetGraceState reads a tenant's standing without changing it.
func (s *Store) GetGraceState(ctx context.Context, id models.TenantID) (GraceState, error) {
	var g GraceState
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		g, err = graceState(ctx, tx, id)
		return err
	})
	return g, err
}

func restore(ctx context.Context, tx pgx.Tx, g *GraceState, now time.Time, reason string) error {
	wasSuspended := g.Status == TenantSuspended
	g.Changed = true
	g.Status, g.GraceStartedAt, g.GraceExpiresAt, g.SuspendedAt = TenantActive, nil, nil, nil
	if _, err := tx.Exec(ctx, `UPDATE tenants SET status = 'active', grace_started_at = NULL, grace_expires_at = NULL,
		suspended_at = NULL WHERE id = $1`, g.TenantID); err != nil {
		return err
	}
	if wasSuspended {
		// Billing resumes: the rest of this period, whose renewal was
		// skipped while suspended, is billed now.
		if _, err := restoreItems(ctx, tx, g.TenantID, now); err != nil {
			return err
		}
	}
	return graceEvent(ctx, tx, *g, "tenant.restored", now, reason)
}
