package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/payloadcodec"
)

// HistoryOptions sets up the history scenario.
type HistoryOptions struct {
	Tenants int
	// Period is every tenant's fixed period; zero picks 60 s, long enough
	// for the claim debounce and the first invoice to settle within it.
	Period  time.Duration
	Timeout time.Duration
	// Rail is how tenants pay: "card" (the default: a saved card on the
	// Stripe sandbox) or "nwc" (a wallet connected over NWC pays first).
	Rail string
	// Record, when set, is a directory the first tenant's period run and
	// its invoice's history are written to (history-tenant.json,
	// history-invoice-RAIL.json), in the replay fixtures' format.
	Record string
}

// History counts the Temporal history events of one tenant-period on the
// happy path. Tenants are created with a shared anchor; after their second
// boundary, the tenant's events from the first boundary's timer firing to
// the second's are one whole period with no set-up in it, and the first
// boundary's InvoicePayment is its invoice.
func History(ctx context.Context, s *Stack, o HistoryOptions) (Result, error) {
	r := Result{Scenario: "history", Tenants: o.Tenants, Params: map[string]string{}, Counts: map[string]float64{}}
	if o.Period == 0 {
		o.Period = 60 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	switch o.Rail {
	case "", "card":
		o.Rail = "card"
	case "nwc":
		s.TenantsPayByNWC = true
	default:
		return r, fmt.Errorf("unknown rail %q: want card or nwc", o.Rail)
	}
	r.Params["rail"] = o.Rail
	if err := s.StartWorker(ctx); err != nil {
		return r, err
	}
	anchor := time.Now().UTC().Truncate(time.Second)
	b1, b2 := anchor.Add(o.Period), anchor.Add(2*o.Period)
	r.Params["period"] = o.Period.String()
	tenants, err := s.CreateTenants(ctx, o.Tenants, anchor, o.Period)
	if err != nil {
		return r, err
	}
	first, err := waitBoundaryInvoices(ctx, s, b1, len(tenants), b1.Add(o.Timeout))
	if err != nil {
		return r, fmt.Errorf("first boundary: %w", err)
	}
	if _, err := waitBoundaryInvoices(ctx, s, b2, len(tenants), b2.Add(o.Timeout)); err != nil {
		return r, fmt.Errorf("second boundary: %w", err)
	}
	invoiceOf := map[string]string{}
	for _, inv := range first {
		invoiceOf[inv.Tenant] = inv.ID
	}
	var tenantEvents, invoiceEvents, firstRun, maxPeriod float64
	byType := map[string]map[string]float64{"tenant": {}, "invoice": {}}
	for _, t := range tenants {
		runs, err := runChain(ctx, s, contract.TenantWorkflowID(t))
		if err != nil {
			return r, err
		}
		period, before, run, ok := PeriodEvents(runs, b1, b2)
		if !ok {
			r.Failures = append(r.Failures, fmt.Sprintf("tenant %s: no boundary timer fired at both boundaries (%d runs)", string(t)[:12], len(runs)))
			continue
		}
		id, ok := invoiceOf[string(t)]
		if !ok {
			r.Failures = append(r.Failures, fmt.Sprintf("tenant %s: no invoice for the first boundary", string(t)[:12]))
			continue
		}
		invEvents, err := historyEvents(ctx, s, invoiceWorkflowID(id), "")
		if err != nil {
			return r, err
		}
		inv := len(invEvents)
		firstRun += float64(before)
		tenantEvents += float64(len(period))
		invoiceEvents += float64(inv)
		if p := float64(len(period) + inv); p > maxPeriod {
			maxPeriod = p
		}
		tally(byType, "tenant", period)
		tally(byType, "invoice", invEvents)
		if o.Record != "" {
			// Fixtures are kept decrypted: the replayer reads them without
			// this run's key.
			if err := s.decode(ctx, append(append([]*historypb.HistoryEvent{}, run...), invEvents...)); err != nil {
				return r, err
			}
			if err := writeHistory(filepath.Join(o.Record, "history-tenant.json"), run); err != nil {
				return r, err
			}
			if err := writeHistory(filepath.Join(o.Record, "history-invoice-"+o.Rail+".json"), invEvents); err != nil {
				return r, err
			}
			o.Record = ""
		}
	}
	n := float64(len(tenants) - len(r.Failures))
	if n > 0 {
		r.Counts["tenant_events_per_period"] = round1(tenantEvents / n)
		r.Counts["invoice_events_per_period"] = round1(invoiceEvents / n)
		r.Counts["events_per_tenant_period"] = round1((tenantEvents + invoiceEvents) / n)
		r.Counts["events_per_tenant_period_max"] = maxPeriod
		r.Counts["tenant_first_run_events_with_setup"] = round1(firstRun / n)
		for _, m := range byType {
			for k, v := range m {
				m[k] = round1(v / n)
			}
		}
		r.EventTypes = byType
	}
	r.Notes = append(r.Notes, "tenant events: from the first boundary's timer firing to the second's, across continue-as-new when a run ends there; invoice events: the first boundary's InvoicePayment; averages over tenants")
	return r, nil
}

// decode decrypts the events' payloads in place with the bench's payload
// keys (nothing to do when they are plaintext).
func (s *Stack) decode(ctx context.Context, events []*historypb.HistoryEvent) error {
	if s.payloadKeys == payloadcodec.Plaintext {
		return nil
	}
	c, err := payloadcodec.ParseKeys(s.payloadKeys)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if err := c.DecodeMessage(ctx, ev); err != nil {
			return fmt.Errorf("decode event %d: %w", ev.GetEventId(), err)
		}
	}
	return nil
}

