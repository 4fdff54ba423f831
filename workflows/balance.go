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

// BalanceSync names, from package contract.
const (
	SignalBalanceEvent = contract.SignalBalanceEvent
	QueryBalance       = contract.QueryBalance
	UpdateSyncBalance  = contract.UpdateSyncBalance
)

// AttrWalletBalance is the spendable balance of the tenant's wallet, as its
// BalanceSync workflow last synced it (registered in scripts/lib.sh).
var AttrWalletBalance = temporal.NewSearchAttributeKeyInt64("WalletBalance")

// BalanceWorkflowID is the ID of a tenant's BalanceSync workflow.
func BalanceWorkflowID(id models.TenantID) string { return contract.BalanceWorkflowID(id) }

// BalanceView is what the balance query and the sync-balance update answer.
type BalanceView = contract.BalanceView

// BalanceEvent is the balance-event signal's payload.
type BalanceEvent = contract.BalanceEvent

// BalanceSyncInput configures a balance sync; zero durations take the
// contract defaults (1h lifetime, 5s aggressive for 2 min).
type BalanceSyncInput struct {
	TenantID     models.TenantID `json:"tenant_id"`
	SlowInterval time.Duration   `json:"slow_interval,omitempty"`
	FastInterval time.Duration   `json:"fast_interval,omitempty"`
	FastTimeout  time.Duration   `json:"fast_timeout,omitempty"`
	// Carry is the state a continued-as-new run resumes from; nil at start.
	Carry *BalanceCarry `json:"carry,omitempty"`
	// ContinueAfter, when positive, continues as new after that many waits
	// in one run instead of when Temporal suggests it (for tests).
	ContinueAfter int `json:"continue_after,omitempty"`
}

// BalanceCarry is what a balance sync remembers across continue-as-new.
type BalanceCarry struct {
	View BalanceView `json:"view"`
	// LastSync is when the last sync was attempted (successful or not).
	LastSync        time.Time  `json:"last_sync"`
	FastUntil       *time.Time `json:"fast_until,omitempty"`
	NextGrantExpiry *time.Time `json:"next_grant_expiry,omitempty"`
	// GrantRetryAt holds back a grant expiry that failed until then.
	GrantRetryAt *time.Time `json:"grant_retry_at,omitempty"`
	// Windows counts the aggressive windows opened so far.
	Windows int `json:"windows,omitempty"`
	// Events is how many balance events were taken off the channel as the
	// previous run ended; the next run handles them first.
	Events int `json:"events,omitempty"`
}

type balanceRun struct {
	in        BalanceSyncInput
	view      BalanceView
	lastSync  time.Time
	fastUntil *time.Time
	nextGrant *time.Time
	// grantRetry holds back the next expiry after one failed (no tight loop).
	grantRetry *time.Time
	windows    int
	// published is the WalletBalance search attribute's value (-1: unset).
	published int64
	// autoRecharge: this run starts auto top-ups (changeBalanceAutoRecharge).
	autoRecharge bool
}

