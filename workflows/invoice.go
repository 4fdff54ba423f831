package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// Rails a payment can be recorded through.
var Rails = contract.Rails

// Invoice workflow signals and updates beyond mark-paid.
const (
	// UpdateCloseInvoice voids an invoice or writes it off.
	UpdateCloseInvoice = contract.UpdateCloseInvoice
	// UpdateLightningInvoice returns a payable BOLT11 for the payment page.
	UpdateLightningInvoice = contract.UpdateLightningInvoice
	// SignalCardFailed reports a failed PaymentIntent of this invoice
	// (Stripe's payment_intent.payment_failed webhook).
	SignalCardFailed = contract.SignalCardFailed
)

// InvoicePaymentInput starts the collection of one invoice. A run started
// with only InvoiceID set (money reported for an invoice whose workflow has
// finished) reads the rest from the store.
type InvoicePaymentInput struct {
	InvoiceID string          `json:"invoice_id"`
	TenantID  models.TenantID `json:"tenant_id"`
	Total     int64           `json:"total"`
	Currency  models.Currency `json:"currency"`
	// Carry is the state a continued-as-new run resumes from; nil at start.
	Carry *InvoiceCarry `json:"carry,omitempty"`
	// ContinueAfter, when positive, continues as new after that many waits
	// in one run instead of when Temporal suggests it (tests use it to
	// cross continue-as-new at every wait point).
	ContinueAfter int `json:"continue_after,omitempty"`
	// Version is the consolidated change id's number whose path this run
	// takes without reading it (pathInvoiceV5 and later); 0 reads the ids.
	Version int `json:"version,omitempty"`
	// Begun (invoice-v7) is BeginCollection's answer, when the claim that
	// started the run ran it: the run takes it instead of running it.
	Begun *activities.BeginCollectionResult `json:"begun,omitempty"`
}

// InvoiceCarry is what collection remembers across continue-as-new.
type InvoiceCarry struct {
	Policy       activities.PaymentPolicy `json:"policy"`
	Attempt      int                      `json:"attempt"`
	Attempts     []AttemptRow             `json:"attempts"`
	WaitingSince time.Time                `json:"waiting_since"`
	FirstFailure *time.Time               `json:"first_failure,omitempty"`
	LastFailure  string                   `json:"last_failure,omitempty"`
	Reconciled   int                      `json:"reconciled"`
	Dunned       int                      `json:"dunned"`
	GraceOpened  bool                     `json:"grace_opened"`
	// CardPending: a card charge is processing and its webhook decides it;
	// no attempt charges the card again meanwhile.
	CardPending bool `json:"card_pending,omitempty"`
	// Status is the collection status the run had (awaiting_payment when empty).
	Status string `json:"status,omitempty"`
	// TenantStatus is the tenant's standing at the last settlement, when known.
	TenantStatus string `json:"tenant_status,omitempty"`
	// Reports are payment reports not recorded yet: taken off the signal
	// channel as the run ended, or whose settlement failed and is retried.
	Reports []MarkPaidRequest `json:"reports,omitempty"`
	// CardFailures are card-failed signals taken off the channel as the run ended.
	CardFailures []CardFailed `json:"card_failures,omitempty"`
	// NeedsAction is the step that failed for good and waits for a retry.
	NeedsAction *NeedsAction `json:"needs_action,omitempty"`
	// PendingStatus is a collection status the store has not taken yet.
	PendingStatus string `json:"pending_status,omitempty"`
}

