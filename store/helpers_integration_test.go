//go:build integration

package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// These tests run against a real Postgres: testkit.NewStore gives every test a
// fresh, migrated database holding testkit.Plans (free 0, basic 500, pro 2000,
// euro 900 eur). Every assertion reads rows back from the database rather than
// trusting what a store method returned.

// Prices of testkit.Plans, written out so the tests do not read them back from
// the code under test.
const (
	priceBasic = 500
	pricePro   = 2000
)

// anchor0 is the billing anchor most fixed-period tests use.
var anchor0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixed is the fixed period of the fixed-period tenants: 600 seconds.
const fixed = 600 * time.Second

// at returns anchor0 plus n seconds.
func at(n int) time.Time { return anchor0.Add(time.Duration(n) * time.Second) }

// ts parses an RFC 3339 instant; it panics on a typo in a test table.
func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func bg() context.Context { return context.Background() }

// tb is what the helpers need of a test: *testing.T or *rapid.T.
type tb interface {
	require.TestingT
	Helper()
}

// newTenant creates a usd tenant with the given fixed period (0: months).
func newTenant(t *testing.T, st *store.Store, period time.Duration) models.TenantID {
	t.Helper()
	id := testkit.NewTenantID(t)
	_, created, err := st.EnsureTenant(bg(), id, "usd", int64(period/time.Second))
	require.NoError(t, err)
	require.True(t, created)
	return id
}

func created(id, resource, plan string, when time.Time) models.Activity {
	return models.Activity{ID: id, Type: models.ResourceCreated, ResourceID: resource, PlanID: plan, At: when}
}

func activated(id, resource string, when time.Time) models.Activity {
	return models.Activity{ID: id, Type: models.ResourceActivated, ResourceID: resource, At: when}
}

func deactivated(id, resource string, when time.Time) models.Activity {
	return models.Activity{ID: id, Type: models.ResourceDeactivated, ResourceID: resource, At: when}
}

func planChanged(id, resource, plan string, when time.Time) models.Activity {
	return models.Activity{ID: id, Type: models.ResourcePlanChanged, ResourceID: resource, PlanID: plan, At: when}
}

// record records an activity that must succeed.
func record(t tb, st *store.Store, tenant models.TenantID, a models.Activity) store.RecordResult {
	t.Helper()
	res, err := st.RecordActivity(bg(), tenant, a, false)
	require.NoError(t, err, "record %s", a.ID)
	return res
}

// scalar runs a query returning one integer.
func scalar(t tb, st *store.Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, st.Pool().QueryRow(bg(), sql, args...).Scan(&n), sql)
	return n
}

// counts is the number of rows a tenant has in each table.
type counts struct {
	Activities, Items, Resources, Invoices, Events int64
}

func countRows(t tb, st *store.Store, tenant models.TenantID) counts {
	t.Helper()
	return counts{
		Activities: scalar(t, st, `SELECT count(*) FROM activities WHERE tenant_id = $1`, tenant),
		Items:      scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1`, tenant),
		Resources:  scalar(t, st, `SELECT count(*) FROM resources WHERE tenant_id = $1`, tenant),
		Invoices:   scalar(t, st, `SELECT count(*) FROM invoices WHERE tenant_id = $1`, tenant),
		Events:     scalar(t, st, `SELECT count(*) FROM events WHERE tenant_id = $1`, tenant),
	}
}

// tenantRow reads the tenant's anchor and renewed_through straight from SQL.
func tenantRow(t tb, st *store.Store, tenant models.TenantID) (anchor, renewedThrough *time.Time) {
	t.Helper()
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT billing_anchor, renewed_through FROM tenants WHERE id = $1`, tenant).
		Scan(&anchor, &renewedThrough))
	return anchor, renewedThrough
}

// itemRow is an invoice_items row as stored.
type itemRow struct {
	ID          string
	Kind        string
	ActivityID  *string
	ResourceID  string
	PlanID      string
	Amount      int64
	Currency    string
	CreatedAt   time.Time
	PeriodStart time.Time
	InvoiceID   *string
}

func itemRows(t tb, st *store.Store, where string, args ...any) []itemRow {
	t.Helper()
	rows, err := st.Pool().Query(bg(), `SELECT id, kind, activity_id, resource_id, plan_id, amount, currency, created_at, period_start, invoice_id
		FROM invoice_items `+where+` ORDER BY period_start, created_at, resource_id, id`, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (itemRow, error) {
		var it itemRow
		err := r.Scan(&it.ID, &it.Kind, &it.ActivityID, &it.ResourceID, &it.PlanID, &it.Amount, &it.Currency, &it.CreatedAt,
			&it.PeriodStart, &it.InvoiceID)
		it.CreatedAt, it.PeriodStart = it.CreatedAt.UTC(), it.PeriodStart.UTC()
		return it, err
	})
	require.NoError(t, err)
	return out
}

// requireValidation asserts err is a *models.ValidationError and returns it.
func requireValidation(t tb, err error) *models.ValidationError {
	t.Helper()
	require.Error(t, err)
	var ve *models.ValidationError
	require.True(t, errors.As(err, &ve), "want *models.ValidationError, got %T: %v", err, err)
	return ve
}

// requirePgCode asserts err carries the given SQLSTATE and returns the error.
func requirePgCode(t tb, err error, code string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a Postgres error %s, got %T: %v", code, err, err)
	require.Equal(t, code, pgErr.Code, "SQLSTATE of %v", pgErr)
	return pgErr
}

// seedInvoice makes an invoice of all the tenant's outstanding items with raw
// SQL (the way Claim writes one), so payment tests do not depend on Claim.
func seedInvoice(t *testing.T, st *store.Store, tenant models.TenantID, status string) string {
	t.Helper()
	id := "inv-" + string(tenant[:8]) + "-" + time.Now().Format("150405.000000000")
	err := pgx.BeginTxFunc(bg(), st.Pool(), pgx.TxOptions{}, func(tx pgx.Tx) error {
		var total int64
		if err := tx.QueryRow(bg(), `SELECT coalesce(sum(amount), 0) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenant).
			Scan(&total); err != nil {
			return err
		}
		if _, err := tx.Exec(bg(), `INSERT INTO invoices (id, tenant_id, claim_key, currency, total, status, period_start, period_end)
			VALUES ($1, $2, $1, 'usd', $3, $4, $5, $6)`, id, tenant, total, status, anchor0, anchor0.Add(fixed)); err != nil {
			return err
		}
		_, err := tx.Exec(bg(), `UPDATE invoice_items SET invoice_id = $1 WHERE tenant_id = $2 AND invoice_id IS NULL`, id, tenant)
		return err
	})
	require.NoError(t, err)
	return id
}