// BalanceSync keeps a tenant's wallet balance in sync with its ledger of
// record. ID: balance/<tenant>, started and fed by signal-with-start of
// balance-event, so one loop per tenant. A lifetime sync runs every
// SlowInterval; after an event (a top-up requested or paid, a settlement, a
// withdrawal) it syncs every FastInterval until FastTimeout after the last
// event. Each sync reconciles open top-ups with their rails, reads the
// wallet and publishes balance events; grants expire on a timer at their
// expiry. The query answers from memory with the sync instant; the
// sync-balance update syncs first. No business error ends it.
func BalanceSync(ctx workflow.Context, in BalanceSyncInput) (BalanceView, error) {
	if in.SlowInterval <= 0 {
		in.SlowInterval = contract.DefaultBalanceSlowInterval
	}
	if in.FastInterval <= 0 {
		in.FastInterval = contract.DefaultBalanceFastInterval
	}
	if in.FastTimeout <= 0 {
		in.FastTimeout = contract.DefaultBalanceFastTimeout
	}
	r := &balanceRun{in: in, view: BalanceView{TenantID: in.TenantID}, published: -1}
	r.autoRecharge = patched(ctx, changeBalanceAutoRecharge)
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryBalance, func() (BalanceView, error) { return r.answer(), nil },
		workflow.QueryHandlerOptions{Description: "The wallet balance as last synced, with the instant of that sync."}); err != nil {
		return r.view, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSyncBalance, func(ctx workflow.Context) (BalanceView, error) {
		if err := r.sync(ctx, interactive); err != nil {
			return r.answer(), err
		}
		return r.answer(), nil
	}, workflow.UpdateHandlerOptions{Description: "Sync the wallet from the ledger now and answer the fresh balance."}); err != nil {
		return r.view, err
	}
	events := workflow.GetSignalChannelWithOptions(ctx, SignalBalanceEvent, workflow.SignalChannelOptions{
		Description: "Money moved (top-up requested or paid, settlement, withdrawal): sync fast for a while."})
	// wake carries the wallet writes made by updates to the loop, which
	// treats them like balance events.
	wake := workflow.NewBufferedChannel(ctx, 16)
	if err := r.walletUpdates(ctx, wake); err != nil {
		return r.view, err
	}

	pending := 0
	if c := in.Carry; c != nil {
		r.view, r.lastSync, r.fastUntil, r.nextGrant, r.grantRetry, r.windows = c.View, c.LastSync, c.FastUntil, c.NextGrantExpiry, c.GrantRetryAt, c.Windows
		pending = c.Events
		r.publish(ctx)
	}
	pending += drainCount(events)
	opened := pending > 0 && r.extend(ctx)
	if in.Carry == nil || opened {
		// A failure is in the view and the next timer retries, except for a
		// tenant that does not exist: a sync started for it (a mistyped id)
		// ends instead of running forever.
		if err := r.sync(ctx, syncOptions); errorType(err) == activities.ErrNotFound && r.view.SyncedAt.IsZero() {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return r.answer(), err
			}
			return r.answer(), nil
		}
	}

	budget := runBudget{max: in.ContinueAfter}
	var timer workflow.Future
	var timerAt time.Time
	var cancelTimer workflow.CancelFunc
	for {
		if err := ctx.Err(); err != nil {
			return r.answer(), temporal.NewCanceledError() // cancelled by an operator
		}
		if budget.exhausted(ctx) {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return r.view, err
			}
			next := r.in
			next.Carry = &BalanceCarry{View: r.view, LastSync: r.lastSync, FastUntil: r.fastUntil, NextGrantExpiry: r.nextGrant,
				GrantRetryAt: r.grantRetry, Windows: r.windows, Events: drainCount(events) + drainCount(wake)}
			return r.view, workflow.NewContinueAsNewError(ctx, BalanceSync, next)
		}
		budget.spend()
		at, expire, summary := r.next(ctx)
		if timer == nil || !at.Equal(timerAt) {
			if cancelTimer != nil {
				cancelTimer()
			}
			var tctx workflow.Context
			tctx, cancelTimer = workflow.WithCancel(ctx)
			timer, timerAt = workflow.NewTimerWithOptions(tctx, max(at.Sub(workflow.Now(ctx)), time.Millisecond),
				workflow.TimerOptions{Summary: summary}), at
		}
		fired, got := false, 0
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) { got = drainCount(c) })
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { got = drainCount(c) })
		sel.Select(ctx)
		if got > 0 && r.extend(ctx) {
			// A new window syncs at once; an event inside a running window
			// only extends it (the timer keeps its schedule).
			_ = r.sync(ctx, syncOptions)
			continue
		}
		if !fired {
			continue
		}
		timer = nil
		if expire {
			r.expireGrants(ctx)
		}
		_ = r.sync(ctx, syncOptions)
	}
}

// drainCount empties a balance-event (or wake) channel and counts what it held.
func drainCount(c workflow.ReceiveChannel) int {
	n := 0
	var ev BalanceEvent
	for c.ReceiveAsync(&ev) {
		n++
	}
	return n
}

