//go:build integration

package workflows_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/bench"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/workflows"
)

// History size of one tenant-period on the happy path, on the real dev
// server: the tenant-v5 and invoice-v7 paths must not grow back. The
// activities are stand-ins registered under the real names (the store and
// the rails are measured by the bench, not here), so the counts are the
// workflows' own: the events of the tenant run from one boundary to the
// next, and of the invoice its first boundary claimed. The limits are the
// counts measured when the paths were introduced (docs/versioning.md).
const (
	// the boundary's timer firing and workflow task, one local activity
	// (renew, claim, start the invoice, reload), the period's upsert, the
	// next timer, the settled signal's workflow task (tenant-v5: no
	// continue-as-new, no load, no child, no version read)
	maxTenantPeriodEvents = 11
	// started (collection begun by the claim, the wallet turn with it),
	// NWC pays and settles (telling the tenant: invoice-v7), the paid
	// upsert; no version read, no local activity
	maxInvoiceNWCEvents = 12
	// the same, the card paying (no NWC connection)
	maxInvoiceCardEvents = 12
)

// happyPath answers the activities of one tenant-period as the store and
// the rails do when everything goes well. The rail that pays is named in
// the invoice id the claim makes ("nwc" or "card").
type happyPath struct {
	mu      sync.Mutex
	anchor  time.Time
	period  time.Duration
	rail    map[models.TenantID]string
	renewed map[models.TenantID]time.Time
	// claimed is each tenant's invoices, in claim order.
	claimed map[models.TenantID][]string
	// tc tells the tenant from Settle, as the worker's Notifier does, and
	// starts the invoices ClaimAndStart claims, as the worker's client does.
	tc    client.Client
	queue string
}

