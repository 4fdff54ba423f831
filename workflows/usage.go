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
	"github.com/billflow/billflow/receipts"
)

// Search attributes of usage sessions (registered in scripts/lib.sh and
// docker-compose.yml); BillingTenant is the payer.
var (
	AttrUsageState   = temporal.NewSearchAttributeKeyKeyword("UsageState")
	AttrUsageService = temporal.NewSearchAttributeKeyKeyword("UsageService")
)

// UsageSessionInput is a UsageSession's input.
type UsageSessionInput = contract.UsageSessionInput

// changeUsageIdleTimeout versions the idle timer (sessions end after
// IdleTimeout without activity).
const changeUsageIdleTimeout = "usage-idle-timeout"

// changeUsageFreePool versions the free-tier pool (issue 11): receipts are
// decided by the pool before the wallet pays, the pool's cover counts as
// funds, and the end settles or releases the pool's grants. The command
// sequence is the same; the activities' inputs ask for the pool.
const changeUsageFreePool = "usage-free-pool"

// usageReportMemory is how many report ids a session remembers to drop
// duplicates (a retried signal comes soon after the first).
const usageReportMemory = 64

// usageJob is an update handed to the main loop, which alone changes the
// session's state (so a sign, a timeout and a report never interleave
// inside an activity call).
type usageJob struct {
	kind  string
	start contract.UsageStartRequest
	sign  contract.UsageSignRequest
	done  bool
	// Answers.
	started contract.UsageStartResult
	view    contract.UsageView
	err     error
}

type usageRun struct {
	in    UsageSessionInput
	c     contract.UsageCarry
	begun bool
	ended bool
	// sending: a receipt's first send (UsageSend) is on its way, and the
	// payer may answer before it returns (the request reaches it from
	// inside the activity).
	sending bool
	// attempt counts the sends of the waiting receipt.
	attempt     int
	signTimer   workflow.Future
	cancelSign  workflow.CancelFunc
	graceTimer  workflow.Future
	cancelGrace workflow.CancelFunc
	paidThisRun int
	// idleOn: this run ends the session after IdleTimeout without
	// activity (versioned: histories recorded before it have no idle timer).
	idleOn    bool
	idleTimer workflow.Future
	// poolOn: receipts are decided by the free-tier pool (versioned).
	poolOn bool
	// published is the UsageState search attribute's value.
	published string
}

