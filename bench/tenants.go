package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

// Plan is the paid plan every bench tenant's resource is on (config/plans.json).
const (
	Plan       = "basic"
	PlanAmount = 500
)

// setupConcurrency bounds the tenant creations in flight: enough to keep
// the server busy, few enough not to time out the updates on 2 cores.
const setupConcurrency = 8

// CreateTenants creates n tenants through the billing package, each with a
// fixed period, a saved card that succeeds on the Stripe sandbox, and one
// resource on Plan created at anchor, so that every tenant's boundaries fall
// on the same instants: anchor + k*period.
func (s *Stack) CreateTenants(ctx context.Context, n int, anchor time.Time, period time.Duration) ([]models.TenantID, error) {
	ids := make([]models.TenantID, n)
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < setupConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ids[i], errs[i] = s.createTenant(ctx, anchor, period)
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("tenant %d of %d: %w", i+1, n, err)
		}
	}
	return ids, nil
}

func (s *Stack) createTenant(ctx context.Context, anchor time.Time, period time.Duration) (models.TenantID, error) {
	pk, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	if err != nil {
		return "", err
	}
	id := models.TenantID(pk)
	if _, err := s.Billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: pk, Period: period}); err != nil {
		return "", fmt.Errorf("create tenant: %w", err)
	}
	if s.TenantsPayByNWC {
		// Connected to the sandbox wallet, which pays first; the card
		// stays as the fallback.
		url, err := s.NWC.ConnectionURL()
		if err != nil {
			return "", err
		}
		if _, err := s.Vault.SetNWC(ctx, id, url); err != nil {
			return "", fmt.Errorf("connect NWC: %w", err)
		}
	}
	cus, pm := "cus_"+pk[:16], "pm_"+pk[:16]
	if err := s.Stripe.AddCustomer(stripesandbox.Customer{ID: cus,
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: pm, Card: stripesandbox.CardVisa}}, DefaultPaymentMethod: pm}); err != nil {
		return "", fmt.Errorf("stripe customer: %w", err)
	}
	// Plain SQL rather than the store's method, so a baseline worker from an
	// older commit is driven the same way.
	if _, err := s.Pool.Exec(ctx, `UPDATE tenants SET stripe_customer_id = $2 WHERE id = $1`, id, cus); err != nil {
		return "", fmt.Errorf("set stripe customer: %w", err)
	}
	if _, err := s.Billing.RecordActivity(ctx, pk, billing.Activity{ID: "bench-" + pk[:16], Type: models.ResourceCreated,
		ResourceID: "relay-1", PlanID: Plan, CreatedAt: anchor}); err != nil {
		return "", fmt.Errorf("record activity: %w", err)
	}
	return id, nil
}

// waitNoOpenInvoices waits until none of the tenants has an unpaid invoice
// or outstanding item: the activation's prorated invoice has been claimed
// (after the tenant workflow's claim debounce) and paid.
func (s *Stack) waitNoOpenInvoices(ctx context.Context, until time.Time) error {
	for {
		var open, outstanding int
		err := s.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM invoices WHERE status <> 'paid'),
			(SELECT count(*) FROM invoice_items WHERE invoice_id IS NULL)`).Scan(&open, &outstanding)
		if err != nil {
			return err
		}
		if open == 0 && outstanding == 0 {
			return nil
		}
		if time.Now().After(until) {
			return fmt.Errorf("%w: %d unpaid invoices and %d unclaimed items remain from the set-up", errTimeout, open, outstanding)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// workflowClosed reports whether a workflow's latest run has completed
// (true) or is still running (false); any other end is an error.
func (s *Stack) workflowCompleted(ctx context.Context, workflowID string) (bool, error) {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return false, err
	}
	switch st := d.GetWorkflowExecutionInfo().GetStatus(); st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return true, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return false, nil
	default:
		return false, fmt.Errorf("workflow %s ended %s", workflowID, st)
	}
}

func invoiceWorkflowID(invoiceID string) string { return contract.InvoiceWorkflowID(invoiceID) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