func (h *happyPath) register(w worker.Worker) {
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	claim := func(in activities.ClaimInput) activities.ClaimResult {
		h.mu.Lock()
		defer h.mu.Unlock()
		sum := sha256.Sum256([]byte(in.ClaimKey))
		id := "perf-" + h.rail[in.TenantID] + "-" + hex.EncodeToString(sum[:8])
		if ids := h.claimed[in.TenantID]; len(ids) == 0 || ids[len(ids)-1] != id {
			h.claimed[in.TenantID] = append(ids, id)
		}
		return activities.ClaimResult{Invoice: &activities.InvoiceRef{ID: id, TenantID: in.TenantID, Total: 500, Currency: "usd", Status: "open"}}
	}
	reg("Claim", func(_ context.Context, in activities.ClaimInput) (activities.ClaimResult, error) {
		return claim(in), nil
	})
	renew := func(in activities.RenewInput) activities.RenewResult {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.renewed[in.TenantID] = in.UpTo
		upTo := in.UpTo
		return activities.RenewResult{Created: 1, RenewedThrough: &upTo}
	}
	load := func(in activities.LoadTenantInput) activities.TenantSnapshot {
		h.mu.Lock()
		defer h.mu.Unlock()
		anchor := h.anchor
		snap := activities.TenantSnapshot{TenantID: in.TenantID, Currency: "usd", PeriodSeconds: int64(h.period / time.Second),
			Anchor: &anchor, Status: "active"}
		if r, ok := h.renewed[in.TenantID]; ok {
			snap.RenewedThrough = &r
		}
		return snap
	}
	reg("LoadTenant", func(_ context.Context, in activities.LoadTenantInput) (activities.TenantSnapshot, error) {
		return load(in), nil
	})
	reg("Renew", func(_ context.Context, in activities.RenewInput) (activities.RenewResult, error) {
		return renew(in), nil
	})
	noWallet := activities.WalletRailResult{Outcome: activities.OutcomeNotCovered, Summary: "no wallet", NoWallet: true}
	beginCollection := func(in activities.InvoiceInput) activities.BeginCollectionResult {
		res := activities.BeginCollectionResult{Invoice: activities.InvoiceRef{ID: in.InvoiceID, Total: 500, Currency: "usd", Status: "collecting"},
			Policy: activities.DefaultPaymentPolicy()}
		if in.Rails && strings.HasPrefix(in.InvoiceID, "perf-card-") {
			res.NWCSkip = "no NWC wallet connected"
		}
		if in.Wallet {
			res.Wallet = &noWallet
		}
		return res
	}
	// ClaimAndStart as the worker's: renew, claim, start the invoice's
	// workflow through the client (the same options), reload.
	reg("ClaimAndStart", func(ctx context.Context, in activities.ClaimAndStartInput) (activities.ClaimAndStartResult, error) {
		var out activities.ClaimAndStartResult
		if in.RenewUpTo != nil {
			rr := renew(activities.RenewInput{TenantID: in.Claim.TenantID, UpTo: *in.RenewUpTo})
			out.Renew = &rr
		}
		out.Claim = claim(in.Claim)
		inv := out.Claim.Invoice
		var begun *activities.BeginCollectionResult
		if in.Begin {
			b := beginCollection(activities.InvoiceInput{InvoiceID: inv.ID, Rails: true, Wallet: true})
			begun = &b
		}
		_, err := h.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.InvoiceWorkflowID(inv.ID), TaskQueue: in.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrInvoice.ValueSet(inv.ID), workflows.AttrTenant.ValueSet(string(in.Claim.TenantID)),
				workflows.AttrStatus.ValueSet("collecting"), workflows.AttrAmountDue.ValueSet(inv.Total))},
			contract.WorkflowInvoicePayment, activities.InvoicePaymentStart{InvoiceID: inv.ID, TenantID: in.Claim.TenantID, Total: inv.Total, Currency: inv.Currency,
				Version: in.PaymentVersion, Begun: begun})
		if err != nil {
			return out, err
		}
		out.PaymentStarted = true
		if in.Reload != nil {
			snap := load(*in.Reload)
			out.Snapshot = &snap
		}
		return out, nil
	})
	settle := func(ctx context.Context, in activities.SettleInput) activities.SettleResult {
		res := activities.SettleResult{Invoice: activities.InvoiceRef{ID: in.InvoiceID, Total: 500, Currency: "usd", Status: "paid",
			PaidRail: in.Payment.Rail}, Outcome: "applied", TenantStatus: "active"}
		if in.TellTenant != "" {
			res.TenantTold = h.tc.SignalWorkflow(ctx, contract.TenantWorkflowID(in.TellTenant), "", contract.SignalInvoiceSettled,
				contract.InvoiceSettled{InvoiceID: in.InvoiceID, Status: "paid"}) == nil
		}
		return res
	}
	// A rail asked to settle (invoice-v7) does, as the worker's rails do.
	settleRail := func(ctx context.Context, in activities.RailAttemptInput, res activities.RailAttemptResult) activities.RailAttemptResult {
		if in.Settle && res.Payment != nil {
			s := settle(ctx, activities.SettleInput{InvoiceID: in.InvoiceID, Payment: *res.Payment, PaidAt: time.Now(), TellTenant: in.TellTenant})
			res.Settled = &s
		}
		return res
	}
	reg("BeginCollection", func(_ context.Context, in activities.InvoiceInput) (activities.BeginCollectionResult, error) {
		return beginCollection(in), nil
	})
	reg("PayFromWallet", func(context.Context, activities.RailAttemptInput) (activities.WalletRailResult, error) {
		return noWallet, nil
	})
	reg("PayByNWC", func(ctx context.Context, in activities.RailAttemptInput) (activities.RailAttemptResult, error) {
		if strings.HasPrefix(in.InvoiceID, "perf-card-") {
			return activities.RailAttemptResult{Outcome: activities.OutcomeSkipped, Summary: "no NWC wallet connected"}, nil
		}
		return settleRail(ctx, in, activities.RailAttemptResult{Outcome: activities.OutcomePaid, Summary: "paid from the tenant's wallet",
			Payment: &activities.PaymentReport{Rail: "nwc", Reference: "hash-" + in.InvoiceID, AmountMsat: 250_000}}), nil
	})
	reg("ChargeCard", func(ctx context.Context, in activities.RailAttemptInput) (activities.RailAttemptResult, error) {
		return settleRail(ctx, in, activities.RailAttemptResult{Outcome: activities.OutcomePaid, Summary: "charged the saved card",
			Payment: &activities.PaymentReport{Rail: "stripe", Reference: "pi_" + in.InvoiceID, Amount: 500, Currency: "usd"}}), nil
	})
	reg("Settle", func(ctx context.Context, in activities.SettleInput) (activities.SettleResult, error) {
		return settle(ctx, in), nil
	})
}

