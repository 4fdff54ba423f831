package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// WorkflowWithdrawalPayout is the type name of a withdrawal's payout workflow.
const WorkflowWithdrawalPayout = "WithdrawalPayout"

// UpdateWithdrawal answers a withdrawal request's outcome: recorded (with
// the wallet after it) or refused with a typed error. Sent with the start
// (update-with-start), so the caller learns at once whether the request
// was taken, while the payout goes on in the workflow.
const UpdateWithdrawal = "withdrawal"

// PayoutWorkflowID is the ID of a withdrawal's payout workflow: one per
// tenant and request key, which is what makes a retried request one payout.
func PayoutWorkflowID(tenant models.TenantID, key string) string {
	return "payout/" + string(tenant) + "/" + key
}

// Withdrawal methods and statuses, as store.Withdrawal has them.
const (
	WithdrawLightning   = "lightning"
	WithdrawManual      = "manual"
	WithdrawalRequested = "requested"
	WithdrawalPaidOut   = "paid_out"
	WithdrawalFailed    = "failed"
	// WithdrawalRefused: the request was not recorded (bad input, not enough).
	WithdrawalRefused = "refused"
)

// WithdrawalRequest asks to pay unspent deposits back to the tenant.
type WithdrawalRequest struct {
	TenantID models.TenantID `json:"tenant_id"`
	// Key is the request id (1-120 characters): the same request again
	// changes nothing; other content under the key is refused.
	Key    string `json:"key"`
	Amount int64  `json:"amount"`
	// Currency, when set, must be the wallet's.
	Currency models.Currency `json:"currency,omitempty"`
	// BOLT11 makes it a Lightning payout: the engine's node pays this
	// invoice, which must be for the engine's network, ask exactly the
	// amount's value in millisatoshis at the engine's rate, and not expire
	// within the next minute. Without it the payout is manual.
	BOLT11 string `json:"bolt11,omitempty"`
	// Reference, for a manual payout, records it as paid out already under
	// the operator's reference.
	Reference string `json:"reference,omitempty"`
}

// Withdrawal is a withdrawal and where its payout is.
type Withdrawal struct {
	TenantID    models.TenantID `json:"tenant_id"`
	Key         string          `json:"key"`
	Amount      int64           `json:"amount"`
	Currency    models.Currency `json:"currency"`
	Method      string          `json:"method"`
	PaymentHash string          `json:"payment_hash,omitempty"`
	AmountMsat  int64           `json:"amount_msat,omitempty"`
	// Status is requested, paid_out or failed (the amount went back).
	Status string `json:"status"`
	// Reference is the payment's preimage or the operator's reference.
	Reference   string     `json:"reference,omitempty"`
	FeeMsat     int64      `json:"fee_msat,omitempty"`
	Failure     string     `json:"failure,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// WithdrawalResult is a withdrawal with the wallet just after it.
type WithdrawalResult struct {
	Withdrawal   Withdrawal `json:"withdrawal"`
	Spendable    int64      `json:"spendable"`
	Withdrawable int64      `json:"withdrawable"`
	// Duplicate: the request (or outcome) was recorded before; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// PayoutInput starts a withdrawal's payout workflow: the request to record,
// or (Resume) only the tenant and key of a request recorded already, whose
// payout a lifetime balance sync found unfinished.
type PayoutInput struct {
	Request WithdrawalRequest `json:"request"`
	Resume  bool              `json:"resume,omitempty"`
}