// AttemptRow is one rail's outcome in one cascade attempt, as shown in the UI.
type AttemptRow struct {
	Attempt int       `json:"attempt"`
	Rail    string    `json:"rail"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// MarkPaidRequest reports money received for an invoice.
type MarkPaidRequest = contract.MarkPaidRequest

func paymentReport(m MarkPaidRequest) activities.PaymentReport {
	return activities.PaymentReport(m)
}

func markPaidRequest(p activities.PaymentReport) MarkPaidRequest {
	return MarkPaidRequest(p)
}

// CloseInvoiceRequest voids an invoice ("void") or writes it off ("uncollectible").
type CloseInvoiceRequest = contract.CloseInvoiceRequest

// CardFailed is the card-failed signal's payload.
type CardFailed = contract.CardFailed

// InvoicePaymentResult is the invoice's final state.
type InvoicePaymentResult = contract.InvoicePaymentResult

type invoiceVersions struct {
	needsAction, oneTimer, attemptOnce, resolveNWC, lateReport, partial, walletFirst bool
	// local: the invoice-v4 path (every change above, store steps as local
	// activities, only changed search attributes upserted).
	local bool
	// v5: the invoice-v5 path (invoice-v4's, the path carried in the input
	// and the first attempt's NWC step skipped when there is no NWC rail).
	v5 bool
	// v6: the invoice-v6 path (invoice-v5's, and Settle tells the tenant).
	v6 bool
	// v7: the invoice-v7 path (invoice-v6's, the first wallet turn run by
	// BeginCollection and the rails settling what they took).
	v7 bool
	// path is the number carried into the next run (0: none).
	path int
}

// readInvoiceVersions takes the path the input names, if any; otherwise it
// reads invoice-v6 first, then invoice-v5, then invoice-v4: a run that has one takes every
// earlier change without reading their ids; one without either (recorded
// before them) reads the older ids exactly as it did then.
func readInvoiceVersions(ctx workflow.Context, carried int) invoiceVersions {
	if carried < pathInvoiceV7 && patched(ctx, changeInvoiceV7) {
		// Read first, also by a run carrying an older path (one recorded
		// before invoice-v7 finds no marker and keeps its path).
		carried = pathInvoiceV7
	}
	if carried == 0 {
		// Newest first: a run with one takes it and reads no older id.
		if patched(ctx, changeInvoiceV6) {
			carried = pathInvoiceV6
		} else if patched(ctx, changeInvoiceV5) {
			carried = pathInvoiceV5
		}
	}
	if carried >= pathInvoiceV5 {
		return invoiceVersions{needsAction: true, oneTimer: true, attemptOnce: true, resolveNWC: true,
			lateReport: true, partial: true, walletFirst: true, local: true, v5: true, v6: carried >= pathInvoiceV6,
			v7: carried >= pathInvoiceV7, path: carried}
	}
	if patched(ctx, changeInvoiceV4) {
		return invoiceVersions{needsAction: true, oneTimer: true, attemptOnce: true, resolveNWC: true,
			lateReport: true, partial: true, walletFirst: true, local: true}
	}
	return invoiceVersions{
		needsAction: patched(ctx, changeInvoiceNeedsAction),
		oneTimer:    patched(ctx, changeInvoiceOneTimer),
		attemptOnce: patched(ctx, changeInvoiceAttemptOnce),
		resolveNWC:  patched(ctx, changeInvoiceResolveNWC),
		lateReport:  patched(ctx, changeInvoiceLateReport),
		partial:     patched(ctx, changeInvoicePartial),
		walletFirst: patched(ctx, changeInvoiceWalletFirst),
	}
}

type invoiceRun struct {
	in     InvoicePaymentInput
	c      InvoiceCarry
	v      invoiceVersions
	status string
	result *InvoicePaymentResult
	mu     workflow.Mutex
	retry  workflow.ReceiveChannel
	budget runBudget
	// late: this run was started to record money for an invoice whose
	// collection had finished (input with only the invoice id);
	// closedAtStart: the invoice was paid or closed when the run began.
	late, closedAtStart bool
	// tenantTold (invoice-v6): Settle signalled the tenant that the
	// invoice is paid, so the end of the run need not.
	tenantTold bool
	// nwcSkip (invoice-v5): why the first attempt's NWC turn would skip,
	// from BeginCollection; that turn is not run, ChargeCard records it.
	nwcSkip string
	// wallet (invoice-v7): the first attempt's wallet turn, run by
	// BeginCollection; nil when it did not run (the attempt runs it).
	wallet *activities.WalletRailResult
	// The pending reconcile or dunning timer, kept across wake-ups.
	timer       workflow.Future
	timerAt     time.Time
	cancelTimer workflow.CancelFunc
}

// InvoicePayment collects one invoice: a cascade of NWC, then the saved
// card, then a DM with the payment link; then it waits, with no polling, for
// money reported by the Lightning settlement stream, Stripe's webhooks or the
// application, reconciles with LND and Stripe on timers, and retries the
// automatic rails on the dunning schedule. The first failed attempt opens the
// tenant's grace window. A step that fails for good parks the invoice as
// needs_action until a retry; the workflow itself never fails over it.
// ID: invoice/<invoice-id>.
func InvoicePayment(ctx workflow.Context, in InvoicePaymentInput) (InvoicePaymentResult, error) {
	r := &invoiceRun{in: in, status: "open", mu: workflow.NewMutex(ctx), budget: runBudget{max: in.ContinueAfter}}
	r.v = readInvoiceVersions(ctx, in.Version)
	if r.v.path != 0 {
		// A run continued as new takes this path without reading it.
		r.in.Version = r.v.path
	}
	if in.Carry != nil {
		r.c, r.status = *in.Carry, "awaiting_payment"
		if r.c.Status != "" {
			r.status = r.c.Status
		}
	}
	r.late = r.v.lateReport && in.Carry == nil && in.TenantID == ""
	if err := r.handlers(ctx); err != nil {
		return InvoicePaymentResult{}, err
	}
	paid := workflow.GetSignalChannelWithOptions(ctx, SignalPaid, workflow.SignalChannelOptions{
		Description: "Payment report (rail, reference, amount) from the settlement stream or application code; the first payment wins.",
	})
	cardFailed := workflow.GetSignalChannelWithOptions(ctx, SignalCardFailed, workflow.SignalChannelOptions{
		Description: "Stripe reported a failed PaymentIntent for this invoice.",
	})
	r.retry = workflow.GetSignalChannelWithOptions(ctx, SignalRetry, workflow.SignalChannelOptions{
		Description: "Re-run the step that needs action (after its cause was fixed).",
	})
	if r.v.local && in.Carry == nil {
		// begin, a local activity in this same workflow task, publishes
		// the invoice as the store has it; search attributes upserted now
		// would be replaced at once, so only the details are shown.
		r.details(ctx)
	} else {
		r.publish(ctx)
	}

	if in.Carry == nil {
		done, err := r.begin(ctx)
		if err != nil {
			return InvoicePaymentResult{}, err
		}
		if done != nil {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return InvoicePaymentResult{}, err
			}
			return *done, nil
		}
		if r.open() {
			if err := r.cascade(ctx, false); err != nil {
				return InvoicePaymentResult{}, err
			}
		}
	}

	if in.Carry != nil && r.v.needsAction {
		// What the previous run could not finish (or received as it ended).
		if err := r.retryPending(ctx); err != nil {
			return InvoicePaymentResult{}, err
		}
	}
	for r.open() {
		if r.v.needsAction {
			if r.budget.exhausted(ctx) {
				if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
					return InvoicePaymentResult{}, err
				}
				if !r.open() {
					break // settled by an update meanwhile: finish instead
				}
				return InvoicePaymentResult{}, r.continueAsNew(ctx, paid, cardFailed)
			}
			r.budget.spend()
		} else if workflow.GetInfo(ctx).GetContinueAsNewSuggested() && paid.Len() == 0 && cardFailed.Len() == 0 {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return InvoicePaymentResult{}, err
			}
			if r.open() {
				next := r.in
				next.Begun = nil
				carry := r.c
				next.Carry = &carry
				return InvoicePaymentResult{}, workflow.NewContinueAsNewError(ctx, InvoicePayment, next)
			}
			break
		}
		fired, dunning, err := r.wait(ctx, paid, cardFailed)
		if err != nil {
			return InvoicePaymentResult{}, err
		}
		var req MarkPaidRequest
		for paid.ReceiveAsync(&req) {
			if err := req.Validate(); err != nil {
				workflow.GetLogger(ctx).Warn("ignoring invalid invoice-paid signal", "error", err)
				continue
			}
			if err := r.report(ctx, req); err != nil {
				return InvoicePaymentResult{}, err
			}
		}
		var cf CardFailed
		for cardFailed.ReceiveAsync(&cf) {
			if err := r.onCardFailed(ctx, cf); err != nil {
				return InvoicePaymentResult{}, err
			}
		}
		retried := drain(r.retry, &struct{}{})
		if r.v.needsAction && (retried || fired) {
			// A retry signal or the next timer re-runs what failed.
			if err := r.retryPending(ctx); err != nil {
				return InvoicePaymentResult{}, err
			}
		}
		if !fired || !r.open() {
			continue
		}
		if dunning {
			r.c.Dunned++
			if err := r.cascade(ctx, true); err != nil {
				return InvoicePaymentResult{}, err
			}
			continue
		}
		r.c.Reconciled++
		if err := r.reconcile(ctx); err != nil {
			return InvoicePaymentResult{}, err
		}
	}
	if r.cancelTimer != nil {
		r.cancelTimer()
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return InvoicePaymentResult{}, err
	}
	// Money reported while the invoice was being settled is recorded too: a
	// second payment must become an overpayment, not vanish with the run.
	recordLate := func() error {
		var late MarkPaidRequest
		for paid.ReceiveAsync(&late) {
			if late.Validate() == nil {
				if err := r.report(ctx, late); err != nil {
					return err
				}
			}
		}
		drain(cardFailed, &CardFailed{})
		return nil
	}
	if err := recordLate(); err != nil {
		return InvoicePaymentResult{}, err
	}
	if err := r.settlePending(ctx, recordLate); err != nil {
		return InvoicePaymentResult{}, err
	}
	final := InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: r.status}
	if r.result != nil {
		final = *r.result
	}
	if r.late && r.closedAtStart {
		// The run that collected the invoice told the tenant and its grace
		// window when it settled; this one only recorded late money.
		return final, r.finishHandlers(ctx, recordLate)
	}
	// Tell the tenant's workflow and its grace window, if one is running.
	// Signals reach the current run; a workflow that is not running is no
	// reason to fail (the grace window re-reads unpaid invoices from the store).
	settled := InvoiceSettled{InvoiceID: r.in.InvoiceID, Status: final.Status}
	var tell []string
	if !(r.v.v6 && r.tenantTold && final.Status == "paid") {
		// On invoice-v6 Settle told the tenant already when it could.
		tell = append(tell, TenantWorkflowID(r.in.TenantID))
	}
	if r.c.TenantStatus != "active" {
		// An active tenant has no grace window; signalling it would only
		// leave a failed signal in the history.
		tell = append(tell, GraceWorkflowID(r.in.TenantID))
	}
	for _, id := range tell {
		if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalInvoiceSettled, settled).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Info("settlement not signalled", "workflow", id, "error", err)
		}
	}
	// Again, for a report that arrived while the signals went out: it is
	// delivered before this code runs on, so it cannot slip past completion.
	if err := recordLate(); err != nil {
		return InvoicePaymentResult{}, err
	}
	if err := r.settlePending(ctx, recordLate); err != nil {
		return InvoicePaymentResult{}, err
	}
	return final, r.finishHandlers(ctx, recordLate)
}

// finishHandlers answers every update accepted while the run was ending (an
// update-with-start reuses a run that is still finishing) before the run
// completes, so a payment reported then is recorded, not lost with an
// "update failed because the workflow completed" error.
func (r *invoiceRun) finishHandlers(ctx workflow.Context, recordLate func() error) error {
	if !r.v.lateReport {
		return nil
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return recordLate()
}

// begin marks the invoice as being collected and learns the collection
// policy. It returns a final result when there is nothing to collect.
func (r *invoiceRun) begin(ctx workflow.Context) (*InvoicePaymentResult, error) {
	var begin activities.BeginCollectionResult
	for {
		if r.v.v7 && r.in.Begun != nil {
			// The claim that started this run began the collection.
			begin = *r.in.Begun
			break
		}
		err := step(durable(ctx, "begin collection"), r.v.local, a.BeginCollection,
			activities.InvoiceInput{InvoiceID: r.in.InvoiceID, Rails: r.v.v5, Wallet: r.v.v7}).Get(ctx, &begin)
		if err == nil {
			break
		}
		if !r.v.needsAction {
			return nil, err
		}
		if errorType(err) == activities.ErrNotFound {
			// Nothing to collect and nobody to tell: a clean end.
			r.status = "not_found"
			r.publish(ctx)
			return &InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: "not_found"}, nil
		}
		r.needsAction(ctx, "begin collection", err)
		if err := workflow.Await(ctx, func() bool { return r.retry.Len() > 0 }); err != nil {
			return nil, err
		}
		drain(r.retry, &struct{}{})
	}
	r.clearNeedsAction(ctx)
	r.c.Policy = begin.Policy
	r.nwcSkip = begin.NWCSkip
	r.wallet = begin.Wallet
	if begin.WalletError != "" {
		workflow.GetLogger(ctx).Info("wallet turn not run with the collection's start; the attempt runs it", "error", begin.WalletError)
	}
	if r.v.lateReport {
		// A run started by a late report knows only the invoice id.
		if r.in.TenantID == "" {
			r.in.TenantID = begin.Invoice.TenantID
		}
		if r.in.Currency == "" {
			r.in.Total, r.in.Currency = begin.Invoice.Total, begin.Invoice.Currency
		}
	}
	switch begin.Invoice.Status {
	case "paid":
		r.closedAtStart = true
		if r.result == nil {
			r.result = &InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: "paid", Rail: begin.Invoice.PaidRail, AlreadyPaid: true}
		}
	case "void", "uncollectible":
		r.closedAtStart = true
		r.status = begin.Invoice.Status
	default:
		if r.result == nil {
			r.status = begin.Invoice.Status
		}
	}
	r.publish(ctx)
	return nil, nil
}

// wait sleeps until money, a card failure, a retry or the next reconcile or
// dunning check. fired is true when the check is due; dunning says which.
func (r *invoiceRun) wait(ctx workflow.Context, paid, cardFailed workflow.ReceiveChannel) (fired, dunning bool, err error) {
	if r.v.needsAction && r.c.WaitingSince.IsZero() {
		// The cascade ended without starting the reconciliation clock (a
		// payment it could not record, a partial one): start it now, so
		// checks are spread out instead of all due at once.
		r.c.WaitingSince = workflow.Now(ctx)
	}
	at, dunning, summary := r.nextCheck()
	wait := at.Sub(workflow.Now(ctx))
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	if !r.v.oneTimer {
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: summary}},
			func() bool { return !r.open() || paid.Len() > 0 || cardFailed.Len() > 0 })
		return !ok, dunning, err
	}
	// One timer per check: a signal that changes nothing about the next
	// check keeps the timer that is already running.
	if r.timer == nil || !at.Equal(r.timerAt) {
		if r.cancelTimer != nil {
			r.cancelTimer()
		}
		tctx, cancel := workflow.WithCancel(ctx)
		r.timer = workflow.NewTimerWithOptions(tctx, wait, workflow.TimerOptions{Summary: summary})
		r.timerAt, r.cancelTimer = at, cancel
	}
	timer := r.timer
	err = workflow.Await(ctx, func() bool {
		return !r.open() || paid.Len() > 0 || cardFailed.Len() > 0 || r.retry.Len() > 0 || timer.IsReady()
	})
	if err != nil || !timer.IsReady() {
		return false, dunning, err
	}
	r.timer, r.cancelTimer = nil, nil
	return timer.Get(ctx, nil) == nil, dunning, nil
}

// continueAsNew takes every signal still queued into the carried state and
// starts the next run with everything this one knows. The caller has waited
// for running handlers.
func (r *invoiceRun) continueAsNew(ctx workflow.Context, paid, cardFailed workflow.ReceiveChannel) error {
	if r.cancelTimer != nil {
		r.cancelTimer()
	}
	var req MarkPaidRequest
	for paid.ReceiveAsync(&req) {
		if req.Validate() == nil {
			r.c.Reports = append(r.c.Reports, req)
		}
	}
	var cf CardFailed
	for cardFailed.ReceiveAsync(&cf) {
		r.c.CardFailures = append(r.c.CardFailures, cf)
	}
	if drain(r.retry, &struct{}{}) && r.c.NeedsAction != nil {
		// The next run retries what is pending first thing anyway.
		workflow.GetLogger(ctx).Info("retry signal taken into the next run")
	}
	next := r.in
	next.Begun = nil // begun already
	carry := r.c
	carry.Status = r.status
	next.Carry = &carry
	return workflow.NewContinueAsNewError(ctx, InvoicePayment, next)
}

// retryPending re-runs what failed before: payment reports whose settlement
// failed, card failures carried from the previous run, and opening the
// tenant's grace window.
func (r *invoiceRun) retryPending(ctx workflow.Context) error {
	reports, failures := r.c.Reports, r.c.CardFailures
	r.c.Reports, r.c.CardFailures = nil, nil
	for _, req := range reports {
		if err := r.report(ctx, req); err != nil {
			return err
		}
	}
	for _, cf := range failures {
		if err := r.onCardFailed(ctx, cf); err != nil {
			return err
		}
	}
	if status := r.c.PendingStatus; status != "" && r.open() {
		r.c.PendingStatus = ""
		if err := r.setStatus(ctx, status); err != nil {
			return err
		}
	}
	if r.open() && r.c.FirstFailure != nil && !r.c.GraceOpened {
		if err := r.openGrace(ctx); err != nil {
			return err
		}
	}
	if len(r.c.Reports) == 0 && r.c.PendingStatus == "" && (r.c.GraceOpened || r.c.FirstFailure == nil || !r.open()) {
		r.clearNeedsAction(ctx)
	}
	return nil
}

// settlePending keeps a closing run alive while a payment report could not
// be recorded: it waits for a retry signal (or an hour) and tries again, so
// no reported money is lost with the run.
func (r *invoiceRun) settlePending(ctx workflow.Context, recordLate func() error) error {
	for r.v.needsAction && len(r.c.Reports) > 0 {
		if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: time.Hour,
			TimerOptions: workflow.TimerOptions{Summary: "retry recording a payment"}}, func() bool { return r.retry.Len() > 0 }); err != nil {
			return err
		}
		drain(r.retry, &struct{}{})
		if err := r.retryPending(ctx); err != nil {
			return err
		}
		if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
			return err
		}
		if err := recordLate(); err != nil {
			return err
		}
	}
	return nil
}

// report records a payment reported by a signal or found by a rail. When
// the settlement fails for good the report is kept and retried, and the
// invoice needs action; the workflow goes on.
func (r *invoiceRun) report(ctx workflow.Context, req MarkPaidRequest) error {
	_, err := r.markPaid(ctx, req)
	if err == nil || !r.v.needsAction {
		return err
	}
	r.c.Reports = append(r.c.Reports, req)
	r.needsAction(ctx, "record payment via "+req.Rail+" "+shortRef(req.Reference), err)
	return nil
}

// needsAction records a step that failed for good: in the details, and once
// per step in the store (status needs_action and an invoice.needs_action event).
func (r *invoiceRun) needsAction(ctx workflow.Context, step string, err error) {
	reason := activities.Summarize(errorMessage(err))
	first := r.c.NeedsAction == nil || r.c.NeedsAction.Step != step
	r.c.NeedsAction = &NeedsAction{Step: step, Reason: reason, At: workflow.Now(ctx)}
	workflow.GetLogger(ctx).Warn("invoice needs action", "step", step, "reason", reason)
	r.publish(ctx)
	if !first {
		return
	}
	if rerr := workflow.ExecuteActivity(recordOptions(ctx, "record: needs action ("+step+")"), a.RecordNeedsAction, activities.NeedsActionInput{
		InvoiceID: r.in.InvoiceID, TenantID: r.in.TenantID, Step: step, Reason: reason, At: workflow.Now(ctx)}).Get(ctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Error("needs action not recorded in the store", "step", step, "error", rerr)
	}
}

func (r *invoiceRun) clearNeedsAction(ctx workflow.Context) {
	if r.c.NeedsAction != nil {
		r.c.NeedsAction = nil
		r.publish(ctx)
	}
}

// recordOptions is for writing down a failure: retried for a while, never
// holding the workflow for ever.
func recordOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: time.Hour, Summary: summary,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
}

// errorType is a failed activity's application error type, if any.
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// open reports whether the invoice still waits for money.
func (r *invoiceRun) open() bool {
	return r.result == nil && r.status != "void" && r.status != "uncollectible"
}

func (r *invoiceRun) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryInvoice, func() (InvoicePaymentResult, error) {
		out := InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: r.status}
		if r.result != nil {
			out = *r.result
		}
		out.NeedsAction = r.c.NeedsAction
		return out, nil
	}, workflow.QueryHandlerOptions{Description: "The invoice's collection status and, once paid, the rail and reference."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateMarkPaid, r.markPaid, workflow.UpdateHandlerOptions{
		Description: "Reports money received through a rail; the first payment wins, later money is kept as an overpayment.",
		Validator: func(ctx workflow.Context, req MarkPaidRequest) error {
			if err := req.Validate(); err != nil {
				return rejected(err)
			}
			return nil
		},
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateLightningInvoice, func(ctx workflow.Context) (activities.LightningInvoice, error) {
		var li activities.LightningInvoice
		err := workflow.ExecuteActivity(interactive(ctx, "issue a Lightning invoice"), a.IssueLightningInvoice,
			activities.InvoiceInput{InvoiceID: r.in.InvoiceID}).Get(ctx, &li)
		return li, callerError(err)
	}, workflow.UpdateHandlerOptions{
		Description: "Returns a payable BOLT11 for the invoice (issued on the engine's node, priced by the rate source).",
		Validator: func(ctx workflow.Context) error {
			if !r.open() {
				return rejected(&models.ValidationError{Field: "invoice", Reason: "is " + r.status})
			}
			return nil
		},
	}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateCloseInvoice, r.close, workflow.UpdateHandlerOptions{
		Description: "Voids the invoice or writes it off as uncollectible, releasing its discount slot.",
		Validator: func(ctx workflow.Context, req CloseInvoiceRequest) error {
			if err := req.Validate(); err != nil {
				return rejected(err)
			}
			return nil
		},
	})
}

// Activity options of the cascade: each rail's activity is bounded as a
// whole, so a rail that stays down fails over to the next instead of
// holding the invoice.
func railOptions(ctx workflow.Context, summary string, startToClose, scheduleToClose time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose, ScheduleToCloseTimeout: scheduleToClose, Summary: summary,
		// The rails heartbeat while they wait on a wallet or on Stripe, so a
		// worker that dies mid-payment is replaced in seconds; the retry
		// then finds what the first try did (node lookup, idempotency key).
		HeartbeatTimeout: 20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// cascade runs one attempt: NWC, then card, then the DM.
func (r *invoiceRun) cascade(ctx workflow.Context, reminder bool) error {
	r.c.Attempt++
	n := r.c.Attempt
	if n > 1 {
		if err := r.setStatus(ctx, "collecting"); err != nil {
			return err
		}
	}
	if r.v.walletFirst {
		if done, err := r.payFromWallet(ctx, n); done || err != nil {
			return err
		}
	}
	failure := ""
	// nwcUnknown: the wallet may have been asked to pay and its answer is
	// not known; the card waits until the node tells.
	nwcUnknown := false
	for _, step := range []struct {
		rail, summary string
		fn            any
		timeout       time.Duration
	}{
		{"nwc", fmt.Sprintf("attempt %d: pay over NWC", n), a.PayByNWC, 150 * time.Second},
		{"card", fmt.Sprintf("attempt %d: charge the saved card", n), a.ChargeCard, time.Minute},
	} {
		if !r.open() {
			return nil
		}
		if step.rail == "card" && r.c.CardPending {
			// A charge from an earlier attempt may still succeed: a second
			// one now could take the money twice.
			r.addAttempt(ctx, n, "card", activities.OutcomeSkipped, "an earlier charge is still processing")
			continue
		}
		if step.rail == "card" && nwcUnknown {
			paidBy, err := r.resolveNWC(ctx, n)
			if err != nil {
				// The node cannot tell, for good: never charge the card
				// while the wallet may have paid.
				r.addAttempt(ctx, n, "card", activities.OutcomeSkipped, "not charged: the NWC payment's outcome is unknown")
				r.needsAction(ctx, "resolve the NWC payment", err)
				failure = activities.Summarize("NWC payment outcome unknown: " + errorMessage(err))
				continue
			}
			if paidBy != nil {
				return r.report(ctx, markPaidRequest(*paidBy))
			}
			if !r.open() {
				return nil
			}
		}
		in := activities.RailAttemptInput{InvoiceID: r.in.InvoiceID, Attempt: n}
		if r.v.v5 && n == 1 && r.nwcSkip != "" {
			// BeginCollection found nothing for NWC to do: its turn is
			// shown as skipped, and the card (next) records the row.
			if step.rail == "nwc" {
				r.appendAttempt(ctx, n, "nwc", activities.OutcomeSkipped, r.nwcSkip)
				continue
			}
			in.NWCSkipped = r.nwcSkip
		}
		if r.v.v7 {
			// The rail records the payment it takes (Settle), telling the tenant.
			in.Settle, in.TellTenant = true, r.in.TenantID
		}
		var res activities.RailAttemptResult
		err := workflow.ExecuteActivity(railOptions(ctx, step.summary, step.timeout, 15*time.Minute), step.fn, in).Get(ctx, &res)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			res = activities.RailAttemptResult{Outcome: activities.OutcomeFailed, Summary: step.rail + " rail unavailable: " + errorMessage(err)}
			res.Summary = activities.Summarize(res.Summary)
			res.PaymentUnknown = step.rail == "nwc"
		}
		nwcUnknown = r.v.resolveNWC && step.rail == "nwc" && res.PaymentUnknown
		r.addAttempt(ctx, n, step.rail, res.Outcome, res.Summary)
		switch res.Outcome {
		case activities.OutcomePaid:
			if res.Payment == nil {
				return nil
			}
			if r.v.walletFirst && res.Payment.Rail == walletRail {
				// The wallet paid after all (its activity's answer was
				// lost): recorded already, and no report can claim it.
				r.walletPaid(ctx, res.Payment.Reference, "")
				return nil
			}
			// A payment that cannot be recorded is kept and retried; the
			// cascade stops: the money was taken.
			var err error
			if res.Settled != nil {
				// invoice-v7: the rail recorded it already.
				err = r.railSettled(ctx, markPaidRequest(*res.Payment), *res.Settled)
			} else {
				err = r.report(ctx, markPaidRequest(*res.Payment))
			}
			if err != nil || !r.v.partial || !r.open() || len(r.c.Reports) > 0 {
				return err
			}
			// A partial payment: the next rail collects the remainder
			// (the activities charge or invoice what is still due).
			failure = activities.Summarize(step.rail + " paid part of the invoice; the rest is still due")
		case activities.OutcomeProcessing:
			// The card was accepted and settles later: its webhook (or a
			// reconciliation) decides; no DM while money may be moving.
			r.c.CardPending = true
			return r.awaitMoney(ctx)
		case activities.OutcomeFailed, activities.OutcomeNeedsAction:
			failure = res.Summary
		}
	}
	if !r.open() {
		return nil
	}
	return r.collectionFailed(ctx, failure, reminder)
}

// walletRail is the rail of an invoice paid from the tenant's wallet.
const walletRail = "wallet"

// payFromWallet is the cascade's first rail: the tenant's wallet pays the
// invoice when it covers all of it. done says there is nothing more to
// collect (paid, or closed meanwhile); otherwise NWC goes on as before.
func (r *invoiceRun) payFromWallet(ctx workflow.Context, n int) (done bool, err error) {
	if !r.open() {
		return true, nil
	}
	var res activities.WalletRailResult
	if n == 1 && r.wallet != nil {
		// invoice-v7: BeginCollection ran this turn already.
		res, r.wallet = *r.wallet, nil
	} else {
		// One store transaction, safe to repeat (a retry finds the payment).
		err = step(railOptions(ctx, fmt.Sprintf("attempt %d: pay from the wallet", n), 30*time.Second, 5*time.Minute), r.v.local,
			a.PayFromWallet, activities.RailAttemptInput{InvoiceID: r.in.InvoiceID, Attempt: n}).Get(ctx, &res)
	}
	if err != nil {
		if isClosed(err) {
			return true, nil
		}
		// A wallet rail that stays down is no reason to hold collection;
		// had it paid, the next rail finds the invoice paid.
		r.addAttempt(ctx, n, walletRail, activities.OutcomeFailed, activities.Summarize("wallet rail unavailable: "+errorMessage(err)))
		return false, nil
	}
	if res.NoWallet {
		return false, nil
	}
	if res.Outcome != activities.OutcomePaid || res.PaidElsewhere != nil {
		r.addAttempt(ctx, n, walletRail, res.Outcome, res.Summary)
		if res.PaidElsewhere != nil {
			return true, r.report(ctx, markPaidRequest(*res.PaidElsewhere))
		}
		return false, nil
	}
	// Published once, with the invoice paid.
	r.appendAttempt(ctx, n, walletRail, res.Outcome, res.Summary)
	r.walletPaid(ctx, res.Reference, res.TenantStatus)
	return true, nil
}

// walletPaid records that the wallet paid the invoice: the store did it in
// one transaction (payment, entitlement, invoice.paid), so there is nothing
// to settle; the run ends as paid via the wallet.
func (r *invoiceRun) walletPaid(ctx workflow.Context, ref, tenantStatus string) {
	if r.result != nil {
		r.publish(ctx) // a report settled it meanwhile; show the wallet's row
		return
	}
	now := workflow.Now(ctx)
	r.result = &InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: "paid", Rail: walletRail, Reference: ref, PaidAt: &now, Outcome: "applied"}
	r.status = "paid"
	if tenantStatus != "" {
		r.c.TenantStatus = tenantStatus
	}
	r.publish(ctx)
}

// resolveNWC asks the engine's node, for as long as it takes, how the
// invoice's NWC payments ended: the payment found, or nil when none was made.
func (r *invoiceRun) resolveNWC(ctx workflow.Context, n int) (*activities.PaymentReport, error) {
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// No schedule-to-close: the card waits until the node answers.
		StartToCloseTimeout: time.Minute, Summary: fmt.Sprintf("attempt %d: resolve the NWC payment on the node", n),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 2 * time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
	var res activities.ResolveNWCResult
	if err := workflow.ExecuteActivity(rctx, a.ResolveNWC, activities.InvoiceInput{InvoiceID: r.in.InvoiceID}).Get(ctx, &res); err != nil {
		return nil, err
	}
	return res.Payment, nil
}

// collectionFailed sends the DM with the payment link and the failure
// summary, marks the invoice as awaiting payment and, the first time, opens
// the tenant's grace window.
func (r *invoiceRun) collectionFailed(ctx workflow.Context, failure string, reminder bool) error {
	n := r.c.Attempt
	if failure != "" {
		r.c.LastFailure = failure
	}
	dmCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 10 * time.Minute,
		Summary: fmt.Sprintf("attempt %d: DM the payment link", n),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
	var sent activities.PaymentDMResult
	err := workflow.ExecuteActivity(dmCtx, a.SendPaymentDM, activities.PaymentDMInput{InvoiceID: r.in.InvoiceID, Attempt: n,
		Failure: failure, Reminder: reminder}).Get(ctx, &sent)
	if err != nil {
		// A DM that cannot be sent is recorded; it never fails the invoice.
		detail := activities.Summarize("DM not sent: " + errorMessage(err))
		r.addAttempt(ctx, n, "dm", activities.OutcomeFailed, detail)
		if rerr := step(durable(ctx, "record the failed DM"), r.v.local, a.RecordAttempt, activities.RecordAttemptInput{
			InvoiceID: r.in.InvoiceID, Attempt: n, Rail: "dm", Outcome: activities.OutcomeFailed, Detail: detail}).Get(ctx, nil); rerr != nil {
			if !r.v.needsAction {
				return rerr
			}
			workflow.GetLogger(ctx).Warn("failed DM not recorded in the attempt table", "error", rerr)
		}
	} else {
		detail := "payment link sent"
		if sent.Outcome == activities.OutcomeSkipped {
			detail = "no DM robot configured"
			if sent.Reason != "" {
				detail = sent.Reason
			}
		}
		r.addAttempt(ctx, n, "dm", sent.Outcome, detail)
	}
	if r.c.FirstFailure == nil {
		now := workflow.Now(ctx)
		r.c.FirstFailure = &now
	}
	if err := r.awaitMoney(ctx); err != nil {
		return err
	}
	if r.c.GraceOpened || !r.open() {
		return nil
	}
	return r.openGrace(ctx)
}

// openGrace opens the tenant's grace window (or feeds the open one). When
// that fails for good the invoice needs action and the next wake retries.
func (r *invoiceRun) openGrace(ctx workflow.Context) error {
	r.c.GraceOpened = true
	err := workflow.ExecuteActivity(durable(ctx, "open the tenant's grace window"), a.ReportCollectionFailed, activities.CollectionFailedInput{
		TenantID: r.in.TenantID, InvoiceID: r.in.InvoiceID, Reason: r.c.LastFailure,
		GraceWindow: r.c.Policy.GraceWindow, BanFactor: r.c.Policy.BanFactor,
	}).Get(ctx, nil)
	if err == nil || !r.v.needsAction {
		return err
	}
	r.c.GraceOpened = false
	r.needsAction(ctx, "open the tenant's grace window", err)
	return nil
}

// awaitMoney marks the invoice as awaiting payment and starts the
// reconciliation clock.
func (r *invoiceRun) awaitMoney(ctx workflow.Context) error {
	if r.c.WaitingSince.IsZero() {
		r.c.WaitingSince = workflow.Now(ctx)
	}
	if !r.open() {
		return nil
	}
	return r.setStatus(ctx, "awaiting_payment")
}

func (r *invoiceRun) setStatus(ctx workflow.Context, status string) error {
	var inv activities.InvoiceRef
	if err := step(durable(ctx, "invoice "+strings.ReplaceAll(status, "_", " ")), r.v.local, a.SetInvoiceStatus,
		activities.SetInvoiceStatusInput{InvoiceID: r.in.InvoiceID, Status: status}).Get(ctx, &inv); err != nil {
		if !r.v.needsAction {
			return err
		}
		if isClosed(err) {
			// Closed meanwhile: the close update records the status.
			return nil
		}
		// The status is bookkeeping: collection goes on without it, and
		// the next wake sets it.
		r.c.PendingStatus = status
		r.needsAction(ctx, "set the invoice's status to "+status, err)
		return nil
	}
	if r.open() && (inv.Status == "collecting" || inv.Status == "awaiting_payment" || inv.Status == "open") {
		r.status = inv.Status
	}
	r.publish(ctx)
	return nil
}

// onCardFailed handles Stripe's payment_failed for a processing charge: the
// cascade goes on to the DM as if the card had declined at once.
func (r *invoiceRun) onCardFailed(ctx workflow.Context, cf CardFailed) error {
	reason := activities.Summarize("card charge failed: " + cf.Reason)
	if r.v.attemptOnce {
		if !r.c.CardPending || !r.open() {
			// The cascade already recorded this charge's failure (a decline
			// answered at once), or the invoice is settled: nothing new.
			workflow.GetLogger(ctx).Info("card failure already recorded", "payment_intent", cf.PaymentIntentID)
			return nil
		}
		r.replaceAttempt(ctx, r.c.Attempt, "card", activities.OutcomeFailed, reason)
	} else {
		r.addAttempt(ctx, r.c.Attempt, "card", activities.OutcomeFailed, reason)
		if !r.c.CardPending || !r.open() {
			return nil
		}
	}
	r.c.CardPending = false
	return r.collectionFailed(ctx, reason, r.c.Attempt > 1)
}

// reconcile asks LND and Stripe directly and settles whatever they report.
func (r *invoiceRun) reconcile(ctx workflow.Context) error {
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: 5 * time.Minute,
		Summary: fmt.Sprintf("reconcile with LND and Stripe (check %d)", r.c.Reconciled),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
	var res activities.ReconcileResult
	if err := workflow.ExecuteActivity(rctx, a.Reconcile, activities.InvoiceInput{InvoiceID: r.in.InvoiceID}).Get(ctx, &res); err != nil {
		// The next check asks again; a rail outage is not the invoice's failure.
		workflow.GetLogger(ctx).Warn("reconciliation failed", "error", err)
		return nil
	}
	for _, p := range res.Found {
		if err := r.report(ctx, markPaidRequest(p)); err != nil {
			return err
		}
	}
	return nil
}

// nextCheck returns when the next timer fires, whether it is a dunning retry
// (else a reconciliation), and its summary for the UI.
func (r *invoiceRun) nextCheck() (time.Time, bool, string) {
	p := r.c.Policy
	var recAt time.Time
	if i := r.c.Reconciled; i < len(p.Reconcile) {
		recAt = r.c.WaitingSince.Add(p.Reconcile[i])
	} else {
		last := time.Duration(0)
		if len(p.Reconcile) > 0 {
			last = p.Reconcile[len(p.Reconcile)-1]
		}
		every := p.ReconcileEvery
		if every <= 0 {
			every = 24 * time.Hour
		}
		recAt = r.c.WaitingSince.Add(last + time.Duration(i-len(p.Reconcile)+1)*every)
	}
	recSummary := fmt.Sprintf("reconcile with LND and Stripe (check %d)", r.c.Reconciled+1)
	if r.c.FirstFailure != nil && r.c.Dunned < len(p.Dunning) {
		dunAt := r.c.FirstFailure.Add(p.Dunning[r.c.Dunned])
		if !dunAt.After(recAt) {
			return dunAt, true, fmt.Sprintf("dunning retry %d of %d (%s after the first failure)", r.c.Dunned+1, len(p.Dunning), p.Dunning[r.c.Dunned])
		}
	}
	return recAt, false, recSummary
}

func (r *invoiceRun) addAttempt(ctx workflow.Context, n int, rail, outcome, detail string) {
	r.appendAttempt(ctx, n, rail, outcome, detail)
	r.publish(ctx)
}

// appendAttempt adds a row to the attempt table without publishing it.
func (r *invoiceRun) appendAttempt(ctx workflow.Context, n int, rail, outcome, detail string) {
	r.c.Attempts = append(r.c.Attempts, AttemptRow{Attempt: n, Rail: rail, Outcome: outcome, Detail: detail, At: workflow.Now(ctx)})
	// Keep the table readable and the carried state bounded.
	if len(r.c.Attempts) > 30 {
		r.c.Attempts = r.c.Attempts[len(r.c.Attempts)-30:]
	}
}

// replaceAttempt records a rail's final outcome in place of its earlier
// row of the same attempt (a processing charge that failed), so each
// attempt is listed once.
func (r *invoiceRun) replaceAttempt(ctx workflow.Context, n int, rail, outcome, detail string) {
	for i := len(r.c.Attempts) - 1; i >= 0; i-- {
		if row := r.c.Attempts[i]; row.Attempt == n && row.Rail == rail {
			r.c.Attempts[i] = AttemptRow{Attempt: n, Rail: rail, Outcome: outcome, Detail: detail, At: workflow.Now(ctx)}
			r.publish(ctx)
			return
		}
	}
	r.addAttempt(ctx, n, rail, outcome, detail)
}

func (r *invoiceRun) markPaid(ctx workflow.Context, req MarkPaidRequest) (InvoicePaymentResult, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return InvoicePaymentResult{}, err
	}
	defer r.mu.Unlock()
	if r.result != nil && sameMoney(*r.result, req) {
		// The payment that settled the invoice, reported again (typically
		// the settlement stream after NWC): nothing to record.
		again := *r.result
		again.AlreadyPaid, again.Outcome = true, "duplicate"
		return again, nil
	}
	// Every other report is recorded, even after the invoice is paid: the
	// store tells the same money from a second payment, kept to refund.
	var res activities.SettleResult
	sin := activities.SettleInput{InvoiceID: r.in.InvoiceID, Payment: paymentReport(req), PaidAt: workflow.Now(ctx)}
	if r.v.v6 {
		sin.TellTenant = r.in.TenantID
	}
	if err := step(durable(ctx, "settle via "+req.Rail), r.v.local, a.Settle, sin).Get(ctx, &res); err != nil {
		return InvoicePaymentResult{}, callerError(err)
	}
	return r.applySettle(ctx, req, res), nil
}

// railSettled (invoice-v7) takes the settlement a rail's activity recorded
// for the payment it took, as markPaid takes Settle's.
func (r *invoiceRun) railSettled(ctx workflow.Context, req MarkPaidRequest, res activities.SettleResult) error {
	if err := r.mu.Lock(ctx); err != nil {
		return err
	}
	defer r.mu.Unlock()
	r.applySettle(ctx, req, res)
	return nil
}

// applySettle takes a recorded settlement into the run's state and
// returns the answer for whoever reported the payment.
func (r *invoiceRun) applySettle(ctx workflow.Context, req MarkPaidRequest, res activities.SettleResult) InvoicePaymentResult {
	r.tenantTold = r.tenantTold || res.TenantTold
	r.c.TenantStatus = res.TenantStatus
	if res.Outcome == "overpayment" {
		r.addAttempt(ctx, r.c.Attempt, req.Rail, "overpayment", "second payment "+shortRef(req.Reference)+" kept to refund")
	}
	if r.result != nil {
		again := *r.result
		again.AlreadyPaid, again.Outcome = true, res.Outcome
		return again
	}
	out := InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: res.Invoice.Status, Rail: res.Invoice.PaidRail,
		Reference: req.Reference, AlreadyPaid: res.AlreadyPaid, Outcome: res.Outcome}
	if res.Invoice.Status == "paid" {
		if !res.AlreadyPaid {
			now := workflow.Now(ctx)
			out.PaidAt = &now
		} else {
			out.Reference = ""
		}
		r.result = &out
	}
	r.status = res.Invoice.Status
	r.publish(ctx)
	return out
}

func (r *invoiceRun) close(ctx workflow.Context, req CloseInvoiceRequest) (InvoicePaymentResult, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return InvoicePaymentResult{}, err
	}
	defer r.mu.Unlock()
	if r.result != nil {
		return InvoicePaymentResult{}, rejected(&models.ValidationError{Field: "invoice", Reason: "is paid and cannot be closed"})
	}
	var inv activities.InvoiceRef
	if err := workflow.ExecuteActivity(interactive(ctx, "close invoice as "+req.Status), a.CloseInvoice, activities.CloseInvoiceInput{
		InvoiceID: r.in.InvoiceID, Status: req.Status, Reason: req.Reason, At: workflow.Now(ctx)}).Get(ctx, &inv); err != nil {
		return InvoicePaymentResult{}, callerError(err)
	}
	r.status = inv.Status
	r.publish(ctx)
	return InvoicePaymentResult{InvoiceID: r.in.InvoiceID, Status: inv.Status}, nil
}

// sameMoney reports whether a report is the payment that settled the
// invoice: one Lightning payment whichever of nwc, lightning or oob reports
// it, otherwise the same rail and reference.
func sameMoney(paid InvoicePaymentResult, req MarkPaidRequest) bool {
	lightning := func(rail string) bool { return rail == "nwc" || rail == "lightning" || rail == "oob" }
	if lightning(paid.Rail) && lightning(req.Rail) {
		return paid.Reference != "" && strings.EqualFold(paid.Reference, req.Reference)
	}
	return paid.Rail == req.Rail && paid.Reference == req.Reference
}

func shortRef(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// errorMessage is an activity error's own message, without Temporal's wrapping.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out"
	}
	return err.Error()
}

func isClosed(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrInvoiceClosed
}

func (r *invoiceRun) publish(ctx workflow.Context) {
	due := r.in.Total
	rail := ""
	if r.result != nil {
		due, rail = 0, r.result.Rail
	}
	if !r.open() {
		due = 0
	}
	status := r.status
	if r.c.NeedsAction != nil {
		status = "needs_action"
	}
	u := newSAUpdates(ctx, r.v.local)
	u.keyword(AttrInvoice, r.in.InvoiceID)
	u.keyword(AttrTenant, string(r.in.TenantID))
	u.keyword(AttrStatus, status)
	u.int64(AttrAmountDue, due)
	if rail != "" {
		u.keyword(AttrPaymentRail, rail)
	}
	u.upsert(ctx)
	r.details(ctx)
}

// details renders the Web UI's current details.
func (r *invoiceRun) details(ctx workflow.Context) {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("### Invoice `%s`\n\n| | |\n|---|---|\n", r.in.InvoiceID))
	b.WriteString(fmt.Sprintf("| Tenant | `%s` |\n| Amount | %s |\n| Status | **%s** |\n", r.in.TenantID.Short(), FormatAmount(r.in.Total, r.in.Currency), r.status))
	if r.result != nil {
		b.WriteString(fmt.Sprintf("| Paid via | %s |\n", r.result.Rail))
		if r.result.Reference != "" {
			b.WriteString(fmt.Sprintf("| Reference | `%s` |\n", shortRef(r.result.Reference)))
		}
	}
	if len(r.c.Attempts) > 0 {
		b.WriteString("\n#### Collection attempts\n\n| # | Rail | Outcome | Detail | At |\n|---|---|---|---|---|\n")
		for _, row := range r.c.Attempts {
			b.WriteString(fmt.Sprintf("| %d | %s | %s | %s | %s |\n", row.Attempt, row.Rail, row.Outcome,
				strings.ReplaceAll(row.Detail, "|", "/"), row.At.UTC().Format(time.RFC3339)))
		}
	}
	b.WriteString(needsActionRow(r.c.NeedsAction))
	if r.open() && r.status == "awaiting_payment" {
		b.WriteString("\nWaiting for money: Lightning settlement stream, Stripe webhook, `invoice-paid` signal or `mark-paid` update; reconciliation and dunning run on timers.\n")
	}
	workflow.SetCurrentDetails(ctx, b.String())
}