// extend opens or extends the aggressive window to FastTimeout from now;
// it reports whether a new window opened.
func (r *balanceRun) extend(ctx workflow.Context) bool {
	now := workflow.Now(ctx)
	opened := r.fastUntil == nil
	until := now.Add(r.in.FastTimeout)
	r.fastUntil = &until
	if opened {
		r.windows++
	}
	r.publish(ctx)
	return opened
}

// next is the instant of the next wake: the next sync (fast inside a
// window, slow otherwise) or a grant's expiry, whichever is first. A window
// whose next fast sync would fall after its end is closed here.
func (r *balanceRun) next(ctx workflow.Context) (at time.Time, expire bool, summary string) {
	if r.fastUntil != nil {
		if at = r.lastSync.Add(r.in.FastInterval); !at.After(*r.fastUntil) {
			// The window's end is in the details: an event extends it without
			// restarting this timer, so the summary does not name it.
			summary = fmt.Sprintf("aggressive sync every %s after a balance event", r.in.FastInterval)
		} else {
			r.fastUntil = nil // the window timed out
			r.publish(ctx)
		}
	}
	if r.fastUntil == nil {
		at = r.lastSync.Add(r.in.SlowInterval)
		summary = fmt.Sprintf("lifetime sync every %s", r.in.SlowInterval)
	}
	if g := r.nextGrant; g != nil {
		if r.grantRetry != nil && r.grantRetry.After(*g) {
			g = r.grantRetry
		}
		if g.Before(at) {
			return *g, true, "grant expires " + r.nextGrant.UTC().Format(time.RFC3339)
		}
	}
	return at, false, summary
}

// syncOptions run a sync from the workflow's own timers: the database and
// the rails are retried with back-off (the rails' errors are retryable),
// bounded so a long outage is recorded and retried at the next wake.
func syncOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 10 * time.Minute, Summary: summary,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable},
	})
}

// sync reconciles the open top-ups, then reads the wallet. A failure is
// recorded in the view and the details (the workflow keeps going) and
// returned for an update's caller.
func (r *balanceRun) sync(ctx workflow.Context, opts func(workflow.Context, string) workflow.Context) error {
	now := workflow.Now(ctx)
	r.lastSync = now
	var recErr error
	if len(r.view.OpenTopUps) > 0 {
		ids := make([]string, 0, len(r.view.OpenTopUps))
		for _, t := range r.view.OpenTopUps {
			ids = append(ids, t.InvoiceID)
		}
		var rec activities.ReconcileTopUpsResult
		recErr = workflow.ExecuteActivity(opts(ctx, fmt.Sprintf("reconcile %d open top-up(s)", len(ids))), a.ReconcileTopUps,
			activities.ReconcileTopUpsInput{TenantID: r.in.TenantID, InvoiceIDs: ids, At: now}).Get(ctx, &rec)
	}
	var res activities.SyncWalletResult
	err := workflow.ExecuteActivity(opts(ctx, "sync wallet from the ledger"), a.SyncWallet,
		activities.SyncWalletInput{TenantID: r.in.TenantID, At: now}).Get(ctx, &res)
	if err != nil {
		r.failed(ctx, "sync wallet", err)
		return err
	}
	// A concurrent update may have synced later; keep the newest view.
	if !res.View.SyncedAt.Before(r.view.SyncedAt) {
		r.view = res.View
		r.nextGrant = res.NextGrantExpiry
	}
	r.view.LastError = ""
	if r.autoRecharge && res.AutoRecharge.Due(res.View.Spendable) {
		r.startAutoRecharge(ctx, opts)
	}
	if recErr != nil {
		r.failed(ctx, "reconcile top-ups", recErr)
		return nil // the balance itself is fresh
	}
	r.publish(ctx)
	return nil
}

