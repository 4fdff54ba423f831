// Package lightning is the engine's own Lightning node: invoices created and
// watched over LND's gRPC API (lnrpc), BOLT11 validation with zpay32, and a
// rate source converting fiat minor units to millisatoshis.
package lightning

import (
	"context"
	"time"
)

// Invoice is a BOLT11 invoice on the engine's node. Amounts are millisatoshis.
type Invoice struct {
	// PaymentHash is the hex-encoded payment hash: the invoice's identity.
	PaymentHash string `json:"payment_hash"`
	// PaymentRequest is the BOLT11 string.
	PaymentRequest string    `json:"payment_request"`
	AmountMsat     int64     `json:"amount_msat"`
	Memo           string    `json:"memo"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	// Settled invoices carry what was paid and their settle index.
	Settled     bool      `json:"settled"`
	AmtPaidMsat int64     `json:"amt_paid_msat"`
	SettledAt   time.Time `json:"settled_at,omitzero"`
	SettleIndex uint64    `json:"settle_index"`
	// AddIndex orders invoice creation on the node.
	AddIndex uint64 `json:"add_index"`
}

// CreateInvoiceRequest asks the node for a new invoice.
type CreateInvoiceRequest struct {
	AmountMsat int64
	Memo       string
	Expiry     time.Duration
}

// Node is what billflow needs from its Lightning node. Implementations bound
// every call by the context's deadline.
type Node interface {
	// CreateInvoice adds an invoice and returns it with its BOLT11 string.
	CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (Invoice, error)
	// LookupInvoice finds an invoice by hex payment hash; ErrInvoiceNotFound
	// when the node does not know it.
	LookupInvoice(ctx context.Context, paymentHash string) (Invoice, error)
	// SubscribeSettled streams invoices settled after settle index
	// `afterSettleIndex` (0: all), calling fn for each in settle-index order,
	// until ctx ends or fn returns an error. Delivery is at least once: the
	// caller de-duplicates by payment hash and persists the last index.
	SubscribeSettled(ctx context.Context, afterSettleIndex uint64, fn func(Invoice) error) error
}
