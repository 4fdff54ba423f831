package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// WorkflowUsageSession is the type name of a metered usage session.
const WorkflowUsageSession = "UsageSession"

// UsageSessionWorkflowID is the ID of a usage session's workflow.
func UsageSessionWorkflowID(sessionID string) string { return "usage/" + sessionID }

// Updates, signals and the query of a UsageSession workflow.
const (
	// UpdateUsageStart starts the session (update-with-start): it answers
	// the mode the session started in, or a UsageError.
	UpdateUsageStart = "usage-start"
	// UpdateUsageSign delivers the payer's signature over the receipt the
	// session waits for; a bad one is rejected by the validator (a
	// UsageError) and the session keeps waiting.
	UpdateUsageSign = "usage-sign"
	// UpdateUsageEnd ends the session: final usage valued, unused covered
	// units saved as remain service, statistics written.
	UpdateUsageEnd = "usage-end"
	// SignalUsageReport reports usage since the last report (idempotent by
	// report id).
	SignalUsageReport = "usage-report"
	// SignalUsageFunds tells the session the payer's wallet gained funds (a
	// top-up was paid), so a session in grace tries again.
	SignalUsageFunds = "usage-funds"
	// QueryUsage answers the session's state.
	QueryUsage = "usage"
)

// Usage session states and sub-states (the seed's machine).
const (
	UsageIdle       = "IDLE"
	UsageGrace      = "GRACE"
	UsageNormal     = "NORMAL"
	UsageFree       = "FREE"
	UsageErrorState = "ERROR"
	// UsageEnded: the session has ended (after End, or an error outside NORMAL).
	UsageEnded = "ENDED"

	SubWaitingFirstReceiptSign          = "WAITING_FIRST_RECEIPT_SIGN"
	SubWaitingNextReceiptSign           = "WAITING_NEXT_RECEIPT_SIGN"
	SubWaitingTxForPaying               = "WAITING_TX_FOR_PAYING"
	SubWaitingNewTxFromClient           = "WAITING_NEW_TX_FROM_CLIENT"
	SubWaitingNewTxInLedger             = "WAITING_NEW_TX_IN_LEDGER"
	SubWaitingReceiptForNewTxFromClient = "WAITING_RECEIPT_FOR_NEW_TX_FROM_CLIENT"
	SubNormal                           = "NORMAL"
	SubError                            = "ERROR"
)

// Usage session defaults.
const (
	// DefaultSignTimeout is how long a sign request waits before a re-send.
	DefaultSignTimeout = 10 * time.Second
	// DefaultSignAttempts is how many times a receipt is sent before
	// RECEIPT_NO_SIGN.
	DefaultSignAttempts = 3
	// UsageBanFactor: a grace that ends unpaid bans the payer from grace
	// for this many grace periods.
	UsageBanFactor = 50
)

// ErrUsage is the Temporal error type of a usage refusal; its details are
// a UsageError.
const ErrUsage = "UsageError"

// UsageError is a usage session's typed refusal or failure.
type UsageError struct {
	Code    models.UsageErrorCode `json:"code"`
	Message string                `json:"message"`
}

// Error implements error.
func (e *UsageError) Error() string { return string(e.Code) + ": " + e.Message }

// UsageStartRequest starts a session for Payer (a tenant's Nostr key) on a
// catalog service; MaxUnitPrice is the highest price per the service's
// Units the client accepts (a higher catalog price is UNIT_PRICE_TOO_HIGH).
type UsageStartRequest struct {
	SessionID    string          `json:"session_id"`
	ServiceID    string          `json:"service_id"`
	Payer        models.TenantID `json:"payer"`
	MaxUnitPrice int64           `json:"max_unit_price"`
	// NotifyDM: also send sign requests to the payer as NIP-17 DMs.
	NotifyDM bool `json:"notify_dm,omitempty"`
}

// UsageStartResult is the mode the session started in.
type UsageStartResult struct {
	State    string `json:"state"`
	SubState string `json:"sub_state"`
	// Receipt is the first receipt to sign, if the session waits for one.
	Receipt *SignRequest `json:"receipt,omitempty"`
	// RemainUnits are prepaid units from an earlier session used first.
	RemainUnits int64 `json:"remain_units,omitempty"`
}

// Receipt is a version-2 usage receipt: what the payer co-signs and its
// wallet pays by a promise keyed by the receipt's id.
type Receipt struct {
	Version   int                `json:"version"`
	SessionID string             `json:"session_id"`
	ServiceID string             `json:"service_id"`
	Payer     models.TenantID    `json:"payer"`
	Provider  string             `json:"provider"`
	Unit      models.ServiceUnit `json:"unit"`
	Units     int64              `json:"units"`
	UnitPrice int64              `json:"unit_price"`
	// PriceUnits is how many units UnitPrice is for.
	PriceUnits int64           `json:"price_units"`
	Value      int64           `json:"value"`
	Currency   models.Currency `json:"currency"`
	Seq        int64           `json:"seq"`
	// Prev is the previous receipt's id ("" for the first).
	Prev string `json:"prev,omitempty"`
}

// NostrEvent is a signed Nostr event (NIP-01), as JSON carries it.
type NostrEvent struct {
	ID        string     `json:"id"`
	PubKey    string     `json:"pubkey"`
	CreatedAt int64      `json:"created_at"`
	Kind      int        `json:"kind"`
	Tags      [][]string `json:"tags"`
	Content   string     `json:"content"`
	Sig       string     `json:"sig"`
}

