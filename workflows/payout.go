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
)

// UpdateWithdrawal is the payout workflow's request-outcome update.
const UpdateWithdrawal = contract.UpdateWithdrawal

// PayoutInput starts a withdrawal's payout workflow (contract.PayoutInput).
type PayoutInput = contract.PayoutInput

// PayoutResult is how a withdrawal ended: recorded and paid out, failed
// (the amount went back), left to an operator (manual), or refused.
type PayoutResult struct {
	Status     string              `json:"status"`
	Withdrawal contract.Withdrawal `json:"withdrawal,omitzero"`
	// Refusal is why the request was not recorded.
	Refusal string `json:"refusal,omitempty"`
	// NeedsAction is a step that failed for good and what it said; the
	// payout is left for the next lifetime sync to resume.
	NeedsAction string `json:"needs_action,omitempty"`
}

// payoutRetry backs a payment in flight or an unreachable node off to ten
// minutes, without a limit: money may be moving, so the workflow waits for
// the node's answer instead of guessing.
var payoutRetry = &temporal.RetryPolicy{
	InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
	NonRetryableErrorTypes: nonRetryable,
}

// WithdrawalPayout records a withdrawal request and pays it out. ID:
// payout/<tenant>/<key>, started by update-with-start of the withdrawal
// update, which answers as soon as the request is recorded or refused.
// RequestWithdrawal takes the amount from spendable; for a Lightning
// payout, PayOut pays the tenant's BOLT11 from the engine's node (asking
// the node first, so a retry never pays twice) and FinishPayout records
// the preimage, or gives the amount back if the payment failed. A manual
// payout ends once recorded: an operator pays it and marks it. No business
// error fails the workflow.
func WithdrawalPayout(ctx workflow.Context, in PayoutInput) (PayoutResult, error) {
	var (
		res      PayoutResult
		outcome  *contract.WithdrawalResult
		refusal  error
		answered bool
	)
	req := in.Request
	details := func() {
		var b strings.Builder
		b.WriteString(fmt.Sprintf("## Withdrawal `%s`\n\n| | |\n|---|---|\n| Tenant | `%s` |\n", req.Key, req.TenantID))
		if outcome != nil {
			w := outcome.Withdrawal
			b.WriteString(fmt.Sprintf("| Amount | %s |\n| Method | %s |\n| Status | **%s** |\n", FormatAmount(w.Amount, w.Currency), w.Method, w.Status))
			if w.PaymentHash != "" {
				b.WriteString(fmt.Sprintf("| Payment hash | `%s` |\n| Amount (msat) | %d |\n", w.PaymentHash, w.AmountMsat))
			}
			if w.FeeMsat > 0 {
				b.WriteString(fmt.Sprintf("| Routing fee (msat) | %d |\n", w.FeeMsat))
			}
			if w.Failure != "" {
				b.WriteString(fmt.Sprintf("| Failure | %s (the amount went back to the wallet) |\n", w.Failure))
			}
		}
		if res.Refusal != "" {
			b.WriteString(fmt.Sprintf("| Refused | %s |\n", res.Refusal))
		}
		if res.NeedsAction != "" {
			b.WriteString(fmt.Sprintf("| **Needs action** | %s |\n", res.NeedsAction))
		}
		workflow.SetCurrentDetails(ctx, b.String())
	}

	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateWithdrawal, func(ctx workflow.Context, r contract.WithdrawalRequest) (contract.WithdrawalResult, error) {
		if err := workflow.Await(ctx, func() bool { return answered }); err != nil {
			return contract.WithdrawalResult{}, err
		}
		if refusal != nil {
			return contract.WithdrawalResult{}, refusal
		}
		return *outcome, nil
	}, workflow.UpdateHandlerOptions{
		Description: "The withdrawal request's outcome: recorded (with the wallet after it) or refused.",
		Validator: func(ctx workflow.Context, r contract.WithdrawalRequest) error {
			if !in.Resume && r != req {
				return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
					"withdrawal key %q is already used by a request with different content (amount %d)", req.Key, req.Amount), contract.ErrValidation, nil)
			}
			return nil
		},
	}); err != nil {
		return res, err
	}

	var recorded contract.WithdrawalResult
	err := workflow.ExecuteActivity(interactive(ctx, "Record withdrawal "+req.Key), a.RequestWithdrawal,
		activities.RequestWithdrawalInput{Request: req, Resume: in.Resume, At: workflow.Now(ctx)}).Get(ctx, &recorded)
	answered = true
	if err != nil {
		refusal = err
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			refusal = appErr // the caller sees the typed refusal, not the activity wrapper
		}
		res.Status, res.Refusal = contract.WithdrawalRefused, errorMessage(err)
		if errorType(err) != contract.ErrValidation && errorType(err) != contract.ErrNotEnough && errorType(err) != contract.ErrNotFound {
			// Not the request's fault (the database was down): the caller
			// hears it failed and may retry; the next lifetime sync resumes
			// a request that was recorded after all.
			res.NeedsAction = "recording the request failed: " + errorMessage(err)
		}
		details()
		return res, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	}
	outcome = &recorded
	res.Status, res.Withdrawal = recorded.Withdrawal.Status, recorded.Withdrawal
	details()

	if w := recorded.Withdrawal; w.Method == contract.WithdrawLightning && w.Status == contract.WithdrawalRequested {
		var paid activities.PayOutResult
		pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Minute, Summary: "Pay out " + FormatAmount(w.Amount, w.Currency) + " over Lightning",
			RetryPolicy: payoutRetry,
		})
		if err := workflow.ExecuteActivity(pctx, a.PayOut, activities.PayOutInput{TenantID: w.TenantID, Key: w.Key, At: workflow.Now(ctx)}).Get(ctx, &paid); err != nil {
			res.NeedsAction = "paying out failed for good: " + errorMessage(err)
		} else if !paid.Finished {
			var done contract.WithdrawalResult
			if err := workflow.ExecuteActivity(durable(ctx, "Record the payout's outcome"), a.FinishPayout,
				activities.FinishPayoutInput{TenantID: w.TenantID, Key: w.Key, Result: paid, At: workflow.Now(ctx)}).Get(ctx, &done); err != nil {
				res.NeedsAction = "recording the payout failed for good: " + errorMessage(err)
			} else {
				outcome = &done
				res.Status, res.Withdrawal = done.Withdrawal.Status, done.Withdrawal
			}
		} else {
			res.Status = paid.Status
			res.Withdrawal.Status = paid.Status
		}
		details()
	}
	return res, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}