func TestHistorySizePerTenantPeriod(t *testing.T) {
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	period := 4 * time.Second
	h := &happyPath{anchor: time.Now().UTC().Truncate(time.Second), period: period,
		rail: map[models.TenantID]string{}, renewed: map[models.TenantID]time.Time{}, claimed: map[models.TenantID][]string{}, tc: tc, queue: queue}
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.InvoicePayment)
	h.register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx := context.Background()

	tenants := map[string]models.TenantID{"nwc": testkit.NewTenantID(t), "card": testkit.NewTenantID(t)}
	for rail, tenant := range tenants {
		h.mu.Lock()
		h.rail[tenant] = rail
		h.mu.Unlock()
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.TenantWorkflowID(tenant), TaskQueue: queue},
			workflows.TenantBilling, workflows.TenantBillingInput{TenantID: tenant})
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = tc.TerminateWorkflow(context.Background(), contract.TenantWorkflowID(tenant), "", "test over")
		})
	}
	b1, b2 := h.anchor.Add(period), h.anchor.Add(2*period)
	for rail, tenant := range tenants {
		// The set-up, the first boundary, the period measured, and the
		// second boundary's timer firing (tenant-v5: all in one run).
		var runs [][]*historypb.HistoryEvent
		var periodEvents, run []*historypb.HistoryEvent
		waitFor(t, rail+" tenant's second boundary", 2*time.Minute, func() bool {
			runs = runChain(t, tc, contract.TenantWorkflowID(tenant))
			var ok bool
			periodEvents, _, run, ok = bench.PeriodEvents(runs, b1, b2)
			return ok
		})
		require.Len(t, runs, 1, "the run billed the next period itself (tenant-v5)")
		// The set-up run claims once, at the first boundary (no activity is
		// recorded): its invoice is the tenant's first.
		h.mu.Lock()
		claimed := h.claimed[tenant]
		h.mu.Unlock()
		require.NotEmpty(t, claimed, "the first boundary's claim made an invoice")
		invoiceID := claimed[0]
		for _, ev := range run {
			require.Nil(t, ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(), "the claim started the invoice, not a child (tenant-v4)")
		}
		var invoice []*historypb.HistoryEvent
		waitFor(t, rail+" invoice completed", time.Minute, func() bool {
			invoice = events(t, tc, contract.InvoiceWorkflowID(invoiceID), "")
			return invoice[len(invoice)-1].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
		})
		maxInvoice := map[string]int{"nwc": maxInvoiceNWCEvents, "card": maxInvoiceCardEvents}[rail]
		t.Logf("%s: tenant period %d events, invoice %d events", rail, len(periodEvents), len(invoice))
		require.LessOrEqual(t, len(periodEvents), maxTenantPeriodEvents, "events of the tenant's period (%s)", rail)
		require.LessOrEqual(t, len(invoice), maxInvoice, "events of the invoice (%s)", rail)
		// The client-started run reads tenant-v5, the invoices it starts
		// are given their path in their input, and the period reads no id.
		require.True(t, hasVersionMarker(run, "tenant-v5"), "the tenant run took the tenant-v5 path")
		require.False(t, hasVersionMarker(periodEvents, ""), "the tenant's period read no change id")
		require.False(t, hasVersionMarker(invoice, ""), "the invoice read no change id")
		require.Contains(t, string(invoice[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData()), `"version":7`)
		for _, ev := range invoice {
			require.Nil(t, ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(), "the rail's settlement told the tenant (invoice-v7)")
		}
		require.False(t, hasActivity(invoice, "Settle"), "the rail settled what it took")
		require.False(t, hasLocalActivity(invoice, "PayFromWallet"), "BeginCollection ran the wallet turn")
		require.False(t, hasLocalActivity(invoice, "BeginCollection"), "the claim began the collection")
		require.False(t, hasLocalActivity(periodEvents, "LoadTenant"), "the period uses the boundary's reload")
		if rail == "card" {
			require.False(t, hasActivity(invoice, "PayByNWC"), "no NWC turn for a tenant without a connection")
		}
	}
}

// runChain returns the events of a workflow's runs, first to last.
func runChain(t *testing.T, tc client.Client, workflowID string) [][]*historypb.HistoryEvent {
	t.Helper()
	d, err := tc.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(t, err)
	runID := d.GetWorkflowExecutionInfo().GetFirstRunId()
	var out [][]*historypb.HistoryEvent
	for runID != "" && len(out) < 10 {
		evs := events(t, tc, workflowID, runID)
		out = append(out, evs)
		runID = ""
		if last := evs[len(evs)-1]; last.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
			runID = last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		}
	}
	return out
}

func events(t *testing.T, tc client.Client, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		testkit.Decode(t, ev)
		out = append(out, ev)
	}
	require.NotEmpty(t, out, workflowID)
	return out
}

// hasActivity reports whether a history schedules the activity type.
func hasActivity(evs []*historypb.HistoryEvent, name string) bool {
	for _, ev := range evs {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == name {
			return true
		}
	}
	return false
}

// hasLocalActivity reports whether a history records a local activity of the type.
func hasLocalActivity(evs []*historypb.HistoryEvent, name string) bool {
	for _, ev := range evs {
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "LocalActivity" {
			if p := m.GetDetails()["data"]; p != nil && len(p.GetPayloads()) > 0 && strings.Contains(string(p.GetPayloads()[0].GetData()), `"`+name+`"`) {
				return true
			}
		}
	}
	return false
}

// hasVersionMarker reports whether a history records the change id (any, when empty).
func hasVersionMarker(evs []*historypb.HistoryEvent, changeID string) bool {
	for _, ev := range evs {
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "Version" {
			if p := m.GetDetails()["change-id"]; p != nil && len(p.GetPayloads()) > 0 && strings.Contains(string(p.GetPayloads()[0].GetData()), changeID) {
				return true
			}
		}
	}
	return false
}