// UsageSession is a metered usage session (ID usage/<session-id>), the
// seed's IDLE/GRACE/NORMAL/FREE machine. It is started by update-with-start
// of usage-start, which answers the mode or a UsageError. Receipts of the
// service's chunk are signed by the engine (an activity) and co-signed by
// the payer (usage-sign, checked by a validator: a bad answer is refused
// and the session keeps waiting); a signed receipt is paid by a promise on
// the payer's wallet. A sign request is re-sent after SignTimeout up to
// SignAttempts times, then RECEIPT_NO_SIGN. Not enough funds starts the
// grace timer (service goes on); funds (usage-funds) end it, and a grace
// that ends unpaid bans the payer from grace for 50 grace periods. End
// (usage-end) settles the promised total, saves unused covered units as
// remain service and writes the statistics. An error in NORMAL keeps the
// session until it ends; elsewhere it ends it. No business error fails it.
func UsageSession(ctx workflow.Context, in UsageSessionInput) (contract.UsageView, error) {
	if in.SignTimeout <= 0 {
		in.SignTimeout = contract.DefaultSignTimeout
	}
	if in.SignAttempts <= 0 {
		in.SignAttempts = contract.DefaultSignAttempts
	}
	if in.ContinueEvery <= 0 {
		in.ContinueEvery = contract.DefaultUsageContinueEvery
	}
	if in.IdleTimeout <= 0 {
		in.IdleTimeout = contract.DefaultUsageIdleTimeout
	}
	if in.SessionID == "" {
		in.SessionID = strings.TrimPrefix(workflow.GetInfo(ctx).WorkflowExecution.ID, "usage/")
	}
	r := &usageRun{in: in}
	if c := in.Carry; c != nil {
		r.c, r.begun = *c, true
		r.in.Carry = nil
	} else {
		r.c.View = contract.UsageView{SessionID: in.SessionID, State: contract.UsageIdle, StartedAt: workflow.Now(ctx)}
	}
	jobs := workflow.NewBufferedChannel(ctx, 64)
	if err := r.handlers(ctx, jobs); err != nil {
		return r.c.View, err
	}
	reports := workflow.GetSignalChannelWithOptions(ctx, contract.SignalUsageReport, workflow.SignalChannelOptions{
		Description: "Usage since the last report (seconds, bytes), idempotent by report id."})
	funds := workflow.GetSignalChannelWithOptions(ctx, contract.SignalUsageFunds, workflow.SignalChannelOptions{
		Description: "The payer's wallet gained funds (a top-up was paid): a session in grace tries again."})
	r.idleOn = workflow.GetVersion(ctx, changeUsageIdleTimeout, workflow.DefaultVersion, 1) >= 1
	r.poolOn = workflow.GetVersion(ctx, changeUsageFreePool, workflow.DefaultVersion, 1) >= 1
	r.publish(ctx)
	if r.begun {
		r.maybeNext(ctx)
	}

	for !r.ended {
		if r.begun && r.canContinue(ctx, jobs) {
			for {
				var rep contract.UsageReport
				if !reports.ReceiveAsync(&rep) {
					break
				}
				r.report(ctx, rep, false)
			}
			next := r.in
			carry := r.c
			next.Carry = &carry
			return r.c.View, workflow.NewContinueAsNewError(ctx, UsageSession, next)
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(jobs, func(c workflow.ReceiveChannel, _ bool) {
			var j *usageJob
			c.Receive(ctx, &j)
			r.run(ctx, j)
		})
		if r.begun {
			sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
				var rep contract.UsageReport
				c.Receive(ctx, &rep)
				r.report(ctx, rep, true)
			})
			sel.AddReceive(funds, func(c workflow.ReceiveChannel, _ bool) {
				var sig contract.UsageFundsSignal
				c.Receive(ctx, &sig)
				r.fundsArrived(ctx, "funds "+sig.Reference)
			})
		}
		if r.signTimer != nil {
			sel.AddFuture(r.signTimer, func(workflow.Future) {
				r.signTimer, r.cancelSign = nil, nil
				r.signTimeout(ctx)
			})
		}
		if r.idleOn && r.begun {
			if r.idleTimer == nil {
				d := max(r.c.LastActive.Add(r.in.IdleTimeout).Sub(workflow.Now(ctx)), time.Millisecond)
				r.idleTimer = workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{
					Summary: fmt.Sprintf("idle timeout: end the session after %s without reports, signatures or funds", r.in.IdleTimeout)})
			}
			sel.AddFuture(r.idleTimer, func(workflow.Future) {
				r.idleTimer = nil
				if !workflow.Now(ctx).Before(r.c.LastActive.Add(r.in.IdleTimeout)) {
					r.finish(ctx) // otherwise the next wait re-arms it from the last activity
				}
			})
		}
		if r.graceTimer != nil {
			sel.AddFuture(r.graceTimer, func(workflow.Future) {
				r.graceTimer, r.cancelGrace = nil, nil
				r.graceEnded(ctx)
			})
		}
		sel.Select(ctx)
	}
	// Updates queued behind the one that ended the session get their
	// answers (SESSION_ENDED, or the final view) before the run completes.
	for {
		if err := workflow.Await(ctx, func() bool { return jobs.Len() > 0 || workflow.AllHandlersFinished(ctx) }); err != nil {
			return r.c.View, err
		}
		var j *usageJob
		if !jobs.ReceiveAsync(&j) {
			return r.c.View, nil
		}
		r.run(ctx, j)
	}
}

// canContinue: continue as new after ContinueEvery paid receipts (or when
// the server suggests it), only at rest (FREE, or NORMAL with nothing
// waiting and no timer running) and with no update in flight.
func (r *usageRun) canContinue(ctx workflow.Context, jobs workflow.Channel) bool {
	v := r.c.View
	if r.paidThisRun < r.in.ContinueEvery && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		return false
	}
	// At rest: FREE, or NORMAL (serving, or kept after an error) with no
	// receipt waiting and no timer running, so nothing but data is carried.
	rest := v.State == contract.UsageFree || (v.State == contract.UsageNormal && (v.SubState == contract.SubNormal || v.SubState == contract.SubError))
	if !rest || v.Waiting != nil || r.signTimer != nil || r.graceTimer != nil {
		return false
	}
	// The update that paid the last receipt is still returning its answer:
	// let it (and any update queued meanwhile) finish first.
	_ = workflow.Await(ctx, func() bool { return jobs.Len() > 0 || workflow.AllHandlersFinished(ctx) })
	return jobs.Len() == 0 && workflow.AllHandlersFinished(ctx)
}

// usageErr is a UsageError as an update's answer.
func usageErr(code models.UsageErrorCode, format string, args ...any) error {
	ue := contract.UsageError{Code: code, Message: fmt.Sprintf(format, args...)}
	return temporal.NewApplicationError(ue.Error(), contract.ErrUsage, ue)
}

// asUsageError reads a UsageError out of an activity's error (nil when it
// is another error).
func asUsageError(err error) *contract.UsageError {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == contract.ErrUsage {
		var ue contract.UsageError
		if appErr.Details(&ue) == nil && ue.Code != "" {
			return &ue
		}
	}
	return nil
}

// usageCall runs an activity a session waits on: bounded, retried with
// back-off; usage refusals and validation errors are not retried.
func usageCall(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second, ScheduleToCloseTimeout: 2 * time.Minute, Summary: summary,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: append([]string{contract.ErrUsage}, nonRetryable...)},
	})
}

