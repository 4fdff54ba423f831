package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

const payoutTenant = models.TenantID("7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e")

func payoutRequest() contract.WithdrawalRequest {
	return contract.WithdrawalRequest{TenantID: payoutTenant, Key: "w-1", Amount: 500, BOLT11: "lnbcrt5u1..."}
}

func recordedPayout(status string) contract.WithdrawalResult {
	return contract.WithdrawalResult{Withdrawal: contract.Withdrawal{TenantID: payoutTenant, Key: "w-1", Amount: 500, Currency: "usd",
		Method: contract.WithdrawLightning, PaymentHash: "ab", AmountMsat: 2_500_000, Status: status}, Spendable: 500}
}

// requestPayout sends the withdrawal update right after the start, as
// update-with-start does, and returns what it answered.
func requestPayout(env *testsuite.TestWorkflowEnvironment, req contract.WithdrawalRequest) *payoutAnswer {
	ans := &payoutAnswer{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateWithdrawal, "u-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { ans.err = err },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				ans.done, ans.err = true, err
				if r, ok := v.(contract.WithdrawalResult); ok {
					ans.res = r
				}
			},
		}, req)
	}, 0)
	return ans
}

type payoutAnswer struct {
	done bool
	res  contract.WithdrawalResult
	err  error
}

func TestPayoutPaysAndRecordsThePreimage(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(WithdrawalPayout)
	env.OnActivity(acts.RequestWithdrawal, mock.Anything, mock.Anything).Return(recordedPayout(contract.WithdrawalRequested), nil).Once()
	env.OnActivity(acts.PayOut, mock.Anything, mock.Anything).Return(
		activities.PayOutResult{Status: activities.PayoutSucceeded, PaidOut: true, PreimageHex: "ff", FeeMsat: 1000}, nil).Once()
	var finished activities.FinishPayoutInput
	env.OnActivity(acts.FinishPayout, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FinishPayoutInput) (contract.WithdrawalResult, error) {
		finished = in
		r := recordedPayout(contract.WithdrawalPaidOut)
		r.Withdrawal.Reference, r.Withdrawal.FeeMsat = "ff", 1000
		return r, nil
	}).Once()
	ans := requestPayout(env, payoutRequest())
	env.ExecuteWorkflow(WithdrawalPayout, PayoutInput{Request: payoutRequest()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res PayoutResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, contract.WithdrawalPaidOut, res.Status)
	assert.Equal(t, "ff", res.Withdrawal.Reference)
	assert.True(t, finished.Result.PaidOut)
	require.True(t, ans.done)
	require.NoError(t, ans.err)
	assert.Equal(t, contract.WithdrawalRequested, ans.res.Withdrawal.Status, "the update answers once the request is recorded")
	env.AssertExpectations(t)
}

// A payment in flight is retried by the activity's policy (with time
// skipping, backing off) until the node answers; a failed payment gives
// the amount back through FinishPayout and does not fail the workflow.
func TestPayoutFailureReturnsTheAmountAfterInFlightRetries(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(WithdrawalPayout)
	env.OnActivity(acts.RequestWithdrawal, mock.Anything, mock.Anything).Return(recordedPayout(contract.WithdrawalRequested), nil).Once()
	calls := 0
	env.OnActivity(acts.PayOut, mock.Anything, mock.Anything).Return(func(context.Context, activities.PayOutInput) (activities.PayOutResult, error) {
		calls++
		if calls < 4 {
			return activities.PayOutResult{}, errors.New("payout w-1 is still in flight")
		}
		return activities.PayOutResult{Status: activities.PayoutFailed, Failure: "FAILURE_REASON_NO_ROUTE"}, nil
	})
	env.OnActivity(acts.FinishPayout, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FinishPayoutInput) (contract.WithdrawalResult, error) {
		assert.False(t, in.Result.PaidOut)
		assert.Equal(t, "FAILURE_REASON_NO_ROUTE", in.Result.Failure)
		r := recordedPayout(contract.WithdrawalFailed)
		r.Withdrawal.Failure, r.Spendable = in.Result.Failure, 1000
		return r, nil
	}).Once()
	requestPayout(env, payoutRequest())
	env.ExecuteWorkflow(WithdrawalPayout, PayoutInput{Request: payoutRequest()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res PayoutResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, contract.WithdrawalFailed, res.Status)
	assert.Equal(t, 4, calls)
	assert.Empty(t, res.NeedsAction)
}

// A refused request answers the caller with the typed error, records
// nothing and ends the workflow without failing it.
func TestPayoutRefusalAnswersTheTypedError(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(WithdrawalPayout)
	ne := models.NotEnoughError{Of: "withdrawable", Wanted: 500, Available: 120}
	env.OnActivity(acts.RequestWithdrawal, mock.Anything, mock.Anything).Return(contract.WithdrawalResult{},
		temporal.NewNonRetryableApplicationError(ne.Error(), contract.ErrNotEnough, nil, ne)).Once()
	ans := requestPayout(env, payoutRequest())
	env.ExecuteWorkflow(WithdrawalPayout, PayoutInput{Request: payoutRequest()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res PayoutResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, contract.WithdrawalRefused, res.Status)
	assert.Contains(t, res.Refusal, "withdrawable")
	assert.Empty(t, res.NeedsAction)
	require.True(t, ans.done)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, ans.err, &appErr)
	assert.Equal(t, contract.ErrNotEnough, appErr.Type())
	var got models.NotEnoughError
	require.NoError(t, appErr.Details(&got))
	assert.Equal(t, ne, got)
}

// The same key with other content is rejected by the update's validator,
// before anything runs for it.
func TestPayoutValidatorRejectsOtherContentUnderTheKey(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(WithdrawalPayout)
	env.OnActivity(acts.RequestWithdrawal, mock.Anything, mock.Anything).Return(func(context.Context, activities.RequestWithdrawalInput) (contract.WithdrawalResult, error) {
		r := recordedPayout(contract.WithdrawalRequested)
		r.Withdrawal.Method = contract.WithdrawManual
		return r, nil
	}).Once()
	other := payoutRequest()
	other.Amount = 501
	ans := requestPayout(env, other)
	env.ExecuteWorkflow(WithdrawalPayout, PayoutInput{Request: payoutRequest()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, ans.err)
	assert.Contains(t, ans.err.Error(), "different content")
	assert.False(t, ans.done)
}

// A manual payout ends once recorded: an operator pays it.
func TestPayoutManualEndsOnceRecorded(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(WithdrawalPayout)
	env.OnActivity(acts.RequestWithdrawal, mock.Anything, mock.Anything).Return(func(context.Context, activities.RequestWithdrawalInput) (contract.WithdrawalResult, error) {
		r := recordedPayout(contract.WithdrawalRequested)
		r.Withdrawal.Method, r.Withdrawal.PaymentHash, r.Withdrawal.AmountMsat = contract.WithdrawManual, "", 0
		return r, nil
	}).Once()
	req := contract.WithdrawalRequest{TenantID: payoutTenant, Key: "w-1", Amount: 500}
	requestPayout(env, req)
	env.ExecuteWorkflow(WithdrawalPayout, PayoutInput{Request: req})
	require.True(t, env.IsWorkflowCompleted())
	var res PayoutResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, contract.WithdrawalRequested, res.Status)
	assert.Equal(t, contract.WithdrawManual, res.Withdrawal.Method)
	env.AssertExpectations(t)
}