// SignRequest is a receipt the engine signed, for the payer to co-sign:
// the outbound event usage.sign_request carries it.
type SignRequest struct {
	ReceiptID string  `json:"receipt_id"`
	Receipt   Receipt `json:"receipt"`
	// Event is the engine's signed Nostr event over the receipt.
	Event NostrEvent `json:"event"`
	// Attempt counts the sends of this receipt (1 for the first).
	Attempt int `json:"attempt"`
}

// UsageSignRequest is the payer's signed Nostr event over a receipt.
type UsageSignRequest struct {
	Event NostrEvent `json:"event"`
}

// UsageReport is usage since the previous report, idempotent by ID.
type UsageReport struct {
	ID            string `json:"id"`
	Seconds       int64  `json:"seconds"`
	BytesReceived int64  `json:"bytes_received"`
	BytesSent     int64  `json:"bytes_sent"`
}

// UsageView is a session's state as its workflow holds it.
type UsageView struct {
	SessionID string          `json:"session_id"`
	ServiceID string          `json:"service_id"`
	Payer     models.TenantID `json:"payer"`
	State     string          `json:"state"`
	SubState  string          `json:"sub_state"`
	// ReceiptsSigned and PaidUnits: receipts signed and paid, and the
	// units they cover (with remain units used).
	ReceiptsSigned int64 `json:"receipts_signed"`
	PaidUnits      int64 `json:"paid_units"`
	// UsedUnits, Seconds and bytes are what the application reported.
	UsedUnits     int64 `json:"used_units"`
	Seconds       int64 `json:"seconds"`
	BytesReceived int64 `json:"bytes_received"`
	BytesSent     int64 `json:"bytes_sent"`
	// Value is the value of the units used, in minor units.
	Value    int64           `json:"value"`
	Currency models.Currency `json:"currency,omitempty"`
	// FundsLeft is the payer's spendable as the session last read it.
	FundsLeft int64 `json:"funds_left"`
	// Promised is the total of the receipts paid (settled at the end).
	Promised int64 `json:"promised"`
	// Waiting is the receipt waiting for the payer's signature, if any.
	Waiting   *SignRequest          `json:"waiting,omitempty"`
	LastError models.UsageErrorCode `json:"last_error,omitempty"`
	// Pool is the free-tier pool's part in the session (nil until the pool
	// paid a receipt of it); Promised counts only the payer's wallet part.
	Pool      *UsagePoolView `json:"pool,omitempty"`
	StartedAt time.Time      `json:"started_at"`
	EndedAt   *time.Time     `json:"ended_at,omitempty"`
}

// UsageSessionInput is a UsageSession workflow's input (the workflow half
// of update-with-start; the usage-start update carries the request). Zero
// fields take the defaults.
type UsageSessionInput struct {
	// SessionID defaults to the workflow ID without its "usage/" prefix.
	SessionID    string        `json:"session_id,omitempty"`
	SignTimeout  time.Duration `json:"sign_timeout,omitempty"`
	SignAttempts int           `json:"sign_attempts,omitempty"`
	// ContinueEvery: the run continues as new after this many paid
	// receipts (DefaultUsageContinueEvery).
	ContinueEvery int `json:"continue_every,omitempty"`
	// IdleTimeout ends a session that got no report, signature or funds
	// for that long (DefaultUsageIdleTimeout).
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	// Carry is the state a continued-as-new run resumes from; nil at start.
	Carry *UsageCarry `json:"carry,omitempty"`
}

// DefaultUsageContinueEvery is how many paid receipts one run of a usage
// session holds before it continues as new.
const DefaultUsageContinueEvery = 100

// DefaultUsageIdleTimeout ends a session nothing happened in for that long.
const DefaultUsageIdleTimeout = 15 * time.Minute

// UsageFundsSignal is the usage-funds signal's payload (it may be empty).
type UsageFundsSignal struct {
	// Reference names what brought the funds (a top-up invoice).
	Reference string `json:"reference,omitempty"`
}

// UsageModeStats is usage of one mode (paid, free, grace) not yet written
// to the statistics.
type UsageModeStats struct {
	Mode          string `json:"mode"`
	Seconds       int64  `json:"seconds,omitempty"`
	BytesReceived int64  `json:"bytes_received,omitempty"`
	BytesSent     int64  `json:"bytes_sent,omitempty"`
	Units         int64  `json:"units,omitempty"`
	Value         int64  `json:"value,omitempty"`
	Sessions      int64  `json:"sessions,omitempty"`
}

// UsageCarry is what a usage session carries across continue-as-new
// (taken only in NORMAL with no receipt waiting and no grace running).
type UsageCarry struct {
	Request UsageStartRequest `json:"request"`
	Started UsageStartResult  `json:"started"`
	Service models.Service    `json:"service"`
	View    UsageView         `json:"view"`
	// Last is the last paid receipt; ReceiptUnits the units receipts covered.
	Last         *SignRequest     `json:"last,omitempty"`
	ReceiptUnits int64            `json:"receipt_units"`
	Promised     int64            `json:"promised"`
	Sends        int64            `json:"sends"`
	Unflushed    []UsageModeStats `json:"unflushed,omitempty"`
	// Reports are the ids of the latest usage reports (duplicates ignored).
	Reports []string `json:"reports,omitempty"`
	Graced  bool     `json:"graced,omitempty"`
	// LastActive is the last report, signature or funds (the idle timeout
	// counts from it).
	LastActive time.Time `json:"last_active,omitempty"`
	// PoolGrants are the receipts the free-tier pool paid whose units are
	// not all used yet; PoolRelease the receipts whose payment failed after
	// the pool may have reserved for them (released when the session ends).
	PoolGrants  []UsagePoolGrant `json:"pool_grants,omitempty"`
	PoolRelease []string         `json:"pool_release,omitempty"`
}
