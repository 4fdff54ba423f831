package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Item is a stored invoice line item.
type Item struct {
	ID        string  `json:"id"`
	InvoiceID *string `json:"invoice_id"`
	models.Item
}

// RecordResult is the outcome of recording one activity.
type RecordResult struct {
	// Item is the line item the activity produced, or nil.
	Item *Item
	// Duplicate is true when this exact activity was already recorded; the
	// stored outcome is returned and nothing new is written.
	Duplicate bool
	// AnchorSet is true when this activity set the tenant's billing anchor.
	AnchorSet bool
	Tenant    Tenant
	// Outstanding is the sum of the tenant's items not yet on an invoice.
	Outstanding int64
}

// RecordActivity folds one activity into the tenant's ledger and writes the
// activity, the resource's new state, its item and (on the first activity)
// the billing anchor, all in one transaction. Replaying an identical activity
// returns the first outcome; reusing its id for a different activity is a
// *models.ValidationError, as is anything models rejects. When the caller
// did not choose the instant (instantDefaulted), a replay matches whatever
// instant the first recording got.
func (s *Store) RecordActivity(ctx context.Context, tenantID models.TenantID, act models.Activity, instantDefaulted bool) (RecordResult, error) {
	var res RecordResult
	act.At = models.BillingInstant(act.At)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tenant, err := lockTenant(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if dup, ok, err := findDuplicate(ctx, tx, tenantID, act, instantDefaulted); err != nil || ok {
			res = dup
			res.Tenant = tenant
			if err == nil {
				res.Outstanding, err = outstanding(ctx, tx, tenantID)
			}
			return err
		}
		if tenant.RenewedThrough != nil && act.At.Before(*tenant.RenewedThrough) {
			return &models.ValidationError{Field: "activity " + act.ID, Reason: fmt.Sprintf(
				"created_at %s is before %s, the start of a period that has already been renewed",
				act.At.Format(time.RFC3339), tenant.RenewedThrough.Format(time.RFC3339))}
		}
		catalog, err := loadCatalog(ctx, tx)
		if err != nil {
			return err
		}
		ledger := tenant.Ledger()
		var r models.Resource
		err = tx.QueryRow(ctx, `SELECT plan_id, active, last_activity_at FROM resources WHERE tenant_id = $1 AND id = $2`,
			tenantID, act.ResourceID).Scan(&r.PlanID, &r.Active, &r.LastAt)
		switch {
		case err == nil:
			r.LastAt = r.LastAt.UTC()
			ledger.Resources[act.ResourceID] = r
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		item, err := ledger.Apply(act, catalog)
		if err != nil {
			return err
		}
		var planID *string
		if act.PlanID != "" {
			planID = &act.PlanID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO activities (id, tenant_id, type, resource_id, plan_id, created_at, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, act.ID, tenantID, act.Type, act.ResourceID, planID, act.At, s.Now().UTC()); err != nil {
			if isUniqueViolation(err) {
				// Another tenant's transaction took this id between our check and insert.
				return &models.ValidationError{Field: "activity " + act.ID, Reason: "id is already used by a different activity"}
			}
			return fmt.Errorf("insert activity: %w", err)
		}
		r = ledger.Resources[act.ResourceID]
		if _, err := tx.Exec(ctx, `INSERT INTO resources (tenant_id, id, plan_id, active, last_activity_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, id) DO UPDATE SET plan_id = EXCLUDED.plan_id, active = EXCLUDED.active, last_activity_at = EXCLUDED.last_activity_at`,
			tenantID, act.ResourceID, r.PlanID, r.Active, r.LastAt); err != nil {
			return fmt.Errorf("upsert resource: %w", err)
		}
		if tenant.Anchor == nil {
			anchor := ledger.Schedule.Anchor
			if _, err := tx.Exec(ctx, `UPDATE tenants SET billing_anchor = $2 WHERE id = $1`, tenantID, anchor); err != nil {
				return fmt.Errorf("set billing anchor: %w", err)
			}
			tenant.Anchor = &anchor
			res.AnchorSet = true
		}
		if item != nil {
			stored, err := insertItem(ctx, tx, tenantID, *item)
			if err != nil {
				return err
			}
			res.Item = &stored
		}
		res.Tenant = tenant
		res.Outstanding, err = outstanding(ctx, tx, tenantID)
		return err
	})
	return res, err
}

// findDuplicate looks for an activity with the same id. Identical content is a
// replay (a retried request or activity); anything else is a caller error.
func findDuplicate(ctx context.Context, tx pgx.Tx, tenantID models.TenantID, act models.Activity, anyInstant bool) (RecordResult, bool, error) {
	var (
		tenant     models.TenantID
		typ        models.ActivityType
		resourceID string
		planID     *string
		at         time.Time
	)
	err := tx.QueryRow(ctx, `SELECT tenant_id, type, resource_id, plan_id, created_at FROM activities WHERE id = $1`, act.ID).
		Scan(&tenant, &typ, &resourceID, &planID, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return RecordResult{}, false, nil
	}
	if err != nil {
		return RecordResult{}, false, err
	}
	samePlan := (planID == nil && act.PlanID == "") || (planID != nil && *planID == act.PlanID)
	if tenant != tenantID || typ != act.Type || resourceID != act.ResourceID || !samePlan || (!anyInstant && !at.Equal(act.At)) {
		return RecordResult{}, false, &models.ValidationError{Field: "activity " + act.ID,
			Reason: "id is already used by a different activity"}
	}
	res := RecordResult{Duplicate: true}
	items, err := queryItems(ctx, tx, `WHERE activity_id = $1`, act.ID)
	if err != nil {
		return RecordResult{}, false, err
	}
	if len(items) == 1 {
		res.Item = &items[0]
	}
	return res, true, nil
}

func insertItem(ctx context.Context, tx pgx.Tx, tenantID models.TenantID, it models.Item) (Item, error) {
	stored := Item{ID: uuid.NewString(), Item: it}
	var activityID *string
	if it.ActivityID != "" {
		activityID = &it.ActivityID
	}
	_, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, activity_id, resource_id, plan_id, amount, currency, created_at, period_start, description)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		stored.ID, tenantID, it.Kind, activityID, it.ResourceID, it.PlanID, it.Amount, it.Currency, it.CreatedAt, it.PeriodStart, it.Description)
	if err != nil {
		return Item{}, fmt.Errorf("insert %s item for %s: %w", it.Kind, it.ResourceID, err)
	}
	return stored, nil
}

