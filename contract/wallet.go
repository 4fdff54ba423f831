package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// Updates of a tenant's BalanceSync workflow that write to (or read) its
// wallet through the worker, for clients without Postgres (package
// billing). Sent by update-with-start of balance/<tenant>; each answers the
// outcome and opens an aggressive sync window.
const (
	UpdateWalletGrant        = "wallet-grant"
	UpdateWalletTopUp        = "wallet-top-up"
	UpdateWalletAutoRecharge = "wallet-auto-recharge"
	UpdateWalletLedger       = "wallet-ledger"
)

// GrantRequest gives the tenant credit under Key (a retry with the same key
// and content changes nothing), expiring at ExpiresAt (nil: never).
type GrantRequest struct {
	Key       string          `json:"key"`
	Amount    int64           `json:"amount"`
	Currency  models.Currency `json:"currency,omitempty"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

// TopUpRequest makes a top-up invoice of Amount (Key: a retry returns the
// same invoice) and starts its collection (invoice/<id>).
type TopUpRequest struct {
	Key      string          `json:"key"`
	Amount   int64           `json:"amount"`
	Currency models.Currency `json:"currency,omitempty"`
}

// TopUpResult is the top-up invoice whose collection started.
type TopUpResult struct {
	InvoiceID string          `json:"invoice_id"`
	Amount    int64           `json:"amount"`
	Currency  models.Currency `json:"currency"`
	Status    string          `json:"status"`
}

// AutoRecharge is a wallet's auto-recharge setting: below Threshold, top up
// Amount. Both nil: off.
type AutoRecharge struct {
	Threshold *int64 `json:"threshold"`
	Amount    *int64 `json:"amount"`
}

// LedgerRequest asks for up to Limit entries (1-500; 0: 50) older than the
// entry Before (0: from the newest).
type LedgerRequest struct {
	Before int64 `json:"before,omitempty"`
	Limit  int   `json:"limit,omitempty"`
}

// LedgerEntry is one wallet ledger entry.
type LedgerEntry struct {
	Seq        int64           `json:"seq"`
	Kind       string          `json:"kind"`
	Key        string          `json:"key"`
	Amount     int64           `json:"amount"`
	Currency   models.Currency `json:"currency"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
	FromGrants int64           `json:"from_grants,omitempty"`
	InvoiceID  string          `json:"invoice_id,omitempty"`
	At         time.Time       `json:"at"`
}

// LedgerPage is a page of the ledger, newest first; Next is the Before of
// the following page (0 on the last).
type LedgerPage struct {
	Entries []LedgerEntry `json:"entries"`
	Next    int64         `json:"next,omitempty"`
}

// WalletWriteResult is a grant's outcome with the wallet after it.
type WalletWriteResult struct {
	Entry        LedgerEntry `json:"entry"`
	Spendable    int64       `json:"spendable"`
	Withdrawable int64       `json:"withdrawable"`
	// Duplicate: the key was written before; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}