func (r *usageRun) handlers(ctx workflow.Context, jobs workflow.Channel) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, contract.QueryUsage, func() (contract.UsageView, error) { return r.c.View, nil },
		workflow.QueryHandlerOptions{Description: "The session's state, counters and the receipt waiting for a signature."}); err != nil {
		return err
	}
	submit := func(ctx workflow.Context, j *usageJob) error {
		jobs.Send(ctx, j)
		return workflow.Await(ctx, func() bool { return j.done })
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUsageStart,
		func(ctx workflow.Context, req contract.UsageStartRequest) (contract.UsageStartResult, error) {
			req.Payer, _ = models.ParseTenantID(string(req.Payer)) // the validator checked it
			j := &usageJob{kind: "start", start: req}
			if err := submit(ctx, j); err != nil {
				return j.started, err
			}
			return j.started, j.err
		}, workflow.UpdateHandlerOptions{
			Validator: func(_ workflow.Context, req contract.UsageStartRequest) error {
				payer, perr := models.ParseTenantID(string(req.Payer))
				switch {
				case r.ended:
					return usageErr(models.UsageSessionEnded, "session %s has ended", r.in.SessionID)
				case req.SessionID != "" && req.SessionID != r.in.SessionID:
					return usageErr(models.UsageWrongState, "request for session %q sent to session %s", req.SessionID, r.in.SessionID)
				case strings.TrimSpace(req.ServiceID) == "":
					return usageErr(models.UsageServiceNotFound, "service_id is empty")
				case perr != nil:
					return usageErr(models.UsagePayerNotFound, "payer: %v", perr)
				case req.MaxUnitPrice < 0:
					return usageErr(models.UsageUnitPriceTooHigh, "max_unit_price %d is negative", req.MaxUnitPrice)
				case r.begun && (req.ServiceID != r.c.Request.ServiceID || payer != r.c.Request.Payer):
					return usageErr(models.UsageWrongState, "session %s already started for service %s and payer %s", r.in.SessionID,
						r.c.Request.ServiceID, r.c.Request.Payer)
				}
				return nil
			},
			Description: "Start the session (update-with-start): the mode it started in, or a UsageError.",
		}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUsageSign,
		func(ctx workflow.Context, req contract.UsageSignRequest) (contract.UsageView, error) {
			j := &usageJob{kind: "sign", sign: req}
			if err := submit(ctx, j); err != nil {
				return j.view, err
			}
			return j.view, j.err
		}, workflow.UpdateHandlerOptions{
			Validator: func(_ workflow.Context, req contract.UsageSignRequest) error {
				if r.sending && r.c.View.Waiting == nil && !r.ended {
					// The payer answered the request before the send
					// activity returned: the job waits behind it and is
					// checked then (signed runs checkSign).
					return nil
				}
				return r.checkSign(req)
			},
			Description: "The payer's signed Nostr event over the receipt the session waits for; a bad one is refused " +
				"(RECEIPT_CANT_FIND, RECEIPT_WRONG_PKEY_HASH, RECEIPT_BAD_SIGNATURE, RECEIPT_BAD_VERSION) and the session keeps waiting.",
		}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUsageEnd,
		func(ctx workflow.Context) (contract.UsageView, error) {
			j := &usageJob{kind: "end"}
			if err := submit(ctx, j); err != nil {
				return j.view, err
			}
			return j.view, j.err
		}, workflow.UpdateHandlerOptions{
			Validator: func(workflow.Context) error {
				if !r.begun {
					return usageErr(models.UsageWrongState, "session %s has not started", r.in.SessionID)
				}
				return nil
			},
			Description: "End the session: final usage valued, unused covered units saved as remain service, statistics written.",
		})
}

// checkSign is the sign validator: a session waiting for a signature, and
// an answer that verifies against the receipt it waits for (pure: no I/O).
func (r *usageRun) checkSign(req contract.UsageSignRequest) error {
	v := r.c.View
	switch {
	case r.ended:
		return usageErr(models.UsageSessionEnded, "session %s has ended", r.in.SessionID)
	case v.Waiting == nil:
		return usageErr(models.UsageWrongState, "session %s waits for no signature (state %s/%s)", r.in.SessionID, v.State, v.SubState)
	}
	if ue := receipts.Verify(req.Event, r.c.Request.Payer, v.Waiting.ReceiptID); ue != nil {
		return temporal.NewApplicationError(ue.Error(), contract.ErrUsage, *ue)
	}
	return nil
}

// run does one update's work in the main loop.
func (r *usageRun) run(ctx workflow.Context, j *usageJob) {
	defer func() { j.done = true }()
	switch j.kind {
	case "start":
		j.started, j.err = r.start(ctx, j.start)
	case "sign":
		j.err = r.signed(ctx, j.sign)
		j.view = r.c.View
	case "end":
		if !r.ended {
			r.finish(ctx)
		}
		j.view = r.c.View
	}
}

