package metrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the boundary-to-paid histogram's upper bounds, in
// seconds: from a minute (an NWC payment at the boundary) to a month (a
// tenant paying by hand late in dunning).
var LatencyBuckets = []float64{60, 300, 900, 3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600, 14 * 24 * 3600, 30 * 24 * 3600}

var (
	descInvoicesCreated = prometheus.NewDesc("billflow_invoices_created_total",
		"Invoices claimed, by currency.", []string{"currency"}, nil)
	descInvoicesPaid = prometheus.NewDesc("billflow_invoices_paid_total",
		"Invoices paid, by the rail that paid them (nwc, lightning, oob, stripe, manual).", []string{"rail"}, nil)
	descInvoices = prometheus.NewDesc("billflow_invoices",
		"Invoices by current status (open, collecting, awaiting_payment, paid, void, uncollectible).", []string{"status"}, nil)
	descAttempts = prometheus.NewDesc("billflow_payment_attempts_total",
		"Collection attempts by rail (nwc, card, dm) and outcome; outcome=\"failed\" counts failed collections by rail.", []string{"rail", "outcome"}, nil)
	descLatency = prometheus.NewDesc("billflow_invoice_paid_latency_seconds",
		"Time from an invoice's billing boundary (its period start) to its payment.", nil, nil)
	descOutbox = prometheus.NewDesc("billflow_outbox_backlog",
		"Outbound events not yet delivered to the application's webhook.", nil, nil)
	descOutboxAge = prometheus.NewDesc("billflow_outbox_oldest_undelivered_age_seconds",
		"Age of the oldest undelivered outbound event (0 when none).", nil, nil)
	descCursorAge = prometheus.NewDesc("billflow_settlement_stream_lag_seconds",
		"Time since the Lightning settlement stream last handed on a settlement (its cursor's age).", []string{"cursor"}, nil)
	descCursorIndex = prometheus.NewDesc("billflow_settlement_stream_settle_index",
		"The settle index the Lightning settlement stream resumes from.", []string{"cursor"}, nil)
	descGrace = prometheus.NewDesc("billflow_grace_windows_open",
		"Tenants in an open grace window.", nil, nil)
	descTenants = prometheus.NewDesc("billflow_tenants",
		"Tenants by status (active, grace, suspended).", []string{"status"}, nil)
	descUp = prometheus.NewDesc("billflow_billing_metrics_up",
		"1 when the billing metrics were read from Postgres at this scrape, 0 when the read failed.", nil, nil)
)

// Collector reads billflow's billing metrics from Postgres at each scrape.
type Collector struct {
	Pool *pgxpool.Pool
	// Timeout bounds one scrape's queries (default 5s).
	Timeout time.Duration
	// Now is the clock for ages; tests replace it.
	Now func() time.Time
	// Logger reports failed reads.
	Logger interface {
		Warn(msg string, args ...any)
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInvoicesCreated, descInvoicesPaid, descInvoices, descAttempts, descLatency,
		descOutbox, descOutboxAge, descCursorAge, descCursorIndex, descGrace, descTenants, descUp} {
		ch <- d
	}
}