const itemColumns = `id, invoice_id, kind, coalesce(activity_id, ''), resource_id, coalesce(plan_id, ''), amount, currency, created_at, period_start, description`

func queryItems(ctx context.Context, q querier, where string, args ...any) ([]Item, error) {
	rows, err := q.Query(ctx, `SELECT `+itemColumns+` FROM invoice_items `+where+` ORDER BY created_at, kind, resource_id, id`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
		var it Item
		err := r.Scan(&it.ID, &it.InvoiceID, &it.Kind, &it.ActivityID, &it.ResourceID, &it.PlanID, &it.Amount,
			&it.Currency, &it.CreatedAt, &it.PeriodStart, &it.Description)
		it.CreatedAt, it.PeriodStart = it.CreatedAt.UTC(), it.PeriodStart.UTC()
		return it, err
	})
}

func outstanding(ctx context.Context, q querier, tenantID models.TenantID) (int64, error) {
	var sum int64
	err := q.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenantID).Scan(&sum)
	return sum, err
}

// Outstanding returns the sum of the tenant's items not yet on an invoice.
func (s *Store) Outstanding(ctx context.Context, tenantID models.TenantID) (int64, error) {
	return outstanding(ctx, s.pool, tenantID)
}

// OutstandingItems returns the tenant's items not yet on an invoice.
func (s *Store) OutstandingItems(ctx context.Context, tenantID models.TenantID) ([]Item, error) {
	return queryItems(ctx, s.pool, `WHERE tenant_id = $1 AND invoice_id IS NULL`, tenantID)
}

// RenewResult is the outcome of a renewal.
type RenewResult struct {
	// Created counts renewal items written by this call (0 on a replay).
	Created        int
	RenewedThrough *time.Time
	// Suspended is true when the boundaries were passed without items
	// because the tenant is suspended.
	Suspended bool
}

// KindRestore is the item billed when a suspended tenant is restored: the
// prorated price of the rest of the current period for a resource active on
// a paid plan (its renewal was skipped while suspended).
const KindRestore models.ItemKind = "restore"

