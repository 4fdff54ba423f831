package bench

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/billflow/billflow/models"
)

// StormOptions sets up a renewal storm.
type StormOptions struct {
	Tenants int
	// Period is every tenant's fixed period; zero picks one long enough to
	// create the tenants and settle their prorated invoices first.
	Period time.Duration
	// Timeout bounds the wait for every invoice after the boundary.
	Timeout time.Duration
}

// DefaultStormPeriod leaves time to create n tenants (a few per second on a
// shared 2-core machine), for the claim debounce after their activation and
// for their prorated invoices to be paid before the boundary.
func DefaultStormPeriod(n int) time.Duration {
	return 50*time.Second + time.Duration(n)*600*time.Millisecond
}

// boundaryInvoice is an invoice holding a renewal item for the boundary.
type boundaryInvoice struct {
	ID, Tenant, Status, Rail string
	Total, Renewal           int64
	Renewals, TenantRenewals int
	Created                  time.Time
	Paid                     *time.Time
}

// Storm runs the renewal storm: Tenants tenants whose first boundary falls
// on one instant, measured from the boundary to each invoice's creation and
// payment, every counted invoice verified.
func Storm(ctx context.Context, s *Stack, o StormOptions) (Result, error) {
	r := Result{Scenario: "storm", Tenants: o.Tenants, Params: map[string]string{}, Latencies: map[string]Summary{}, Counts: map[string]float64{}}
	if o.Period == 0 {
		o.Period = DefaultStormPeriod(o.Tenants)
	}
	if o.Timeout == 0 {
		o.Timeout = 10*time.Minute + time.Duration(o.Tenants)*3*time.Second
	}
	if err := s.StartWorker(ctx); err != nil {
		return r, err
	}
	anchor := time.Now().UTC().Truncate(time.Second)
	boundary := anchor.Add(o.Period)
	r.Params["period"] = o.Period.String()
	r.Params["boundary"] = boundary.Format(time.RFC3339)
	setupStart := time.Now()
	tenants, err := s.CreateTenants(ctx, o.Tenants, anchor, o.Period)
	if err != nil {
		return r, err
	}
	r.Counts["setup_seconds"] = round1(time.Since(setupStart).Seconds())
	if err := s.waitNoOpenInvoices(ctx, boundary.Add(-2*time.Second)); err != nil {
		return r, fmt.Errorf("the set-up did not finish before the boundary (%v): give a longer -period than %s", err, o.Period)
	}
	r.Counts["setup_margin_seconds"] = round1(time.Until(boundary).Seconds())

	invs, err := waitBoundaryInvoices(ctx, s, boundary, len(tenants), boundary.Add(o.Timeout))
	if err != nil {
		r.Failures = append(r.Failures, err.Error())
	}
	// Paid is not yet completed: the workflow settles and then returns.
	for _, inv := range invs {
		if inv.Paid == nil {
			continue
		}
		wid := invoiceWorkflowID(inv.ID)
		deadline := time.Now().Add(time.Minute)
		for {
			done, err := s.workflowCompleted(ctx, wid)
			if err != nil || done {
				break
			}
			if time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, 250*time.Millisecond); err != nil {
				return r, err
			}
		}
	}
	var created, paid []time.Duration
	var last time.Time
	byTenant := map[models.TenantID]int{}
	for _, inv := range invs {
		byTenant[models.TenantID(inv.Tenant)]++
		if why := verifyStormInvoice(ctx, s, inv); why != "" {
			r.Failures = append(r.Failures, fmt.Sprintf("invoice %s (tenant %s): %s", inv.ID, inv.Tenant[:12], why))
			continue
		}
		created = append(created, inv.Created.Sub(boundary))
		paid = append(paid, inv.Paid.Sub(boundary))
		if inv.Paid.After(last) {
			last = *inv.Paid
		}
	}
	for _, t := range tenants {
		if byTenant[t] != 1 {
			r.Failures = append(r.Failures, fmt.Sprintf("tenant %s: %d invoices for the boundary, want 1", string(t)[:12], byTenant[t]))
		}
	}
	sort.Strings(r.Failures)
	r.Latencies["invoice_created"] = Summarize(created)
	r.Latencies["invoice_paid"] = Summarize(paid)
	if len(paid) > 0 && last.After(boundary) {
		r.ThroughputPerSecond = round2(float64(len(paid)) / last.Sub(boundary).Seconds())
	}
	r.Counts["worker_peak_rss_mb"] = float64(s.WorkerPeakRSS() / (1 << 20))
	return r, nil
}

// waitBoundaryInvoices polls until want invoices renewing at boundary are
// paid, or until the deadline, and returns what it found.
func waitBoundaryInvoices(ctx context.Context, s *Stack, boundary time.Time, want int, deadline time.Time) ([]boundaryInvoice, error) {
	for {
		invs, err := boundaryInvoices(ctx, s, boundary)
		if err != nil {
			return nil, err
		}
		paid := 0
		for _, inv := range invs {
			if inv.Paid != nil {
				paid++
			}
		}
		if paid >= want {
			return invs, nil
		}
		if time.Now().After(deadline) {
			return invs, fmt.Errorf("gave up after the deadline with %d of %d invoices paid (%d created)", paid, want, len(invs))
		}
		if err := sleep(ctx, time.Second); err != nil {
			return invs, err
		}
	}
}

func boundaryInvoices(ctx context.Context, s *Stack, boundary time.Time) ([]boundaryInvoice, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT i.id, i.tenant_id, i.status, coalesce(i.paid_rail, ''), i.total, i.created_at, i.paid_at,
			(SELECT coalesce(sum(amount), 0) FROM invoice_items x WHERE x.invoice_id = i.id AND x.kind = 'renewal'),
			(SELECT count(*) FROM invoice_items x WHERE x.invoice_id = i.id AND x.kind = 'renewal'),
			(SELECT count(*) FROM invoice_items x WHERE x.tenant_id = i.tenant_id AND x.kind = 'renewal' AND x.period_start = $1)
		FROM invoices i
		WHERE EXISTS (SELECT 1 FROM invoice_items it WHERE it.invoice_id = i.id AND it.kind = 'renewal' AND it.period_start = $1)
		ORDER BY i.created_at`, boundary)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []boundaryInvoice
	for rows.Next() {
		var b boundaryInvoice
		if err := rows.Scan(&b.ID, &b.Tenant, &b.Status, &b.Rail, &b.Total, &b.Created, &b.Paid, &b.Renewal, &b.Renewals, &b.TenantRenewals); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// verifyStormInvoice returns why an invoice fails verification, or "".
func verifyStormInvoice(ctx context.Context, s *Stack, inv boundaryInvoice) string {
	switch {
	case inv.Renewals != 1 || inv.TenantRenewals != 1:
		return fmt.Sprintf("%d renewal items on the invoice, %d for the tenant at the boundary; want one", inv.Renewals, inv.TenantRenewals)
	case inv.Renewal != PlanAmount || inv.Total != PlanAmount:
		return fmt.Sprintf("renewal amount %d and total %d, want both %d", inv.Renewal, inv.Total, PlanAmount)
	case inv.Status != "paid" || inv.Paid == nil:
		return "status " + inv.Status + ", want paid"
	case inv.Rail != "stripe":
		return "paid by " + inv.Rail + ", want stripe"
	}
	done, err := s.workflowCompleted(ctx, invoiceWorkflowID(inv.ID))
	if err != nil {
		return err.Error()
	}
	if !done {
		return "its InvoicePayment workflow is still running a minute after payment"
	}
	return ""
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