// start decides the session's mode.
func (r *usageRun) start(ctx workflow.Context, req contract.UsageStartRequest) (contract.UsageStartResult, error) {
	if r.begun {
		return r.c.Started, nil // a retried start answers the first
	}
	if r.ended { // a second start queued behind a refused first one
		return contract.UsageStartResult{}, usageErr(r.c.View.LastError, "session %s could not start", r.in.SessionID)
	}
	req.SessionID = r.in.SessionID
	var res activities.UsageStartResult
	err := workflow.ExecuteActivity(usageCall(ctx, "check the start of "+req.ServiceID), a.UsageStart,
		activities.UsageStartInput{Request: req, At: workflow.Now(ctx), Pool: r.poolOn}).Get(ctx, &res)
	if err != nil {
		code := models.UsageUnavailable
		if ue := asUsageError(err); ue != nil {
			code = ue.Code
		}
		r.c.View.LastError = code
		r.endNow(ctx)
		if asUsageError(err) != nil {
			return contract.UsageStartResult{}, applicationError(err)
		}
		return contract.UsageStartResult{}, usageErr(code, "%s", errorMessage(err))
	}
	r.begun = true
	r.c.LastActive = workflow.Now(ctx)
	r.c.Request, r.c.Service = req, res.Service
	v := &r.c.View
	v.ServiceID, v.Payer, v.Currency, v.FundsLeft = req.ServiceID, req.Payer, res.Currency, res.Spendable
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrTenant.ValueSet(string(req.Payer)), AttrUsageService.ValueSet(req.ServiceID)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
	}
	svc := r.c.Service
	switch {
	case svc.Free():
		r.set(ctx, contract.UsageFree, contract.SubNormal)
	case res.Remain > 0:
		v.PaidUnits = res.Remain
		r.c.Started.RemainUnits = res.Remain
		r.set(ctx, contract.UsageNormal, contract.SubNormal)
		r.maybeNext(ctx)
	case res.Spendable+res.PoolCover < r.chunkValue(): // PoolCover is 0 without the pool
		if res.BannedUntil != nil {
			v.LastError = models.UsageBannedPayer
			r.endNow(ctx)
			return contract.UsageStartResult{}, usageErr(models.UsageBannedPayer, "payer %s is banned from grace on %s until %s and has %d of %d needed",
				req.Payer, svc.ID, res.BannedUntil.UTC().Format(time.RFC3339), res.Spendable, r.chunkValue())
		}
		r.enterGrace(ctx, contract.SubWaitingTxForPaying, "start")
	default:
		if res.BannedUntil != nil { // funds found: the ban is over (the seed unbans)
			r.ban(ctx, true)
		}
		r.c.View.State = contract.UsageIdle
		r.issue(ctx, contract.SubWaitingFirstReceiptSign)
	}
	if r.ended {
		return contract.UsageStartResult{}, usageErr(r.c.View.LastError, "session %s could not start", r.in.SessionID)
	}
	r.c.Started.State, r.c.Started.SubState = r.c.View.State, r.c.View.SubState
	if w := r.c.View.Waiting; w != nil {
		cp := *w
		r.c.Started.Receipt = &cp
	}
	return r.c.Started, nil
}

// chunkValue is the value of the next receipt: the delta of the units
// receipts cover, valued as a running total (no rounding drift).
func (r *usageRun) chunkValue() int64 {
	s := r.c.Service
	v, err := models.UsageDelta(s.Price, r.c.ReceiptUnits, r.c.ReceiptUnits+s.Chunk, s.Units)
	if err != nil {
		return 0 // the catalog validated a chunk's value; the running total cannot exceed int64 in practice
	}
	return v
}

// set changes state and sub-state and publishes them.
func (r *usageRun) set(ctx workflow.Context, state, sub string) {
	r.c.View.State, r.c.View.SubState = state, sub
	r.publish(ctx)
}

// issue builds the next receipt, has the engine sign and send it, and waits
// for the payer's signature in sub-state sub.
func (r *usageRun) issue(ctx workflow.Context, sub string) {
	s, q := r.c.Service, r.c.Request
	rc := contract.Receipt{Version: receipts.Version, SessionID: r.in.SessionID, ServiceID: s.ID, Payer: q.Payer, Unit: s.Unit,
		Units: s.Chunk, UnitPrice: s.Price, PriceUnits: s.Units, Value: r.chunkValue(), Currency: r.c.View.Currency, Seq: 1}
	if l := r.c.Last; l != nil {
		rc.Seq, rc.Prev = l.Receipt.Seq+1, l.ReceiptID
	}
	r.c.Sends++
	var req contract.SignRequest
	r.sending = true
	err := workflow.ExecuteActivity(usageCall(ctx, fmt.Sprintf("sign and send receipt %d", rc.Seq)), a.UsageSend,
		activities.UsageSendInput{Receipt: rc, Attempt: 1, Send: r.c.Sends, NotifyDM: q.NotifyDM, At: workflow.Now(ctx)}).Get(ctx, &req)
	r.sending = false
	if err != nil {
		r.fail(ctx, models.UsageUnavailable, "sign receipt: "+errorMessage(err))
		return
	}
	r.c.View.Waiting, r.attempt = &req, 1
	r.c.View.SubState = sub
	r.startSignTimer(ctx)
	r.publish(ctx)
}

