package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Tenant is a billed party, identified by its Nostr public key.
type Tenant struct {
	ID             models.TenantID `json:"id"`
	Currency       models.Currency `json:"currency"`
	PeriodSeconds  int64           `json:"period_seconds"`
	Anchor         *time.Time      `json:"billing_anchor"`
	RenewedThrough *time.Time      `json:"renewed_through"`
	Status         string          `json:"status"`
	CreatedAt      time.Time       `json:"created_at"`
}

// FixedPeriod is the tenant's fixed period length, or zero for calendar months.
func (t Tenant) FixedPeriod() time.Duration { return time.Duration(t.PeriodSeconds) * time.Second }

// Ledger returns an empty ledger with the tenant's currency and schedule.
func (t Tenant) Ledger() *models.Ledger {
	var anchor time.Time
	if t.Anchor != nil {
		anchor = *t.Anchor
	}
	return models.NewLedger(t.Currency, anchor, t.FixedPeriod())
}

const tenantColumns = `id, currency, period_seconds, billing_anchor, renewed_through, status, created_at`

func scanTenant(row pgx.Row) (Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Currency, &t.PeriodSeconds, &t.Anchor, &t.RenewedThrough, &t.Status, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, ErrNotFound
	}
	if err != nil {
		return Tenant{}, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if t.Anchor != nil {
		a := t.Anchor.UTC()
		t.Anchor = &a
	}
	if t.RenewedThrough != nil {
		r := t.RenewedThrough.UTC()
		t.RenewedThrough = &r
	}
	return t, nil
}

// EnsureTenant creates the tenant if it does not exist and returns the stored
// row. An existing tenant keeps its settings: created reports which happened.
func (s *Store) EnsureTenant(ctx context.Context, id models.TenantID, currency models.Currency, periodSeconds int64) (t Tenant, created bool, err error) {
	if periodSeconds < 0 {
		return Tenant{}, false, &models.ValidationError{Field: "period", Reason: "must not be negative"}
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		existing, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
		if err == nil {
			t = existing
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if _, err := models.ParseCurrency(string(currency)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO tenants (id, currency, period_seconds, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, id, currency, periodSeconds, s.Now().UTC())
		if err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
		created = tag.RowsAffected() == 1
		t, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
		return err
	})
	return t, created, err
}

// GetTenant returns one tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id models.TenantID) (Tenant, error) {
	return scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
}

// ListTenants returns every tenant ordered by creation.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// lockTenant reads the tenant row FOR UPDATE so that a tenant's money moves
// one transaction at a time.
func lockTenant(ctx context.Context, tx pgx.Tx, id models.TenantID) (Tenant, error) {
	t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", id)}
	}
	return t, err
}

// UpsertPlans writes the catalog. Plans missing from the file are kept, so
// resources billed on them still resolve.
func (s *Store) UpsertPlans(ctx context.Context, plans []models.Plan) error {
	if _, err := models.NewCatalog(plans); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		for _, p := range plans {
			// A plan's currency is fixed once stored: renewals re-fold history
			// against the catalog, and a changed currency would break them.
			var stored models.Currency
			err := tx.QueryRow(ctx, `SELECT currency FROM plans WHERE id = $1`, p.ID).Scan(&stored)
			if err == nil && stored != models.Currency(strings.ToLower(string(p.Currency))) {
				return &models.ValidationError{Field: "plan " + p.ID, Reason: fmt.Sprintf(
					"currency cannot change from %s to %s; add a new plan instead", stored, p.Currency)}
			}
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO plans (id, name, amount, currency, free_tier, updated_at) VALUES ($1, $2, $3, $4, $5, now())
				ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
					free_tier = EXCLUDED.free_tier, updated_at = now()`,
				p.ID, p.Name, p.Amount, strings.ToLower(string(p.Currency)), p.FreeTier)
			if err != nil {
				return fmt.Errorf("upsert plan %s: %w", p.ID, err)
			}
		}
		return nil
	})
}

// Catalog returns every plan.
func (s *Store) Catalog(ctx context.Context) (models.Catalog, error) {
	return loadCatalog(ctx, s.pool)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func loadCatalog(ctx context.Context, q querier) (models.Catalog, error) {
	rows, err := q.Query(ctx, `SELECT id, name, amount, currency FROM plans ORDER BY id`)
	if err != nil {
		return nil, err
	}
	plans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (models.Plan, error) {
		var p models.Plan
		err := r.Scan(&p.ID, &p.Name, &p.Amount, &p.Currency)
		return p, err
	})
	if err != nil {
		return nil, err
	}
	cat := make(models.Catalog, len(plans))
	for _, p := range plans {
		cat[p.ID] = p
	}
	return cat, nil
}