// Renew writes the renewal items for every boundary after the tenant's last
// renewed one up to and including upTo, in one transaction. Each resource is
// renewed at most once per boundary (a UNIQUE index), so repeating a renewal
// is a no-op.
func (s *Store) Renew(ctx context.Context, tenantID models.TenantID, upTo time.Time) (RenewResult, error) {
	var res RenewResult
	upTo = models.BillingInstant(upTo)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tenant, err := lockTenant(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		res.RenewedThrough = tenant.RenewedThrough
		if tenant.Anchor == nil {
			return nil
		}
		ledger := tenant.Ledger()
		period := ledger.Schedule.PeriodAt(upTo)
		if period.Index < 1 || (tenant.RenewedThrough != nil && !tenant.RenewedThrough.Before(period.Start)) {
			return nil
		}
		through := period.Start
		// A suspended tenant is not billed: boundaries from its suspension
		// on pass without renewals (and are never renewed later); a restore
		// bills the rest of the period it happens in. A boundary that fell
		// before the suspension is renewed, however late this step runs:
		// the tenant was active then.
		var suspendedAt *time.Time
		if tenant.Status == TenantSuspended {
			if err := tx.QueryRow(ctx, `SELECT suspended_at FROM tenants WHERE id = $1`, tenantID).Scan(&suspendedAt); err != nil {
				return err
			}
			first := ledger.Schedule.Period(1).Start
			if tenant.RenewedThrough != nil {
				first = ledger.Schedule.PeriodAt(*tenant.RenewedThrough).End
			}
			if suspendedAt == nil || !first.Before(*suspendedAt) {
				if _, err := tx.Exec(ctx, `UPDATE tenants SET renewed_through = $2 WHERE id = $1`, tenantID, through); err != nil {
					return err
				}
				res.RenewedThrough, res.Suspended = &through, true
				return nil
			}
			res.Suspended = true
		}
		catalog, err := loadCatalog(ctx, tx)
		if err != nil {
			return err
		}
		acts, err := tenantActivities(ctx, tx, tenantID, period.Start)
		if err != nil {
			return err
		}
		items, err := models.Timeline(ledger, acts, catalog, period.Start)
		if err != nil {
			return fmt.Errorf("fold activity log of tenant %s: %w", tenantID, err)
		}
		for _, it := range items {
			if it.Kind != models.KindRenewal || (tenant.RenewedThrough != nil && !it.PeriodStart.After(*tenant.RenewedThrough)) ||
				(suspendedAt != nil && !it.PeriodStart.Before(*suspendedAt)) {
				continue
			}
			tag, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start, description)
				VALUES ($1, $2, 'renewal', $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (tenant_id, resource_id, period_start) WHERE kind = 'renewal' DO NOTHING`,
				uuid.NewString(), tenantID, it.ResourceID, it.PlanID, it.Amount, it.Currency, it.CreatedAt, it.PeriodStart, it.Description)
			if err != nil {
				return fmt.Errorf("insert renewal of %s: %w", it.ResourceID, err)
			}
			res.Created += int(tag.RowsAffected())
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET renewed_through = $2 WHERE id = $1`, tenantID, through); err != nil {
			return err
		}
		res.RenewedThrough = &through
		return nil
	})
	return res, err
}

// restoreItems bills a tenant restored from suspension at instant now: each
// resource active on a paid plan gets the prorated price of the rest of the
// current period, unless it already has an item for this period (its
// renewal ran before the suspension, or an activity billed it). Idempotent
// per resource and period. It runs in the restoring transaction.
func restoreItems(ctx context.Context, tx pgx.Tx, id models.TenantID, now time.Time) (int, error) {
	tenant, err := lockTenant(ctx, tx, id)
	if err != nil || tenant.Anchor == nil {
		return 0, err
	}
	now = models.BillingInstant(now)
	if now.Before(*tenant.Anchor) {
		return 0, nil
	}
	period := tenant.Ledger().Schedule.PeriodAt(now)
	catalog, err := loadCatalog(ctx, tx)
	if err != nil {
		return 0, err
	}
	type active struct{ id, plan string }
	rows, err := tx.Query(ctx, `SELECT r.id, r.plan_id FROM resources r WHERE r.tenant_id = $1 AND r.active
		AND NOT EXISTS (SELECT 1 FROM invoice_items i WHERE i.tenant_id = r.tenant_id AND i.resource_id = r.id AND i.period_start = $2)
		ORDER BY r.id`, id, period.Start)
	if err != nil {
		return 0, err
	}
	resources, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (active, error) {
		var a active
		return a, r.Scan(&a.id, &a.plan)
	})
	if err != nil {
		return 0, err
	}
	created := 0
	for _, r := range resources {
		plan, ok := catalog[r.plan]
		if !ok || plan.Amount == 0 || plan.Currency != tenant.Currency {
			continue
		}
		amount, err := models.ProrateAmount(plan.Amount, period, now)
		if err != nil {
			return created, err
		}
		if amount == 0 {
			continue
		}
		tag, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start, description)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (tenant_id, resource_id, period_start) WHERE kind = 'restore' DO NOTHING`,
			uuid.NewString(), id, KindRestore, r.id, plan.ID, amount, tenant.Currency, now, period.Start,
			fmt.Sprintf("%s restored on %s (prorated)", r.id, plan.Name))
		if err != nil {
			return created, fmt.Errorf("insert restore item of %s: %w", r.id, err)
		}
		created += int(tag.RowsAffected())
	}
	return created, nil
}

// tenantActivities returns the tenant's activities with instant before
// `before`, in the order the fold needs: by instant, then as recorded.
func tenantActivities(ctx context.Context, tx pgx.Tx, tenantID models.TenantID, before time.Time) ([]models.Activity, error) {
	rows, err := tx.Query(ctx, `SELECT id, type, resource_id, coalesce(plan_id, ''), created_at FROM activities
		WHERE tenant_id = $1 AND created_at < $2 ORDER BY created_at, seq`, tenantID, before)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (models.Activity, error) {
		var a models.Activity
		err := r.Scan(&a.ID, &a.Type, &a.ResourceID, &a.PlanID, &a.At)
		a.At = a.At.UTC()
		return a, err
	})
}