func (r *usageRun) startSignTimer(ctx workflow.Context) {
	r.stopSignTimer()
	tctx, cancel := workflow.WithCancel(ctx)
	r.signTimer = workflow.NewTimerWithOptions(tctx, r.in.SignTimeout, workflow.TimerOptions{
		Summary: fmt.Sprintf("receipt %d: wait %s for the payer's signature (send %d of %d)", r.c.View.Waiting.Receipt.Seq,
			r.in.SignTimeout, r.attempt, r.in.SignAttempts)})
	r.cancelSign = cancel
}

func (r *usageRun) stopSignTimer() {
	if r.cancelSign != nil {
		r.cancelSign()
	}
	r.signTimer, r.cancelSign = nil, nil
}

func (r *usageRun) stopGraceTimer() {
	if r.cancelGrace != nil {
		r.cancelGrace()
	}
	r.graceTimer, r.cancelGrace = nil, nil
}

// signTimeout re-sends the waiting receipt (the very one the session waits
// for: the seed re-sent receipt and receipt_next the wrong way round in
// WAITING_RECEIPT_FOR_NEW_TX_FROM_CLIENT), or gives up with RECEIPT_NO_SIGN.
func (r *usageRun) signTimeout(ctx workflow.Context) {
	w := r.c.View.Waiting
	if w == nil {
		return
	}
	if r.attempt >= r.in.SignAttempts {
		r.fail(ctx, models.UsageReceiptNoSign, fmt.Sprintf("receipt %d not signed after %d sends", w.Receipt.Seq, r.attempt))
		return
	}
	r.attempt++
	r.c.Sends++
	var req contract.SignRequest
	err := workflow.ExecuteActivity(usageCall(ctx, fmt.Sprintf("re-send receipt %d (send %d)", w.Receipt.Seq, r.attempt)), a.UsageSend,
		activities.UsageSendInput{Signed: w, Attempt: r.attempt, Send: r.c.Sends, NotifyDM: r.c.Request.NotifyDM, At: workflow.Now(ctx)}).Get(ctx, &req)
	if err == nil {
		r.c.View.Waiting = &req
	} else {
		workflow.GetLogger(ctx).Warn("re-send failed; the next timeout tries again", "receipt", w.ReceiptID, "error", err)
	}
	r.startSignTimer(ctx)
	r.publish(ctx)
}

// signed pays the receipt the payer signed.
func (r *usageRun) signed(ctx workflow.Context, req contract.UsageSignRequest) error {
	if err := r.checkSign(req); err != nil {
		return err // the state moved on since the validator ran
	}
	w := r.c.View.Waiting
	r.c.LastActive = workflow.Now(ctx)
	r.stopSignTimer()
	var res activities.UsagePayResult
	in := activities.UsagePayInput{Request: *w, Answer: req.Event, Stats: r.c.Unflushed, At: workflow.Now(ctx)}
	summary := fmt.Sprintf("pay receipt %d from the wallet", w.Receipt.Seq)
	var kept []contract.UsagePoolGrant
	if r.poolOn {
		in.Pool = true
		in.PoolSettle, kept, _ = contract.SettlePoolGrants(r.c.PoolGrants, r.c.Started.RemainUnits, r.c.View.UsedUnits, false)
		summary = fmt.Sprintf("pay receipt %d: free-tier pool decision, then the wallet", w.Receipt.Seq)
	}
	err := workflow.ExecuteActivity(usageCall(ctx, summary), a.UsagePay, in).Get(ctx, &res)
	if err != nil {
		if ue := asUsageError(err); ue != nil {
			r.startSignTimer(ctx) // refused: keep waiting
			return applicationError(err)
		}
		if r.poolOn {
			// The pool may have reserved for this receipt before the
			// payment failed: the end releases it (a no-op if it did not).
			r.c.PoolRelease = append(r.c.PoolRelease, w.ReceiptID)
		}
		r.fail(ctx, models.UsagePaymentError, "pay receipt: "+errorMessage(err))
		return usageErr(models.UsagePaymentError, "%s", errorMessage(err))
	}
	v := &r.c.View
	if r.poolOn {
		r.c.PoolGrants = kept // the fully used ones were recorded by this payment
	}
	v.FundsLeft = res.Spendable
	v.Waiting = nil
	if res.NotEnough {
		if v.State == contract.UsageIdle {
			r.enterGrace(ctx, contract.SubWaitingTxForPaying, fmt.Sprintf("receipt-%d", w.Receipt.Seq))
			return nil
		}
		v.LastError = models.UsageNotEnough
		r.reportError(ctx, models.UsageNotEnough, fmt.Sprintf("receipt %d needs %d, the wallet has %d", w.Receipt.Seq, w.Receipt.Value, res.Spendable))
		r.enterGrace(ctx, contract.SubWaitingNewTxFromClient, fmt.Sprintf("receipt-%d", w.Receipt.Seq))
		return nil
	}
	r.c.Last = w
	r.c.Unflushed = nil
	absorbed := r.poolPaid(w, res.Pool)
	r.c.ReceiptUnits += w.Receipt.Units
	r.c.Promised += w.Receipt.Value - absorbed
	v.ReceiptsSigned++
	v.PaidUnits += w.Receipt.Units
	v.Promised = r.c.Promised
	r.paidThisRun++
	r.stopGraceTimer()
	r.set(ctx, contract.UsageNormal, contract.SubNormal)
	r.maybeNext(ctx)
	return nil
}

