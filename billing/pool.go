package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// The free-tier generosity pool (issue 11), for code without Postgres:
// each call is one PoolOperation workflow (pool-op/<random id>) that the
// worker runs as one activity. Refusals are *ValidationError naming the
// field (a payer that is no tenant, an amount not positive, an unknown
// tier, no pool configured); a failure to reach billflow is
// *UnavailableError.
type (
	// PoolStatus is the pool at a glance.
	PoolStatus = contract.PoolStatusView
	// PoolCredit is a credit put into the pool.
	PoolCredit = contract.PoolCreditView
	// PoolGrant is one row of the grant audit.
	PoolGrant = contract.PoolGrantView
	// PoolVerdict is a dry-run decision (free, partial or gate).
	PoolVerdict = contract.PoolVerdictView
	// PayerTier is a payer's trust tier and daily budget.
	PayerTier = contract.PayerTierView
)

// PoolGrantFilter selects grants (zero fields: all; Limit 0: 100).
type PoolGrantFilter struct {
	Payer   string
	Outcome string
	Limit   int
}

// Pool returns the pool's balance, floor, share and today's activity.
func (c *Client) Pool(ctx context.Context) (PoolStatus, error) {
	a, err := c.poolOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpShow})
	if err != nil || a.Status == nil {
		return PoolStatus{}, err
	}
	return *a.Status, nil
}

// CreditPool tops the pool up by amount, once per key.
func (c *Client) CreditPool(ctx context.Context, key string, amount int64, note string) (PoolCredit, error) {
	a, err := c.poolOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpCredit, Key: key, Amount: amount, Note: note})
	if err != nil || a.Credit == nil {
		return PoolCredit{}, err
	}
	return *a.Credit, nil
}

// PoolGrants lists the grant audit, newest first.
func (c *Client) PoolGrants(ctx context.Context, f PoolGrantFilter) ([]PoolGrant, error) {
	req := contract.PoolOpRequest{Op: contract.PoolOpGrants, Outcome: f.Outcome, Limit: f.Limit}
	if f.Payer != "" {
		id, err := models.ParseTenantID(f.Payer)
		if err != nil {
			return nil, err
		}
		req.Payer = id
	}
	a, err := c.poolOp(ctx, req)
	return a.Grants, err
}

// DecidePool answers what the pool would decide now for the payer's cost
// of amount; nothing is reserved.
func (c *Client) DecidePool(ctx context.Context, payer string, amount int64) (PoolVerdict, error) {
	id, err := models.ParseTenantID(payer)
	if err != nil {
		return PoolVerdict{}, err
	}
	a, err := c.poolOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpDecide, Payer: id, Amount: amount})
	if err != nil || a.Verdict == nil {
		return PoolVerdict{}, err
	}
	return *a.Verdict, nil
}

// PayerTier returns the payer's tier (derived or pinned) and daily budget.
func (c *Client) PayerTier(ctx context.Context, payer string) (PayerTier, error) {
	return c.tierOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpTier}, payer)
}

// PinTier pins the payer's tier (new, established, trusted or elite).
func (c *Client) PinTier(ctx context.Context, payer, tier, reason string) (PayerTier, error) {
	return c.tierOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpPin, Tier: tier, Reason: reason}, payer)
}

// UnpinTier removes the payer's pin: its tier is derived again.
func (c *Client) UnpinTier(ctx context.Context, payer string) (PayerTier, error) {
	return c.tierOp(ctx, contract.PoolOpRequest{Op: contract.PoolOpUnpin}, payer)
}

func (c *Client) tierOp(ctx context.Context, req contract.PoolOpRequest, payer string) (PayerTier, error) {
	id, err := models.ParseTenantID(payer)
	if err != nil {
		return PayerTier{}, err
	}
	req.Payer = id
	a, err := c.poolOp(ctx, req)
	if err != nil || a.Tier == nil {
		return PayerTier{}, err
	}
	return *a.Tier, nil
}

// poolOp runs one PoolOperation workflow and waits for its answer.
func (c *Client) poolOp(ctx context.Context, req contract.PoolOpRequest) (contract.PoolOpAnswer, error) {
	var out contract.PoolOpAnswer
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return out, err
	}
	run, err := c.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.PoolOperationWorkflowID(req.Op + "-" + hex.EncodeToString(b)), TaskQueue: c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("Free-tier pool: %s", req.Op),
	}, contract.WorkflowPoolOperation, req)
	if err != nil {
		return out, &UnavailableError{Err: err}
	}
	if err := run.Get(ctx, &out); err != nil {
		return out, &UnavailableError{Err: err}
	}
	if e := out.Error; e != nil {
		return contract.PoolOpAnswer{}, &ValidationError{Field: e.Field, Reason: e.Reason}
	}
	return out, nil
}
