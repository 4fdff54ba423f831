package activities

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/store"
)

// WatchSettlementsInput names the stream's cursor.
type WatchSettlementsInput struct {
	// Cursor is the settlement_cursors row the stream resumes from.
	Cursor string `json:"cursor"`
	// HeartbeatEvery is how often the activity reports liveness (default 10s).
	HeartbeatEvery time.Duration `json:"heartbeat_every,omitempty"`
}

// WatchSettlementsResult is never returned in normal operation: the stream
// runs until its context ends or the node drops it.
type WatchSettlementsResult struct {
	SettleIndex uint64 `json:"settle_index"`
}

// WatchSettlements follows the engine's Lightning node's settled invoices
// from the stored settle index. For each invoice billflow issued it signals
// the invoice's workflow (or, when that has finished, records the payment in
// the store directly, where a second payment becomes an overpayment) and
// then advances the cursor, so a restart replays at most the last one.
func (a *Activities) WatchSettlements(ctx context.Context, in WatchSettlementsInput) (WatchSettlementsResult, error) {
	if a.Rails.Node == nil {
		return WatchSettlementsResult{}, temporal.NewNonRetryableApplicationError("no Lightning node configured", ErrValidation, nil)
	}
	if in.Cursor == "" {
		in.Cursor = "lnd"
	}
	every := in.HeartbeatEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	from, err := a.Store.SettleCursor(ctx, in.Cursor)
	if err != nil {
		return WatchSettlementsResult{}, err
	}
	var last atomic.Uint64
	last.Store(from)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			activity.RecordHeartbeat(ctx, last.Load())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	log := activity.GetLogger(ctx)
	log.Info("following lightning settlements", "after_settle_index", from)
	err = a.Rails.Node.SubscribeSettled(ctx, from, func(inv lightning.Invoice) error {
		if err := a.handleSettlement(ctx, inv); err != nil {
			return err
		}
		if err := a.Store.AdvanceSettleCursor(ctx, in.Cursor, inv.SettleIndex); err != nil {
			return err
		}
		last.Store(inv.SettleIndex)
		return nil
	})
	cancel()
	<-done
	if err == nil || errors.Is(err, lightning.ErrSubscriptionClosed) {
		err = errors.New("lightning settlement stream ended; resubscribing")
	}
	return WatchSettlementsResult{SettleIndex: last.Load()}, err
}

func (a *Activities) handleSettlement(ctx context.Context, inv lightning.Invoice) error {
	b, err := a.Store.Bolt11ByHash(ctx, inv.PaymentHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil // not an invoice billflow issued
	}
	if err != nil {
		return err
	}
	report := PaymentReport{Rail: store.RailLightning, Reference: b.PaymentHash, AmountMsat: inv.AmtPaidMsat}
	activity.GetLogger(ctx).Info("lightning invoice settled", "invoice", b.InvoiceID, "settle_index", inv.SettleIndex)
	if paid, _, err := a.Store.GetInvoice(ctx, b.InvoiceID); err == nil && paid.Status == store.InvoicePaid && strings.EqualFold(paid.PaidReference, b.PaymentHash) {
		// This very payment paid the invoice and is recorded (the NWC rail
		// settled it): a report would carry nothing new to a workflow that
		// already knows, or start a run only to find a duplicate.
		return nil
	}
	if a.Notify != nil {
		err = a.Notify.ReportPayment(ctx, b.InvoiceID, report)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrWorkflowGone) {
			return err
		}
	}
	at := inv.SettledAt
	if at.IsZero() {
		at = a.now()
	}
	_, err = a.Settle(ctx, SettleInput{InvoiceID: b.InvoiceID, Payment: report, PaidAt: at})
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		// A permanently unrecordable settlement must not stall the stream.
		activity.GetLogger(ctx).Error("lightning settlement not recorded", "invoice", b.InvoiceID, "error", err)
		return nil
	}
	return err
}