// enterGrace starts (or keeps) the grace timer and asks for a top-up;
// service goes on meanwhile.
func (r *usageRun) enterGrace(ctx workflow.Context, sub, key string) {
	if !r.c.Graced {
		r.c.Graced = true
		r.addStats(usageModeGrace, contract.UsageModeStats{Sessions: 1})
	}
	r.c.View.State, r.c.View.SubState = contract.UsageGrace, sub
	if r.graceTimer == nil {
		tctx, cancel := workflow.WithCancel(ctx)
		r.graceTimer = workflow.NewTimerWithOptions(tctx, max(r.c.Service.GracePeriod, time.Millisecond), workflow.TimerOptions{
			Summary: fmt.Sprintf("grace period %s: service goes on while the payer tops up", r.c.Service.GracePeriod)})
		r.cancelGrace = cancel
	}
	r.publish(ctx)
	r.funds(ctx, true, key)
}

// funds reads the payer's spendable against the next receipt's value;
// with wait it also asks for a top-up (once per key).
func (r *usageRun) funds(ctx workflow.Context, wait bool, key string) bool {
	var res activities.UsageFundsResult
	err := workflow.ExecuteActivity(usageCall(ctx, "check the payer's funds"), a.UsageFunds, activities.UsageFundsInput{
		SessionID: r.in.SessionID, Payer: r.c.Request.Payer, ServiceID: r.c.Service.ID, Need: r.chunkValue(), Wait: wait, Key: key,
		At: workflow.Now(ctx), Pool: r.poolOn}).Get(ctx, &res)
	if err != nil {
		workflow.GetLogger(ctx).Warn("funds check failed", "error", err)
		return false
	}
	r.c.View.FundsLeft = res.Spendable
	return res.Enough
}

// fundsArrived: a top-up was paid (or the grace timer found funds). In
// grace without a receipt waiting: WAITING_NEW_TX_IN_LEDGER, and with
// enough funds the grace ends, the ban is lifted and a new receipt goes
// out (WAITING_RECEIPT_FOR_NEW_TX_FROM_CLIENT).
func (r *usageRun) fundsArrived(ctx workflow.Context, key string) {
	v := r.c.View
	if r.ended || v.State != contract.UsageGrace || v.Waiting != nil {
		return
	}
	r.c.LastActive = workflow.Now(ctx)
	r.set(ctx, contract.UsageGrace, contract.SubWaitingNewTxInLedger)
	if !r.funds(ctx, false, key) {
		return
	}
	r.stopGraceTimer()
	r.ban(ctx, true)
	r.issue(ctx, contract.SubWaitingReceiptForNewTxFromClient)
}

// graceEnded: funds now resume the session; none end it with
// TX_COND_NOT_FOUND and a ban.
func (r *usageRun) graceEnded(ctx workflow.Context) {
	if r.c.View.State != contract.UsageGrace || r.c.View.Waiting != nil {
		return
	}
	if r.funds(ctx, false, "") {
		r.fundsArrived(ctx, "grace-end")
		return
	}
	r.fail(ctx, models.UsageNoFunds, fmt.Sprintf("grace period %s ended with no funds", r.c.Service.GracePeriod))
}

// ban bans the payer from grace on the service for UsageBanFactor grace
// periods, or lifts its ban.
func (r *usageRun) ban(ctx workflow.Context, lift bool) {
	now := workflow.Now(ctx)
	in := activities.UsageBanInput{ServiceID: r.c.Service.ID, Payer: r.c.Request.Payer, Lift: lift, At: now}
	summary := "lift the payer's grace ban"
	if !lift {
		in.Until = now.Add(contract.UsageBanFactor * r.c.Service.GracePeriod)
		in.Reason = string(models.UsageNoFunds)
		summary = fmt.Sprintf("ban the payer from grace until %s", in.Until.UTC().Format(time.RFC3339))
	}
	if err := workflow.ExecuteActivity(usageCall(ctx, summary), a.UsageBan, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("grace ban not written", "lift", lift, "error", err)
	}
}

