//go:build integration

package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/models"
)

// fixture writes rows the way the engine leaves them, in one transaction
// (the invoice-total triggers are deferred to commit).
type fixture struct {
	t  *testing.T
	tx pgx.Tx
}

func (f fixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.tx.Exec(context.Background(), sql, args...)
	require.NoError(f.t, err, sql)
}

func (f fixture) tenant(id models.TenantID, status string, graceEnds *time.Time) {
	var suspended *time.Time
	if status == "suspended" {
		now := time.Now()
		suspended = &now
	}
	f.exec(`INSERT INTO tenants (id, currency, status, grace_expires_at, suspended_at) VALUES ($1, 'usd', $2, $3, $4)`, id, status, graceEnds, suspended)
}

// invoice writes an invoice of 2000 with its renewal item; paidAt and rail
// for a paid one.
func (f fixture) invoice(tenant models.TenantID, currency, status string, periodStart time.Time, paidAt *time.Time, rail string) string {
	id := uuid.NewString()
	var closedAt *time.Time
	if status == "void" || status == "uncollectible" {
		now := time.Now()
		closedAt = &now
	}
	var paidRail *string
	if rail != "" {
		paidRail = &rail
	}
	var amountPaid int64
	if status == "paid" {
		amountPaid = 2000
	}
	f.exec(`INSERT INTO invoices (id, tenant_id, claim_key, currency, total, status, period_start, period_end, paid_at, paid_rail, closed_at, amount_paid)
		VALUES ($1, $2, $1, $3, 2000, $4, $5, $6, $7, $8, $9, $10)`, id, tenant, currency, status, periodStart, periodStart.AddDate(0, 1, 0), paidAt, paidRail, closedAt, amountPaid)
	if status == "paid" {
		// The payment that paid it: amount_paid is the sum of applied payments.
		f.exec(`INSERT INTO payments (id, invoice_id, tenant_id, rail, money_ref, reference, amount, currency, received_at, applied, applied_amount)
			VALUES ($1, $2, $3, 'manual', $1, $1, 2000, $4, $5, true, 2000)`, uuid.NewString(), id, tenant, currency, paidAt)
	}
	plan := "pro"
	if currency == "eur" {
		plan = "euro"
	}
	f.exec(`INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start, description, invoice_id)
		VALUES ($1, $2, 'renewal', $1, $3, 2000, $4, $5, $5, 'renewal', $6)`, uuid.NewString(), tenant, plan, currency, periodStart, id)
	return id
}

func ptr(t time.Time) *time.Time { return &t }

// TestBillingCollectorReadsThePostgresState writes a known state and reads
// every billing metric back through /metrics.
func TestBillingCollectorReadsThePostgresState(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	boundary := now.Add(-48 * time.Hour)

	tx, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	// Runs before the store closes (cleanups run last-in first-out): a
	// failed fixture must not leave the pool waiting for its connection.
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	f := fixture{t: t, tx: tx}
	active, grace, suspended := testkit.NewTenantID(t), testkit.NewTenantID(t), testkit.NewTenantID(t)
	f.tenant(active, "active", nil)
	f.tenant(grace, "grace", ptr(now.Add(time.Hour)))
	f.tenant(suspended, "suspended", nil)
	// Paid 30s, 10 minutes and 2 hours after their boundary.
	f.invoice(active, "usd", "paid", boundary, ptr(boundary.Add(30*time.Second)), "nwc")
	f.invoice(active, "usd", "paid", boundary, ptr(boundary.Add(10*time.Minute)), "stripe")
	f.invoice(active, "eur", "paid", boundary, ptr(boundary.Add(2*time.Hour)), "stripe")
	failed := f.invoice(grace, "usd", "awaiting_payment", boundary, nil, "")
	f.invoice(suspended, "usd", "void", boundary, nil, "")
	f.exec(`INSERT INTO payment_attempts (invoice_id, attempt, rail, outcome, at) VALUES ($1, 1, 'nwc', 'failed', $2), ($1, 1, 'card', 'failed', $2), ($1, 1, 'dm', 'sent', $2), ($1, 2, 'card', 'failed', $2)`, failed, now)
	f.exec(`INSERT INTO events (id, tenant_id, type, subject_id, payload, created_at, delivered_at) VALUES
		('e1', $1, 'invoice.created', 'a', '{}', $2, NULL), ('e2', $1, 'invoice.paid', 'a', '{}', $3, NULL), ('e3', $1, 'invoice.created', 'b', '{}', $3, $3)`,
		active, now.Add(-90*time.Second), now.Add(-10*time.Second))
	f.exec(`INSERT INTO settlement_cursors (name, settle_index, updated_at) VALUES ('lnd', 42, $1)`, now.Add(-5*time.Minute))
	require.NoError(t, tx.Commit(ctx))

	reg := metrics.New()
	require.NoError(t, reg.Register(&metrics.Collector{Pool: st.Pool(), Now: func() time.Time { return now }}))
	body := scrape(t, reg.Handler(nil))
	for _, line := range []string{
		`billflow_invoices_created_total{currency="eur"} 1`,
		`billflow_invoices_created_total{currency="usd"} 4`,
		`billflow_invoices_paid_total{rail="nwc"} 1`,
		`billflow_invoices_paid_total{rail="stripe"} 2`,
		`billflow_invoices{status="paid"} 3`,
		`billflow_invoices{status="awaiting_payment"} 1`,
		`billflow_invoices{status="void"} 1`,
		`billflow_payment_attempts_total{outcome="failed",rail="card"} 2`,
		`billflow_payment_attempts_total{outcome="failed",rail="nwc"} 1`,
		`billflow_payment_attempts_total{outcome="sent",rail="dm"} 1`,
		`billflow_invoice_paid_latency_seconds_bucket{le="60"} 1`,
		`billflow_invoice_paid_latency_seconds_bucket{le="900"} 2`,
		`billflow_invoice_paid_latency_seconds_bucket{le="3600"} 2`,
		`billflow_invoice_paid_latency_seconds_bucket{le="21600"} 3`,
		`billflow_invoice_paid_latency_seconds_bucket{le="+Inf"} 3`,
		`billflow_invoice_paid_latency_seconds_sum 7830`,
		`billflow_invoice_paid_latency_seconds_count 3`,
		`billflow_outbox_backlog 2`,
		`billflow_outbox_oldest_undelivered_age_seconds 90`,
		`billflow_settlement_stream_lag_seconds{cursor="lnd"} 300`,
		`billflow_settlement_stream_settle_index{cursor="lnd"} 42`,
		`billflow_grace_windows_open 1`,
		`billflow_tenants{status="active"} 1`,
		`billflow_tenants{status="grace"} 1`,
		`billflow_tenants{status="suspended"} 1`,
		`billflow_billing_metrics_up 1`,
	} {
		assert.Contains(t, body, line+"\n")
	}
}

// TestBillingCollectorSurvivesADatabaseOutage: a scrape while Postgres is
// unreachable says so (up 0) instead of failing the whole page.
func TestBillingCollectorSurvivesADatabaseOutage(t *testing.T) {
	st := testkit.NewStore(t)
	reg := metrics.New()
	pool := st.Pool()
	require.NoError(t, reg.Register(&metrics.Collector{Pool: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	pool.Close()
	body := scrape(t, reg.Handler(nil))
	assert.Contains(t, body, "billflow_billing_metrics_up 0\n")
	assert.Contains(t, body, "go_goroutines")
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return strings.ReplaceAll(rec.Body.String(), "\r", "")
}
