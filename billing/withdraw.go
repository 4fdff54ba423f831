package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// WithdrawalRequest asks to pay unspent deposits back to the tenant, over
// Lightning (BOLT11) or by an operator (Reference once paid).
type WithdrawalRequest = contract.WithdrawalRequest

// WithdrawalResult is a recorded withdrawal and the wallet after it.
type WithdrawalResult = contract.WithdrawalResult

// NotEnoughError is a withdrawal above what the wallet can pay back; it
// says what was wanted and what was available.
type NotEnoughError = models.NotEnoughError

// Withdraw records a withdrawal and starts its payout, by update-with-start
// of the payout workflow payout/<tenant>/<key>: it answers once the request
// is recorded (the amount has left spendable) or refused (a
// *ValidationError naming the field, a *NotEnoughError, ErrTenantNotFound),
// while a Lightning payout goes on in the workflow. The same request again
// answers the first outcome with Duplicate set; other content under the
// same key is refused.
func (c *Client) Withdraw(ctx context.Context, req WithdrawalRequest) (WithdrawalResult, error) {
	var res WithdrawalResult
	if _, err := models.ParseTenantID(string(req.TenantID)); err != nil {
		return res, err
	}
	req.Key = strings.TrimSpace(req.Key)
	if req.Key == "" || len(req.Key) > 120 {
		return res, &ValidationError{Field: "key", Reason: "must be 1-120 characters"}
	}
	if req.Amount <= 0 {
		return res, &ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not positive", req.Amount)}
	}
	req.BOLT11, req.Reference = strings.TrimSpace(req.BOLT11), strings.TrimSpace(req.Reference)
	start := c.temporal.NewWithStartWorkflowOperation(c.payoutStart(req.TenantID, req.Key, req.Amount), contract.WorkflowWithdrawalPayout,
		contract.PayoutInput{Request: req})
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: contract.UpdateWithdrawal, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return res, withdrawalError(err, req.TenantID)
	}
	return res, withdrawalError(handle.Get(ctx, &res), req.TenantID)
}

// ResumePayout starts the payout workflow of a withdrawal recorded already
// (or reuses the running one): it looks the payment up on the node before
// paying, so resuming never pays twice.
func (c *Client) ResumePayout(ctx context.Context, tenant models.TenantID, key string) error {
	_, err := c.temporal.ExecuteWorkflow(ctx, c.payoutStart(tenant, key, 0), contract.WorkflowWithdrawalPayout,
		contract.PayoutInput{Request: WithdrawalRequest{TenantID: tenant, Key: key}, Resume: true})
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return nil
}

func (c *Client) payoutStart(tenant models.TenantID, key string, amount int64) client.StartWorkflowOptions {
	summary := fmt.Sprintf("Withdrawal %s of tenant %s", key, tenant.Short())
	if amount > 0 {
		summary = fmt.Sprintf("Withdrawal %s of %d (minor units) for tenant %s", key, amount, tenant.Short())
	}
	return client.StartWorkflowOptions{
		ID: contract.PayoutWorkflowID(tenant, key), TaskQueue: c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            summary,
	}
}

// withdrawalError turns a refused withdrawal into the package's errors.
func withdrawalError(err error, tenant models.TenantID) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == contract.ErrNotEnough {
		var ne NotEnoughError
		if appErr.HasDetails() && appErr.Details(&ne) == nil {
			return &ne
		}
		return &ValidationError{Field: "amount", Reason: appErr.Message()}
	}
	return translate(err, tenantNotFound(tenant))
}