// reportError tells the application (usage.error); best effort.
func (r *usageRun) reportError(ctx workflow.Context, code models.UsageErrorCode, msg string) {
	r.c.Sends++
	err := workflow.ExecuteActivity(usageCall(ctx, "report "+string(code)), a.UsageReportError, activities.UsageErrorInput{
		SessionID: r.in.SessionID, Payer: r.c.Request.Payer, Code: code, Message: msg, Key: fmt.Sprintf("%s/%d", code, r.c.Sends)}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("usage error not reported", "code", code, "error", err)
	}
}

// fail records an error: in NORMAL the session keeps serving until it
// ends (sub-state ERROR); elsewhere it ends, and a grace that ended unpaid
// bans the payer.
func (r *usageRun) fail(ctx workflow.Context, code models.UsageErrorCode, msg string) {
	r.c.View.LastError = code
	r.stopSignTimer()
	r.c.View.Waiting = nil
	r.reportError(ctx, code, msg)
	if r.c.View.State == contract.UsageNormal {
		r.set(ctx, contract.UsageNormal, contract.SubError)
		return
	}
	if r.c.View.State == contract.UsageGrace && code == models.UsageNoFunds {
		r.ban(ctx, false)
	}
	r.c.View.SubState = contract.SubError
	r.finish(ctx)
}

// report folds a usage report into the counters and the statistics of the
// current mode; duplicates (by id) are dropped.
func (r *usageRun) report(ctx workflow.Context, rep contract.UsageReport, issue bool) {
	if r.ended || rep.Seconds < 0 || rep.BytesReceived < 0 || rep.BytesSent < 0 {
		return
	}
	if rep.ID != "" {
		for _, id := range r.c.Reports {
			if id == rep.ID {
				return
			}
		}
		r.c.Reports = append(r.c.Reports, rep.ID)
		if len(r.c.Reports) > usageReportMemory {
			r.c.Reports = r.c.Reports[len(r.c.Reports)-usageReportMemory:]
		}
	}
	s, v := r.c.Service, &r.c.View
	r.c.LastActive = workflow.Now(ctx)
	used := rep.Seconds
	if s.Unit == models.UnitBytes {
		used = rep.BytesReceived + rep.BytesSent
	}
	mode := usageModePaid
	switch v.State {
	case contract.UsageFree:
		mode = usageModeFree
	case contract.UsageGrace:
		mode = usageModeGrace
	}
	var value int64
	if !s.Free() {
		if d, err := models.UsageDelta(s.Price, v.UsedUnits, v.UsedUnits+used, s.Units); err == nil {
			value = d
		}
	}
	v.UsedUnits += used
	v.Seconds += rep.Seconds
	v.BytesReceived += rep.BytesReceived
	v.BytesSent += rep.BytesSent
	v.Value += value
	r.addStats(mode, contract.UsageModeStats{Seconds: rep.Seconds, BytesReceived: rep.BytesReceived, BytesSent: rep.BytesSent,
		Units: used, Value: value})
	if issue {
		r.maybeNext(ctx)
	}
	r.publish(ctx)
}

// Statistics modes (store.UsageMode*; spelled here so workflow code does
// not import the store).
const (
	usageModePaid  = "paid"
	usageModeFree  = "free"
	usageModeGrace = "grace"
)

// addStats adds to the statistics not yet written, in a fixed mode order.
func (r *usageRun) addStats(mode string, d contract.UsageModeStats) {
	for i := range r.c.Unflushed {
		u := &r.c.Unflushed[i]
		if u.Mode == mode {
			u.Seconds += d.Seconds
			u.BytesReceived += d.BytesReceived
			u.BytesSent += d.BytesSent
			u.Units += d.Units
			u.Value += d.Value
			u.Sessions += d.Sessions
			return
		}
	}
	d.Mode = mode
	r.c.Unflushed = append(r.c.Unflushed, d)
}

// maybeNext issues the next receipt (receipt_next) when the covered units
// are within half a chunk of running out, so service does not stall.
func (r *usageRun) maybeNext(ctx workflow.Context) {
	v, s := r.c.View, r.c.Service
	if r.ended || s.Free() || v.State != contract.UsageNormal || v.SubState != contract.SubNormal || v.Waiting != nil {
		return
	}
	if v.PaidUnits-v.UsedUnits <= s.Chunk/2 {
		r.issue(ctx, contract.SubWaitingNextReceiptSign)
	}
}

