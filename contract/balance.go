package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// WorkflowBalanceSync is the type name of a tenant's BalanceSync workflow.
const WorkflowBalanceSync = "BalanceSync"

// Signal, query and update names of a tenant's BalanceSync workflow.
const (
	// SignalBalanceEvent starts (signal-with-start) or feeds the balance
	// sync: something moved money, so sync at the fast interval for a while.
	SignalBalanceEvent = "balance-event"
	// QueryBalance answers the last synced balance from the workflow's
	// memory, without touching Postgres.
	QueryBalance = "balance"
	// UpdateSyncBalance syncs now and answers the fresh balance.
	UpdateSyncBalance = "sync-balance"
)

// Balance sync defaults.
const (
	// DefaultBalanceSlowInterval is the lifetime sync's interval.
	DefaultBalanceSlowInterval = time.Hour
	// DefaultBalanceFastInterval is the aggressive sync's interval.
	DefaultBalanceFastInterval = 5 * time.Second
	// DefaultBalanceFastTimeout is how long an aggressive window lasts
	// after its last event.
	DefaultBalanceFastTimeout = 2 * time.Minute
	// DefaultBalanceMaxAge is how old a queried balance may be before a
	// read syncs first (the update) instead of answering from the query.
	DefaultBalanceMaxAge = time.Minute
)

// BalanceWorkflowID is the ID of a tenant's BalanceSync workflow; being one
// ID per tenant is what de-duplicates sync loops.
func BalanceWorkflowID(id models.TenantID) string { return "balance/" + string(id) }

// Balance event kinds: what made the wallet worth syncing fast.
const (
	BalanceTopUpRequested      = "top_up_requested"
	BalanceTopUpPaid           = "top_up_paid"
	BalanceSettled             = "settled"
	BalanceWithdrawalRequested = "withdrawal_requested"
	// BalanceWithdrawalFinished: a payout ended (a failed one gave the amount back).
	BalanceWithdrawalFinished = "withdrawal_finished"
)

// BalanceEvent is the balance-event signal's payload.
type BalanceEvent struct {
	// Kind is one of the Balance* event kinds.
	Kind string `json:"kind"`
	// Reference names what happened (an invoice id, a settlement id).
	Reference string `json:"reference,omitempty"`
}

// BalanceSyncInput is what a client starts a BalanceSync workflow with. The
// workflow's own input (workflows.BalanceSyncInput) is a superset; this
// decodes into it unchanged. Zero durations take the defaults.
type BalanceSyncInput struct {
	TenantID     models.TenantID `json:"tenant_id"`
	SlowInterval time.Duration   `json:"slow_interval,omitempty"`
	FastInterval time.Duration   `json:"fast_interval,omitempty"`
	FastTimeout  time.Duration   `json:"fast_timeout,omitempty"`
}

// OpenTopUp is a top-up invoice still waiting for its money.
type OpenTopUp struct {
	InvoiceID string          `json:"invoice_id"`
	Amount    int64           `json:"amount"`
	Currency  models.Currency `json:"currency"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
}

// BalanceView is a wallet's balance as the BalanceSync workflow last synced
// it from the ledger of record. SyncedAt says how old it is: a reader that
// needs something fresher asks for the sync-balance update.
type BalanceView struct {
	TenantID  models.TenantID `json:"tenant_id"`
	Currency  models.Currency `json:"currency,omitempty"`
	Funds     int64           `json:"funds"`
	Promised  int64           `json:"promised"`
	Settled   int64           `json:"settled"`
	Unsettled int64           `json:"unsettled"`
	// Spendable = funds - unsettled, never below zero.
	Spendable    int64 `json:"spendable"`
	Withdrawable int64 `json:"withdrawable"`
	// Violation names a broken wallet rule, if any (reported, not hidden).
	Violation  string      `json:"violation,omitempty"`
	OpenTopUps []OpenTopUp `json:"open_top_ups,omitempty"`
	// OpenPayouts are withdrawals requested and not paid out yet.
	OpenPayouts []Withdrawal `json:"open_payouts,omitempty"`
	// SyncedAt is when the balance was read; zero before the first sync.
	SyncedAt time.Time `json:"synced_at"`
	// FastUntil is when the running aggressive window ends, if one runs.
	FastUntil *time.Time `json:"fast_until,omitempty"`
	// LastError is the last sync failure, kept until a sync succeeds.
	LastError string `json:"last_error,omitempty"`
}

// Stale reports whether the view is older than maxAge at now (never synced
// counts as stale).
func (v BalanceView) Stale(now time.Time, maxAge time.Duration) bool {
	return v.SyncedAt.IsZero() || now.Sub(v.SyncedAt) > maxAge
}
