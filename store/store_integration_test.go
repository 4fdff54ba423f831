//go:build integration

package store_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// schemaSnapshot lists the public schema's tables, columns, indexes,
// constraints and triggers, so a second Migrate can be shown to change nothing.
func schemaSnapshot(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Pool().Query(bg(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns WHERE table_schema = 'public'
		UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
		UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
		UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func gooseVersions(t *testing.T, st *store.Store) []int64 {
	t.Helper()
	rows, err := st.Pool().Query(bg(), `SELECT version_id FROM goose_db_version WHERE is_applied ORDER BY id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return out
}

// embeddedVersions lists goose's version rows for the migration files: 0 (the
// table's own row) and each file's numeric prefix.
func embeddedVersions(t *testing.T) []int64 {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	require.NoError(t, err)
	out := []int64{0}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		require.NoError(t, err, e.Name())
		out = append(out, v)
	}
	require.GreaterOrEqual(t, len(out), 3)
	return out
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	st := testkit.NewStore(t) // already migrated once
	versions := gooseVersions(t, st)
	schema := schemaSnapshot(t, st)
	require.Equal(t, embeddedVersions(t), versions, "every migration recorded once")
	for _, want := range []string{
		"trigger invoice_total_matches_items",
		"index invoice_items_renewal_once",
		"column invoice_items.invoice_id text",
	} {
		found := false
		for _, s := range schema {
			found = found || strings.HasPrefix(s, want)
		}
		assert.True(t, found, "schema lacks %q", want)
	}
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))

	require.NoError(t, st.Migrate(bg()))
	require.NoError(t, st.Migrate(bg()))

	assert.Equal(t, versions, gooseVersions(t, st), "no migration recorded twice")
	assert.Equal(t, schema, schemaSnapshot(t, st), "schema unchanged")
	assert.Equal(t, int64(len(testkit.Plans)), scalar(t, st, `SELECT count(*) FROM plans`))
	assert.Equal(t, counts{Activities: 1, Items: 1, Resources: 1}, countRows(t, st, tenant), "data kept")
}

// TestMigrateConcurrentlyOnEmptyDatabase starts several workers' Migrate at
// once on an empty database: the advisory lock makes exactly one apply it.
func TestMigrateConcurrentlyOnEmptyDatabase(t *testing.T) {
	admin := testkit.AdminURL(t)
	conn, err := pgx.Connect(bg(), admin)
	require.NoError(t, err)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "billflow_migrate_" + hex.EncodeToString(b)
	_, err = conn.Exec(bg(), "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = conn.Exec(bg(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = conn.Close(bg())
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name

	const workers = 4
	stores := make([]*store.Store, workers)
	for i := range stores {
		stores[i], err = store.Open(bg(), u.String())
		require.NoError(t, err)
		defer stores[i].Close()
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = stores[i].Migrate(bg())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "worker %d", i)
	}
	assert.Equal(t, embeddedVersions(t), gooseVersions(t, stores[0]))
}

func TestEnsureTenantCreatesOnceAndKeepsSettings(t *testing.T) {
	st := testkit.NewStore(t)
	id := testkit.NewTenantID(t)

	first, created, err := st.EnsureTenant(bg(), id, "usd", 600)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, id, first.ID)
	assert.Equal(t, models.Currency("usd"), first.Currency)
	assert.Equal(t, int64(600), first.PeriodSeconds)
	assert.Nil(t, first.Anchor)
	assert.Nil(t, first.RenewedThrough)
	assert.Equal(t, "active", first.Status)

	second, created, err := st.EnsureTenant(bg(), id, "eur", 0)
	require.NoError(t, err)
	assert.False(t, created, "second call must not create")
	assert.Equal(t, first, second, "second call returns the stored tenant unchanged")

	var (
		currency string
		period   int64
		status   string
	)
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT currency, period_seconds, status FROM tenants WHERE id = $1`, id).
		Scan(&currency, &period, &status))
	assert.Equal(t, "usd", currency)
	assert.Equal(t, int64(600), period)
	assert.Equal(t, "active", status)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM tenants`))

	got, err := st.GetTenant(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, first, got)
	list, err := st.ListTenants(bg())
	require.NoError(t, err)
	assert.Equal(t, []store.Tenant{first}, list)
}

func TestEnsureTenantRejectsNegativePeriod(t *testing.T) {
	st := testkit.NewStore(t)
	_, _, err := st.EnsureTenant(bg(), testkit.NewTenantID(t), "usd", -1)
	requireValidation(t, err)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM tenants`))
}

func TestGetTenantNotFound(t *testing.T) {
	st := testkit.NewStore(t)
	_, err := st.GetTenant(bg(), testkit.NewTenantID(t))
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestTenantIDCheckRejectsNonHexInSQL(t *testing.T) {
	st := testkit.NewStore(t)
	for _, id := range []string{
		"not-a-hex-key",
		strings.Repeat("g", 64),
		strings.ToUpper(string(testkit.NewTenantID(t))), // upper case is not the normal form
		string(testkit.NewTenantID(t))[:63],
		string(testkit.NewTenantID(t)) + "0",
	} {
		_, err := st.Pool().Exec(bg(), `INSERT INTO tenants (id, currency) VALUES ($1, 'usd')`, id)
		pgErr := requirePgCode(t, err, "23514") // check_violation
		assert.Equal(t, "tenants_id_check", pgErr.ConstraintName, "id %q", id)

		// The store path reaches the same constraint.
		_, _, err = st.EnsureTenant(bg(), models.TenantID(id), "usd", 0)
		requirePgCode(t, err, "23514")
	}
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM tenants`))

	_, err := st.Pool().Exec(bg(), `INSERT INTO tenants (id, currency) VALUES ($1, 'USD')`, string(testkit.NewTenantID(t)))
	requirePgCode(t, err, "23514")
}