// startAutoRecharge starts the wallet's auto top-up. Its collection is its
// own InvoicePayment (dunning included), and the sync after finds it open,
// so a failed top-up is not followed by another on every sync.
func (r *balanceRun) startAutoRecharge(ctx workflow.Context, opts func(workflow.Context, string) workflow.Context) {
	var res activities.StartAutoRechargeResult
	err := workflow.ExecuteActivity(opts(ctx, "start an auto-recharge top-up"), a.StartAutoRecharge,
		activities.StartAutoRechargeInput{TenantID: r.in.TenantID}).Get(ctx, &res)
	if err != nil {
		r.failed(ctx, "start auto-recharge", err)
		return
	}
	if res.Created {
		r.view.OpenTopUps = append(r.view.OpenTopUps, contract.OpenTopUp{InvoiceID: res.InvoiceID, Amount: res.Amount,
			Currency: r.view.Currency, Status: "open", CreatedAt: workflow.Now(ctx)})
	}
}

// failed records a step's failure in the view and the details.
func (r *balanceRun) failed(ctx workflow.Context, step string, err error) {
	r.view.LastError = step + ": " + activities.Summarize(errorMessage(err))
	workflow.GetLogger(ctx).Warn("balance sync step failed; retried at the next wake", "step", step, "error", err)
	r.publish(ctx)
}

// expireGrants writes the expire entries of the grants due now (exactly
// once per grant: the store's ExpireGrant is idempotent by grant key).
func (r *balanceRun) expireGrants(ctx workflow.Context) {
	var res activities.ExpireGrantsResult
	err := workflow.ExecuteActivity(syncOptions(ctx, "expire due grants"), a.ExpireGrants,
		activities.ExpireGrantsInput{TenantID: r.in.TenantID, At: workflow.Now(ctx)}).Get(ctx, &res)
	if err != nil {
		r.failed(ctx, "expire grants", err)
		// Retry after a slow interval rather than in a tight loop.
		retry := workflow.Now(ctx).Add(r.in.SlowInterval)
		r.grantRetry = &retry
		return
	}
	r.grantRetry = nil
}

// answer is the view with the running window's end.
func (r *balanceRun) answer() BalanceView {
	v := r.view
	v.FastUntil = r.fastUntil
	return v
}