// writeHistory writes events as the replayer reads them (the e2e
// recorder's format).
func writeHistory(path string, events []*historypb.HistoryEvent) error {
	raw := make([]json.RawMessage, 0, len(events))
	for _, ev := range events {
		b, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
		if err != nil {
			return err
		}
		raw = append(raw, b)
	}
	out, err := json.MarshalIndent(map[string]any{"events": raw}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// tally adds each event's type to m[name].
func tally(m map[string]map[string]float64, name string, events []*historypb.HistoryEvent) {
	for _, ev := range events {
		m[name][strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")]++
	}
}

// PeriodEvents cuts one tenant-period out of a tenant's runs: the events
// from the timer that fired at the first boundary up to (not including) the
// one that fired at the second, across a continue-as-new between them (one
// run per period) or within one run (a run that bills the next period
// itself). before counts the events ahead of that window (the set-up), and
// run is the whole run in which the window ends, for a replay fixture.
func PeriodEvents(runs [][]*historypb.HistoryEvent, b1, b2 time.Time) (period []*historypb.HistoryEvent, before int, run []*historypb.HistoryEvent, ok bool) {
	// The server fires a timer at or after its instant; a second of slack
	// covers the clocks' rounding.
	fired := func(ev *historypb.HistoryEvent, at time.Time) bool {
		return ev.GetEventType() == enumspb.EVENT_TYPE_TIMER_FIRED && !ev.GetEventTime().AsTime().Before(at.Add(-time.Second))
	}
	start := -1
	var all []*historypb.HistoryEvent
	for _, events := range runs {
		for _, ev := range events {
			switch {
			case start < 0 && fired(ev, b1):
				start = len(all)
			case start >= 0 && len(all) > start && fired(ev, b2):
				return all[start:], start, events, true
			}
			all = append(all, ev)
		}
	}
	return nil, 0, nil, false
}

// runChain returns the events of a workflow's runs, first to last,
// following continue-as-new.
func runChain(ctx context.Context, s *Stack, workflowID string) ([][]*historypb.HistoryEvent, error) {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return nil, err
	}
	runID := d.GetWorkflowExecutionInfo().GetFirstRunId()
	var out [][]*historypb.HistoryEvent
	for runID != "" && len(out) < 100 {
		events, err := historyEvents(ctx, s, workflowID, runID)
		if err != nil {
			return nil, err
		}
		out = append(out, events)
		runID = ""
		if last := events[len(events)-1]; last.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
			runID = last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		}
	}
	return out, nil
}

func historyEvents(ctx context.Context, s *Stack, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	it := s.Temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		out = append(out, ev)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("history of %s %s is empty", workflowID, runID)
	}
	return out, nil
}
