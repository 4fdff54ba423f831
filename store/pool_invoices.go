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

// Free-tier grants on invoices (issue 11), optional per plan (plans.json
// "free_tier": true). The claim of a tenant's items asks the pool when one
// of them is on such a plan; a free-tier grant becomes a credit item (kind
// free_tier) on the invoice, so its total is still the sum of its items.
// The grant is advisory until the invoice's remaining charge is paid: the
// settlement's transaction then debits the pool (the payer's daily budget
// re-checked, LEAST(balance, credit) taken) and records the grant; what the
// pool could no longer fund comes back as an outstanding item for the next
// claim: asked for, never absorbed silently.

// ItemKindFreeTier is a free-tier credit item on an invoice (negative) or
// what the pool could not fund of one (positive, outstanding).
const ItemKindFreeTier = "free_tier"

// invoiceCredit is a claim's free-tier credit, decided before the invoice
// is written.
type invoiceCredit struct {
	amount, estimated, budget int64
	tier                      models.TrustTier
	plan                      string
}

// planInvoiceCredit decides the free-tier credit of a claim of total (in
// the claim's transaction; nothing debited): none without a pool, without
// an item on a free_tier plan, or when the pool gates. The payer always
// pays at least one minor unit, so the invoice keeps a charge whose
// payment funds the grant.
func planInvoiceCredit(ctx context.Context, tx pgx.Tx, cfg *models.PoolConfig, tenant models.TenantID, items []Item, total int64, now time.Time) (*invoiceCredit, error) {
	if cfg == nil || total <= 1 {
		return nil, nil
	}
	plans := make([]string, 0, len(items))
	for _, it := range items {
		if it.PlanID != "" {
			plans = append(plans, it.PlanID)
		}
	}
	var plan string
	err := tx.QueryRow(ctx, `SELECT id FROM plans WHERE free_tier AND id = ANY($1) ORDER BY id LIMIT 1`, plans).Scan(&plan)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, _, _, _, err := decideTx(ctx, tx, *cfg, tenant, total, now)
	if errors.Is(err, ErrPoolNotConfigured) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	amount := min(v.Absorb, total-1)
	if amount <= 0 {
		return nil, nil
	}
	return &invoiceCredit{amount: amount, estimated: total, budget: v.DailyBudget, tier: v.Tier, plan: plan}, nil
}

// writeInvoiceCredit puts the credit item on the claimed invoice (whose
// total already excludes it) and remembers it for the settlement.
func writeInvoiceCredit(ctx context.Context, tx pgx.Tx, inv Invoice, c *invoiceCredit) error {
	id := uuid.NewString()
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start,
		description, invoice_id) VALUES ($1, $2, 'free_tier', 'free-tier', $3, $4, $5, $6, $7, $8, $9)`,
		id, inv.TenantID, c.plan, -c.amount, inv.Currency, inv.CreatedAt, inv.PeriodStart,
		fmt.Sprintf("Free-tier grant from the generosity pool (tier %s)", c.tier), inv.ID); err != nil {
		return fmt.Errorf("insert the free-tier credit of invoice %s: %w", inv.ID, err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO invoice_pool_credits (invoice_id, payer, item_id, amount, estimated, tier, daily_budget)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, inv.ID, inv.TenantID, id, c.amount, c.estimated, c.tier, c.budget)
	return err
}

// invoiceGrantKey is the request key of an invoice's free-tier grant.
func invoiceGrantKey(invoiceID string) string { return "invoice-credit/" + invoiceID }

// fundInvoiceCredit funds an invoice's free-tier credit in its settlement
// (once: the row is marked funded). Locks: the payer's daily row, then the
// pool, as every decision.
func fundInvoiceCredit(ctx context.Context, tx pgx.Tx, inv Invoice, at time.Time) error {
	var c invoiceCredit
	var plan string
	err := tx.QueryRow(ctx, `SELECT c.amount, c.estimated, c.tier, c.daily_budget, i.plan_id FROM invoice_pool_credits c
		JOIN invoice_items i ON i.id = c.item_id WHERE c.invoice_id = $1 AND c.funded_at IS NULL FOR UPDATE OF c`, inv.ID).
		Scan(&c.amount, &c.estimated, &c.tier, &c.budget, &plan)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	now := at.UTC().Truncate(time.Microsecond)
	var start time.Time
	var absorbed int64
	if err := tx.QueryRow(ctx, `INSERT INTO pool_daily (payer, window_start, absorbed) VALUES ($1, $2, 0)
		ON CONFLICT (payer) DO UPDATE SET absorbed = pool_daily.absorbed RETURNING window_start, absorbed`, inv.TenantID, now).Scan(&start, &absorbed); err != nil {
		return fmt.Errorf("lock the payer's daily budget: %w", err)
	}
	start, absorbed = windowAbsorbed(start.UTC(), absorbed, now)
	want := min(c.amount, models.DailyRemaining(c.budget, absorbed))
	var taken, balance, before int64
	var cur models.Currency
	var floor int64
	if err := tx.QueryRow(ctx, `WITH cur AS (SELECT balance FROM pool WHERE id = 1 FOR UPDATE)
		UPDATE pool SET balance = pool.balance - LEAST(cur.balance, $1), updated_at = $2 FROM cur WHERE id = 1
		RETURNING LEAST(cur.balance, $1), pool.balance, cur.balance, pool.currency, pool.low_floor`, max(want, 0), now).
		Scan(&taken, &balance, &before, &cur, &floor); err != nil {
		return fmt.Errorf("debit the pool for invoice %s's free-tier credit: %w", inv.ID, err)
	}
	g := PoolGrant{RequestKey: invoiceGrantKey(inv.ID), Payer: inv.TenantID, Tier: c.tier, Serve: models.ServePartial, Currency: cur,
		Estimated: c.estimated, Reserved: taken, Absorbed: taken, Outcome: GrantRecorded, ReservedAt: now, SettledAt: &now}
	if taken > 0 {
		if err := moveDaily(ctx, tx, inv.TenantID, start, absorbed, taken, now); err != nil {
			return err
		}
	} else {
		g.Outcome, g.Reason = GrantUnfunded, "the pool is empty or the daily budget is used"
	}
	if err := insertGrant(ctx, tx, g); err != nil {
		return err
	}
	if short := c.amount - taken; short > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start,
			description) VALUES ($1, $2, 'free_tier', 'free-tier', $3, $4, $5, $6, $7, $8)`,
			uuid.NewString(), inv.TenantID, plan, short, inv.Currency, now, inv.PeriodStart,
			fmt.Sprintf("Free-tier grant of invoice %s the pool could not fund", inv.ID)); err != nil {
			return fmt.Errorf("charge the unfunded free-tier credit of invoice %s: %w", inv.ID, err)
		}
	}
	if before >= floor && balance < floor {
		if err := poolLowEvent(ctx, tx, true, inv.TenantID, g.RequestKey, balance); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `UPDATE invoice_pool_credits SET funded = $2, funded_at = $3 WHERE invoice_id = $1`, inv.ID, taken, now)
	return err
}