// Collect reads the metrics. A failed read yields billflow_billing_metrics_up 0
// and no billing metrics, rather than a failed scrape of the SDK's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ms, err := c.read(ctx)
	if err != nil {
		if c.Logger != nil {
			c.Logger.Warn("billing metrics: read from Postgres failed", "error", err)
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	for _, m := range ms {
		ch <- m
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// read runs every query in one read-only, repeatable-read transaction, so
// the numbers of one scrape agree with each other.
func (c *Collector) read(ctx context.Context) ([]prometheus.Metric, error) {
	tx, err := c.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, err
	}
	var out []prometheus.Metric
	labelled := func(desc *prometheus.Desc, typ prometheus.ValueType, query string) error {
		rows, err := tx.Query(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var labels []string
			var n float64
			switch desc {
			case descAttempts:
				var rail, outcome string
				if err := rows.Scan(&rail, &outcome, &n); err != nil {
					return err
				}
				labels = []string{rail, outcome}
			default:
				var l string
				if err := rows.Scan(&l, &n); err != nil {
					return err
				}
				labels = []string{l}
			}
			out = append(out, prometheus.MustNewConstMetric(desc, typ, n, labels...))
		}
		return rows.Err()
	}
	for _, q := range []struct {
		desc  *prometheus.Desc
		typ   prometheus.ValueType
		query string
	}{
		{descInvoicesCreated, prometheus.CounterValue, `SELECT currency, count(*)::float8 FROM invoices GROUP BY currency ORDER BY currency`},
		{descInvoicesPaid, prometheus.CounterValue, `SELECT coalesce(paid_rail, 'unknown'), count(*)::float8 FROM invoices WHERE paid_at IS NOT NULL GROUP BY 1 ORDER BY 1`},
		{descInvoices, prometheus.GaugeValue, `SELECT status, count(*)::float8 FROM invoices GROUP BY status ORDER BY status`},
		{descAttempts, prometheus.CounterValue, `SELECT rail, outcome, count(*)::float8 FROM payment_attempts GROUP BY rail, outcome ORDER BY rail, outcome`},
		{descTenants, prometheus.GaugeValue, `SELECT status, count(*)::float8 FROM tenants GROUP BY status ORDER BY status`},
	} {
		if err := labelled(q.desc, q.typ, q.query); err != nil {
			return nil, err
		}
	}

	// Boundary-to-paid latency, bucketed in SQL so a scrape reads a dozen
	// numbers, not every paid invoice.
	var count uint64
	var sum float64
	const latency = `greatest(extract(epoch FROM paid_at - period_start), 0)::float8`
	if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(`+latency+`), 0) FROM invoices WHERE paid_at IS NOT NULL`).Scan(&count, &sum); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT b, (SELECT count(*) FROM invoices WHERE paid_at IS NOT NULL AND `+latency+` <= b)
		FROM unnest($1::float8[]) AS b`, LatencyBuckets)
	if err != nil {
		return nil, err
	}
	buckets := map[float64]uint64{}
	for rows.Next() {
		var b float64
		var n uint64
		if err := rows.Scan(&b, &n); err != nil {
			rows.Close()
			return nil, err
		}
		buckets[b] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out = append(out, prometheus.MustNewConstHistogram(descLatency, count, sum, buckets))

	now := c.now()
	var backlog float64
	var oldest *time.Time
	if err := tx.QueryRow(ctx, `SELECT count(*)::float8, min(created_at) FROM events WHERE delivered_at IS NULL`).Scan(&backlog, &oldest); err != nil {
		return nil, err
	}
	age := 0.0
	if oldest != nil {
		age = max(now.Sub(*oldest).Seconds(), 0)
	}
	out = append(out, prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, backlog),
		prometheus.MustNewConstMetric(descOutboxAge, prometheus.GaugeValue, age))

	crows, err := tx.Query(ctx, `SELECT name, settle_index::float8, updated_at FROM settlement_cursors ORDER BY name`)
	if err != nil {
		return nil, err
	}
	for crows.Next() {
		var name string
		var index float64
		var updated time.Time
		if err := crows.Scan(&name, &index, &updated); err != nil {
			crows.Close()
			return nil, err
		}
		out = append(out, prometheus.MustNewConstMetric(descCursorAge, prometheus.GaugeValue, max(now.Sub(updated).Seconds(), 0), name),
			prometheus.MustNewConstMetric(descCursorIndex, prometheus.GaugeValue, index, name))
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return nil, err
	}

	var grace float64
	if err := tx.QueryRow(ctx, `SELECT count(*)::float8 FROM tenants WHERE status = 'grace'`).Scan(&grace); err != nil {
		return nil, err
	}
	out = append(out, prometheus.MustNewConstMetric(descGrace, prometheus.GaugeValue, grace))
	return out, nil
}