// finish ends the session: settle, remain service, statistics (one
// activity, retried until it succeeds: money must not be left promised).
func (r *usageRun) finish(ctx workflow.Context) {
	r.stopSignTimer()
	r.stopGraceTimer()
	v := &r.c.View
	remain := int64(0)
	if !r.c.Service.Free() && v.PaidUnits > v.UsedUnits {
		remain = v.PaidUnits - v.UsedUnits
	}
	var settle []contract.UsagePoolSettle
	if r.poolOn && len(r.c.PoolGrants) > 0 {
		// Units the pool paid for and the session did not use go back to
		// the pool, not to the payer's remain service.
		var poolUnused int64
		settle, _, poolUnused = contract.SettlePoolGrants(r.c.PoolGrants, r.c.Started.RemainUnits, v.UsedUnits, true)
		remain = max(remain-poolUnused, 0)
	}
	ectx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, Summary: fmt.Sprintf("end: settle %d, keep %d units as remain service", r.c.Promised, remain),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
	err := workflow.ExecuteActivity(ectx, a.UsageEnd, activities.UsageEndInput{SessionID: r.in.SessionID, Payer: r.c.Request.Payer,
		ServiceID: r.c.Service.ID, Unit: r.c.Service.Unit, Settle: r.c.Promised, Remain: remain, Stats: r.c.Unflushed,
		At: workflow.Now(ctx), PoolSettle: settle, PoolRelease: r.c.PoolRelease}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("usage session end not written", "error", err)
	} else {
		r.c.Unflushed = nil
		if v.Pool != nil {
			for _, s := range settle {
				v.Pool.Released += s.Reserved - s.Actual
			}
		}
		r.c.PoolGrants, r.c.PoolRelease = nil, nil
	}
	v.Waiting = nil
	r.endNow(ctx)
}

// endNow marks the session ended.
func (r *usageRun) endNow(ctx workflow.Context) {
	now := workflow.Now(ctx)
	r.c.View.EndedAt = &now
	r.c.View.State = contract.UsageEnded
	r.ended = true
	r.publish(ctx)
}

// publish updates UsageState (when it changed) and the current details.
func (r *usageRun) publish(ctx workflow.Context) {
	v := r.c.View
	if v.State != r.published && v.State != "" {
		if err := workflow.UpsertTypedSearchAttributes(ctx, AttrUsageState.ValueSet(v.State)); err != nil {
			workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
		} else {
			r.published = v.State
		}
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("### Usage session `%s`\n\n| | |\n|---|---|\n", r.in.SessionID))
	b.WriteString(fmt.Sprintf("| Service | %s |\n| Payer | `%s` |\n| State | **%s** / %s |\n", v.ServiceID, v.Payer.Short(), v.State, v.SubState))
	b.WriteString(fmt.Sprintf("| Receipts signed | %d |\n| Units paid / used | %d / %d %s |\n", v.ReceiptsSigned, v.PaidUnits, v.UsedUnits, r.c.Service.Unit))
	b.WriteString(fmt.Sprintf("| Value used | %s |\n| Promised | %s |\n| Funds left | %s |\n", FormatAmount(v.Value, v.Currency),
		FormatAmount(v.Promised, v.Currency), FormatAmount(v.FundsLeft, v.Currency)))
	if w := v.Waiting; w != nil {
		b.WriteString(fmt.Sprintf("| Waiting for signature | receipt %d `%s` (send %d of %d) |\n", w.Receipt.Seq, w.ReceiptID[:12], r.attempt, r.in.SignAttempts))
	}
	if p := v.Pool; p != nil {
		// The pool's figures only (no payer data beyond the short key above).
		b.WriteString(fmt.Sprintf("| Free-tier pool paid | %s this session (%s given back), last decision **%s** |\n",
			FormatAmount(p.Absorbed, v.Currency), FormatAmount(p.Released, v.Currency), p.LastServe))
		b.WriteString(fmt.Sprintf("| Pool balance | %s |\n| Absorbed today (tier %s) | %s |\n", FormatAmount(p.Balance, v.Currency),
			p.Tier, FormatAmount(p.AbsorbedToday, v.Currency)))
	}
	if v.LastError != "" {
		b.WriteString(fmt.Sprintf("| **Last error** | %s: %s |\n", v.LastError, models.UsageErrorMeaning[v.LastError]))
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// poolPaid notes the free-tier pool's part of a paid receipt: the view's
// pool figures and, when the pool paid some of it, a grant kept until its
// units are used or the session ends. It answers the pool's part.
func (r *usageRun) poolPaid(w *contract.SignRequest, p *contract.UsagePoolPaid) int64 {
	if !r.poolOn || p == nil {
		return 0
	}
	v := &r.c.View
	absorbed := min(max(p.Absorbed, 0), w.Receipt.Value)
	if v.Pool == nil && absorbed == 0 {
		return 0 // gated and never subsidised: the session shows no pool
	}
	if v.Pool == nil {
		v.Pool = &contract.UsagePoolView{}
	}
	v.Pool.Absorbed += absorbed
	v.Pool.Balance, v.Pool.AbsorbedToday, v.Pool.LastServe, v.Pool.Tier = p.Balance, p.AbsorbedToday, p.Serve, p.Tier
	if absorbed > 0 {
		r.c.PoolGrants = append(r.c.PoolGrants, contract.UsagePoolGrant{Key: w.ReceiptID, Start: r.c.ReceiptUnits, Units: w.Receipt.Units,
			Value: w.Receipt.Value, Absorbed: absorbed})
	}
	return absorbed
}
