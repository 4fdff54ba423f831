package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// PoolOperation runs one free-tier pool operation (ID pool-op/<request
// id>): show, credit, grants, decide (a dry run), tier, pin or unpin, as
// one activity. It is how package billing, which speaks only Temporal,
// reaches the pool. A refusal (bad input, an unknown payer, no pool) is
// the answer's Error, never a failed workflow.
func PoolOperation(ctx workflow.Context, req contract.PoolOpRequest) (contract.PoolOpAnswer, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second, ScheduleToCloseTimeout: time.Minute,
		Summary: fmt.Sprintf("free-tier pool: %s", req.Op),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: nonRetryable},
	})
	var out contract.PoolOpAnswer
	err := workflow.ExecuteActivity(actx, a.PoolOperation, req).Get(ctx, &out)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.Type() == activities.ErrValidation || appErr.Type() == activities.ErrNotFound) {
		refusal := &contract.PoolOpError{Reason: appErr.Message()}
		var ve models.ValidationError
		if appErr.Details(&ve) == nil && ve.Field != "" {
			refusal.Field, refusal.Reason = ve.Field, ve.Reason
		}
		return contract.PoolOpAnswer{Error: refusal}, nil
	}
	return out, err
}