// publish updates the search attributes (only when the balance changed, to
// keep history small) and the current details.
func (r *balanceRun) publish(ctx workflow.Context) {
	if !r.view.SyncedAt.IsZero() && r.view.Spendable != r.published {
		if err := workflow.UpsertTypedSearchAttributes(ctx, AttrTenant.ValueSet(string(r.in.TenantID)),
			AttrWalletBalance.ValueSet(r.view.Spendable)); err != nil {
			workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
		} else {
			r.published = r.view.Spendable
		}
	}
	v := r.view
	var b strings.Builder
	b.WriteString(fmt.Sprintf("### Wallet of tenant `%s`\n\n| | |\n|---|---|\n", r.in.TenantID.Short()))
	amt := func(x int64) string { return FormatAmount(x, v.Currency) }
	b.WriteString(fmt.Sprintf("| Funds | %s |\n| Promised | %s |\n| Settled | %s |\n| Spendable | **%s** |\n", amt(v.Funds), amt(v.Promised), amt(v.Settled), amt(v.Spendable)))
	last := "never"
	if !v.SyncedAt.IsZero() {
		last = v.SyncedAt.UTC().Format(time.RFC3339)
	}
	b.WriteString(fmt.Sprintf("| Last sync | %s |\n", last))
	if r.fastUntil != nil {
		b.WriteString(fmt.Sprintf("| Aggressive sync | every %s until %s |\n", r.in.FastInterval, r.fastUntil.UTC().Format(time.RFC3339)))
	} else {
		b.WriteString(fmt.Sprintf("| Lifetime sync | every %s |\n", r.in.SlowInterval))
	}
	if r.nextGrant != nil {
		b.WriteString(fmt.Sprintf("| Next grant expiry | %s |\n", r.nextGrant.UTC().Format(time.RFC3339)))
	}
	if v.Violation != "" {
		b.WriteString(fmt.Sprintf("| **Invariant broken** | %s |\n", v.Violation))
	}
	if v.LastError != "" {
		b.WriteString(fmt.Sprintf("| **Last error** | %s |\n", v.LastError))
	}
	b.WriteString(fmt.Sprintf("\n**Open top-ups:** %d\n", len(v.OpenTopUps)))
	if len(v.OpenTopUps) > 0 {
		b.WriteString("\n| Invoice | Amount | Status | Created |\n|---|---|---|---|\n")
		for _, t := range v.OpenTopUps {
			b.WriteString(fmt.Sprintf("| `%s` | %s | %s | %s |\n", t.InvoiceID, FormatAmount(t.Amount, t.Currency), t.Status, t.CreatedAt.UTC().Format(time.RFC3339)))
		}
	}
	if len(v.OpenPayouts) > 0 {
		b.WriteString(fmt.Sprintf("\n**Open payouts:** %d\n\n| Withdrawal | Amount | Method | Requested |\n|---|---|---|---|\n", len(v.OpenPayouts)))
		for _, p := range v.OpenPayouts {
			b.WriteString(fmt.Sprintf("| `%s` | %s | %s | %s |\n", p.Key, FormatAmount(p.Amount, p.Currency), p.Method, p.RequestedAt.UTC().Format(time.RFC3339)))
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// walletUpdates registers the updates that write to (or read) the wallet
// for clients without Postgres (package billing). Each runs one activity;
// a write that changed something wakes the loop on wake, which opens an
// aggressive window like a balance event. They add commands only when
// called, which no history recorded before them did.
func (r *balanceRun) walletUpdates(ctx workflow.Context, wake workflow.Channel) error {
	tenant := r.in.TenantID
	woke := func(changed bool) {
		if changed {
			// A full buffer already wakes the loop: dropping is fine.
			wake.SendAsync(BalanceEvent{Kind: "wallet_update"})
		}
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateWalletGrant, func(ctx workflow.Context, req contract.GrantRequest) (contract.WalletWriteResult, error) {
		var out contract.WalletWriteResult
		err := workflow.ExecuteActivity(interactive(ctx, "Grant "+req.Key), a.WalletGrant,
			activities.WalletGrantInput{TenantID: tenant, Request: req, At: workflow.Now(ctx)}).Get(ctx, &out)
		if err != nil {
			return out, applicationError(err)
		}
		woke(!out.Duplicate)
		return out, nil
	}, workflow.UpdateHandlerOptions{Description: "Give the tenant credit (a grant), idempotent by key."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateWalletTopUp, func(ctx workflow.Context, req contract.TopUpRequest) (contract.TopUpResult, error) {
		var out contract.TopUpResult
		err := workflow.ExecuteActivity(interactive(ctx, "Top up "+req.Key), a.WalletTopUp,
			activities.WalletTopUpInput{TenantID: tenant, Request: req, At: workflow.Now(ctx)}).Get(ctx, &out)
		if err != nil {
			return out, applicationError(err)
		}
		woke(true)
		return out, nil
	}, workflow.UpdateHandlerOptions{Description: "Make a top-up invoice (idempotent by key) and start collecting it."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateWalletAutoRecharge, func(ctx workflow.Context, set contract.AutoRecharge) (contract.AutoRecharge, error) {
		var out contract.AutoRecharge
		err := workflow.ExecuteActivity(interactive(ctx, "Set auto-recharge"), a.WalletAutoRecharge,
			activities.WalletAutoRechargeInput{TenantID: tenant, Setting: set}).Get(ctx, &out)
		if err != nil {
			return out, applicationError(err)
		}
		woke(true)
		return out, nil
	}, workflow.UpdateHandlerOptions{Description: "Set the wallet's auto-recharge threshold and amount (both null: off)."}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateWalletLedger, func(ctx workflow.Context, req contract.LedgerRequest) (contract.LedgerPage, error) {
		var out contract.LedgerPage
		err := workflow.ExecuteActivity(interactive(ctx, "Read the ledger"), a.WalletLedger,
			activities.WalletLedgerInput{TenantID: tenant, Request: req}).Get(ctx, &out)
		return out, applicationError(err)
	}, workflow.UpdateHandlerOptions{Description: "A page of the wallet's ledger, newest first."})
}

// applicationError unwraps an activity's typed refusal for an update's
// caller, so the client sees the ValidationError or NotFound itself.
func applicationError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr
	}
	return err
}
