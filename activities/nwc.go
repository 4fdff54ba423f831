package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// PayByNWC pays the invoice from the tenant's wallet over NWC: it makes sure
// a payable BOLT11 exists on the engine's node, asks the wallet to pay it and
// verifies the preimage. An error or an unknown outcome is settled by asking
// the node first: if the invoice was paid anyway it is paid ("oob"). The NWC
// connection is opened here and nowhere else; nothing secret leaves. Asked
// to (in.Settle), it records the payment it took too.
func (a *Activities) PayByNWC(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	defer heartbeat(ctx)()
	res, err := a.payByNWC(ctx, in)
	return a.settleRail(ctx, in, res, err)
}

func (a *Activities) payByNWC(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	inv, methods, done, res, err := a.railTurn(ctx, in)
	if done || err != nil {
		return res, err
	}
	if susp, err := a.suspended(ctx, inv.TenantID); err != nil {
		return RailAttemptResult{}, err
	} else if susp {
		return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeSkipped, Summary: SuspendedSummary})
	}
	switch {
	case !methods.HasNWC():
		return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no NWC wallet connected"})
	case a.Rails.Node == nil || a.Rails.Rates == nil || a.Rails.Vault == nil:
		return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "the Lightning rail is not configured"})
	}
	b, err := a.ensureBolt11(ctx, inv)
	if err != nil {
		var fail *railFailure
		if errors.As(err, &fail) {
			return a.nwcFailed(ctx, in, inv.TenantID, fail.summary)
		}
		var found *paidBeforeSuperseded
		if errors.As(err, &found) {
			return a.record(ctx, in, "nwc", found.res)
		}
		return RailAttemptResult{}, err
	}
	// A retried attempt (the worker died after paying) finds the money here
	// instead of paying again.
	if res, ok, err := a.settledOnNode(ctx, b, false); err != nil {
		return RailAttemptResult{}, err
	} else if ok {
		if res.Payment.Rail == store.RailNWC {
			_ = a.Store.SetNWCError(ctx, inv.TenantID, "", a.now())
		}
		return a.record(ctx, in, "nwc", res)
	}
	conn, err := a.Rails.Vault.NWC(ctx, inv.TenantID)
	if errors.Is(err, vault.ErrNoNWC) {
		return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no NWC wallet connected"})
	}
	if err != nil {
		// A connection that cannot be opened (wrong key, corrupted) will not
		// open on retry: a failure of this rail, not of the activity.
		activity.GetLogger(ctx).Error("cannot open the tenant's NWC connection", "tenant", inv.TenantID, "error", err)
		return a.nwcFailed(ctx, in, inv.TenantID, "the stored NWC connection cannot be opened; reconnect the wallet")
	}
	newClient := a.Rails.NewNWC
	if newClient == nil {
		newClient = func(c nwc.Connection) (NWCPayer, error) { return nwc.NewClient(c) }
	}
	client, err := newClient(conn)
	if err != nil {
		return a.nwcFailed(ctx, in, inv.TenantID, "NWC connection rejected: "+err.Error())
	}
	defer func() { _ = client.Close() }()
	if err := a.Store.MarkNWCRequested(ctx, b.PaymentHash, a.now()); err != nil {
		return RailAttemptResult{}, err
	}
	timeout := a.Rails.NWCTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	payCtx, cancel := context.WithTimeout(ctx, timeout)
	paid, payErr := client.PayInvoice(payCtx, nwc.PayInvoiceRequest{Invoice: b.PaymentRequest})
	cancel()
	if payErr == nil && preimageMatches(paid.Preimage, b.PaymentHash) {
		if err := a.Store.SetNWCError(ctx, inv.TenantID, "", a.now()); err != nil {
			return RailAttemptResult{}, err
		}
		return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomePaid, Summary: "paid from the tenant's wallet",
			Payment: &PaymentReport{Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: b.AmountMsat}})
	}
	if payErr == nil {
		payErr = errors.New("the wallet's preimage does not match the payment hash")
	}
	// Unknown is not failed: ask the node before anything else.
	if res, ok, err := a.settledOnNode(ctx, b, true); err != nil {
		return RailAttemptResult{}, fmt.Errorf("NWC payment outcome unknown (%v) and the node cannot be asked: %w", payErr, err)
	} else if ok {
		return a.record(ctx, in, "nwc", res)
	}
	res, err = a.nwcFailed(ctx, in, inv.TenantID, "NWC: "+payErr.Error())
	// Only a wallet's own refusal says the money did not move; a timeout or
	// a lost answer leaves the payment possibly in flight.
	res.PaymentUnknown = err == nil && !walletRefused(payErr)
	return res, err
}

// walletRefused reports whether the wallet answered the pay request with
// an error that means it did not pay (not INTERNAL or OTHER, which may
// hide a payment in flight).
func walletRefused(err error) bool {
	var we *nwc.WalletError
	if !errors.As(err, &we) {
		return false
	}
	return we.Local || (we.Code != nwc.CodeInternal && we.Code != nwc.CodeOther)
}

// ResolveNWCResult is how the invoice's NWC payments ended on the node.
type ResolveNWCResult struct {
	// Payment is the payment found, or nil when none of them was paid.
	Payment *PaymentReport `json:"payment,omitempty"`
	// Checked counts the BOLT11s asked about.
	Checked int `json:"checked"`
}

// ResolveNWC settles the question the card must not charge over: did a
// wallet asked over NWC pay after all? For every unsettled BOLT11 a wallet
// was asked to pay it asks the engine's node: settled is the payment; expired
// (or unknown to the node) is unpaid. One still payable is unresolved: the
// activity fails with a retryable error, so Temporal asks again (with
// back-off, for as long as it takes) while the cascade waits.
func (a *Activities) ResolveNWC(ctx context.Context, in InvoiceInput) (ResolveNWCResult, error) {
	var out ResolveNWCResult
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return out, classify(err)
	}
	if res, ok := alreadyPaid(inv); ok {
		out.Payment = res.Payment
		return out, nil
	}
	if a.Rails.Node == nil {
		return out, nil // no node, no BOLT11: no NWC payment can have been made
	}
	bolts, err := a.Store.Bolt11s(ctx, inv.ID)
	if err != nil {
		return out, err
	}
	now := a.now()
	for _, b := range bolts {
		if b.NWCRequestedAt == nil || b.SettledAt != nil {
			continue
		}
		out.Checked++
		li, err := a.Rails.Node.LookupInvoice(ctx, b.PaymentHash)
		if errors.Is(err, lightning.ErrInvoiceNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("NWC payment outcome unknown and the node cannot be asked: %w", err)
		}
		if li.Settled {
			out.Payment = &PaymentReport{Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: li.AmtPaidMsat}
			return out, nil
		}
		expires := li.ExpiresAt
		if expires.IsZero() {
			expires = b.ExpiresAt
		}
		if now.Before(expires) {
			if paid, err := a.askAgain(ctx, inv, b, now); err != nil {
				return out, err
			} else if paid != nil {
				out.Payment = paid
				return out, nil
			}
			return out, fmt.Errorf("NWC payment of BOLT11 %s... not resolved yet: payable until %s", b.PaymentHash[:12], expires.UTC().Format(time.RFC3339))
		}
	}
	return out, nil
}

// askAgain asks the tenant's wallet once more to pay a BOLT11 whose first
// request went unanswered. The request may have been lost (a relay or the
// wallet restarted, the wallet was offline): without asking again the
// invoice would wait, unpaid, until the BOLT11 expires (an hour by default).
// Asking again cannot pay twice: it is the same BOLT11, whose payment hash
// the node settles at most once, and a wallet refuses a payment hash it has
// paid or has in flight. It asks only once the first request's own timeout
// has passed, and not for a suspended tenant (no automatic collection). It
// returns the payment when the wallet pays now, nil otherwise (the caller
// keeps waiting on the node).
func (a *Activities) askAgain(ctx context.Context, inv store.Invoice, b store.Bolt11, now time.Time) (*PaymentReport, error) {
	timeout := a.Rails.NWCTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if a.Rails.Vault == nil || b.NWCRequestedAt == nil || now.Before(b.NWCRequestedAt.Add(timeout)) {
		return nil, nil
	}
	if susp, err := a.suspended(ctx, inv.TenantID); err != nil || susp {
		return nil, err
	}
	conn, err := a.Rails.Vault.NWC(ctx, inv.TenantID)
	if err != nil {
		return nil, nil // no connection (any more): only the node can tell
	}
	newClient := a.Rails.NewNWC
	if newClient == nil {
		newClient = func(c nwc.Connection) (NWCPayer, error) { return nwc.NewClient(c) }
	}
	client, err := newClient(conn)
	if err != nil {
		return nil, nil
	}
	defer func() { _ = client.Close() }()
	// Within the activity's one-minute start-to-close timeout.
	payCtx, cancel := context.WithTimeout(ctx, min(timeout, 30*time.Second))
	paid, payErr := client.PayInvoice(payCtx, nwc.PayInvoiceRequest{Invoice: b.PaymentRequest})
	cancel()
	if payErr != nil || !preimageMatches(paid.Preimage, b.PaymentHash) {
		activity.GetLogger(ctx).Info("asked the wallet again; no payment yet", "invoice", inv.ID, "payment_hash", b.PaymentHash[:12], "error", payErr)
		return nil, nil
	}
	if err := a.Store.SetNWCError(ctx, inv.TenantID, "", a.now()); err != nil {
		return nil, err
	}
	return &PaymentReport{Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: b.AmountMsat}, nil
}

func (a *Activities) nwcFailed(ctx context.Context, in RailAttemptInput, tenant models.TenantID, summary string) (RailAttemptResult, error) {
	summary = Summarize(summary)
	if err := a.Store.SetNWCError(ctx, tenant, summary, a.now()); err != nil {
		return RailAttemptResult{}, err
	}
	return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeFailed, Summary: summary})
}

// railTurn loads what a rail needs for its turn. done is true when the

func preimageMatches(preimageHex, paymentHash string) bool {
	pre, err := hex.DecodeString(preimageHex)
	if err != nil || len(pre) != 32 {
		return false
	}
	sum := sha256.Sum256(pre)
	return hex.EncodeToString(sum[:]) == strings.ToLower(paymentHash)
}

// railFailure is a rail that cannot collect this time, for a reason retrying
// the activity will not fix (no rate for the currency, an invalid invoice).
type railFailure struct{ summary string }

func (e *railFailure) Error() string { return e.summary }

// ensureBolt11 returns the invoice's payable BOLT11, issuing one on the
// engine's node (priced by the rate source) when there is none or the last
// one expired unpaid.
func (a *Activities) ensureBolt11(ctx context.Context, inv store.Invoice) (store.Bolt11, error) {
	now := a.now()
	due := inv.Due()
	if b, err := a.Store.LiveBolt11(ctx, inv.ID, now); err == nil {
		if b.QuoteAmount == due && b.QuoteCurrency == inv.Currency {
			return b, nil
		}
		// A partial payment since it was issued: the live BOLT11 asks for
		// more than is due. Ask the node first (it may have been paid),
		// then replace it with one for the remainder.
		res, settled, err := a.settledOnNode(ctx, b, false)
		if err != nil {
			return store.Bolt11{}, err
		}
		if settled {
			return b, &paidBeforeSuperseded{res: res}
		}
		if err := a.Store.SupersedeBolt11(ctx, b.PaymentHash, now); err != nil {
			return store.Bolt11{}, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Bolt11{}, err
	}
	// The expired BOLT11 about to be superseded may have been paid just as
	// it expired: ask the node before replacing it, so money is found, not
	// left behind a new invoice.
	if prev, ok, err := a.supersedable(ctx, inv.ID); err != nil {
		return store.Bolt11{}, err
	} else if ok {
		res, settled, err := a.settledOnNode(ctx, prev, false)
		if err != nil {
			return store.Bolt11{}, err
		}
		if settled {
			return prev, &paidBeforeSuperseded{res: res}
		}
	}
	msat, err := a.Rails.Rates.MsatFor(ctx, due, string(inv.Currency))
	if errors.Is(err, lightning.ErrUnknownCurrency) {
		return store.Bolt11{}, &railFailure{summary: fmt.Sprintf("no Lightning exchange rate for %s", strings.ToUpper(string(inv.Currency)))}
	}
	if err != nil {
		return store.Bolt11{}, fmt.Errorf("price invoice in msat: %w", err)
	}
	expiry := a.Rails.InvoiceExpiry
	if expiry <= 0 {
		expiry = time.Hour
	}
	li, err := a.Rails.Node.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "billflow invoice " + inv.ID, Expiry: expiry})
	if errors.Is(err, lightning.ErrInvalidRequest) {
		return store.Bolt11{}, &railFailure{summary: "the Lightning node refused the invoice: " + err.Error()}
	}
	if err != nil {
		return store.Bolt11{}, fmt.Errorf("create lightning invoice: %w", err)
	}
	if a.Rails.Network != nil {
		if _, err := lightning.ValidateBOLT11(li.PaymentRequest, lightning.Expectation{Network: a.Rails.Network, AmountMsat: msat, Now: now, Payee: a.Rails.Payee}); err != nil {
			return store.Bolt11{}, &railFailure{summary: "the engine's node issued an invoice that fails validation: " + err.Error()}
		}
	}
	return a.Store.SaveBolt11(ctx, store.Bolt11{PaymentHash: strings.ToLower(li.PaymentHash), InvoiceID: inv.ID, PaymentRequest: li.PaymentRequest,
		AmountMsat: msat, QuoteAmount: due, QuoteCurrency: inv.Currency, CreatedAt: li.CreatedAt, ExpiresAt: li.ExpiresAt}, now)
}

// paidBeforeSuperseded is ensureBolt11's answer when the BOLT11 it was
// about to replace turns out to be paid.
type paidBeforeSuperseded struct{ res RailAttemptResult }

func (e *paidBeforeSuperseded) Error() string { return "the expiring lightning invoice was paid" }

// supersedable returns the invoice's BOLT11 that a new one would supersede:
// unsettled, not superseded yet (and, since there is no live one, expired).
func (a *Activities) supersedable(ctx context.Context, invoiceID string) (store.Bolt11, bool, error) {
	bolts, err := a.Store.Bolt11s(ctx, invoiceID)
	if err != nil {
		return store.Bolt11{}, false, err
	}
	for i := len(bolts) - 1; i >= 0; i-- {
		if b := bolts[i]; b.SettledAt == nil && b.SupersededAt == nil {
			return b, true, nil
		}
	}
	return store.Bolt11{}, false, nil
}

// settledOnNode asks the engine's node whether a BOLT11 was paid. Money
// found after the wallet's request failed or went unanswered is out of band
// ("oob"); money found by a retried attempt whose earlier try had asked the
// wallet is NWC's.
func (a *Activities) settledOnNode(ctx context.Context, b store.Bolt11, afterPayError bool) (RailAttemptResult, bool, error) {
	li, err := a.Rails.Node.LookupInvoice(ctx, b.PaymentHash)
	if errors.Is(err, lightning.ErrInvoiceNotFound) {
		return RailAttemptResult{}, false, nil
	}
	if err != nil {
		return RailAttemptResult{}, false, fmt.Errorf("look up lightning invoice: %w", err)
	}
	if !li.Settled {
		return RailAttemptResult{}, false, nil
	}
	rail, summary := store.RailOOB, "found paid on the engine's node"
	if b.NWCRequestedAt != nil && !afterPayError {
		rail, summary = store.RailNWC, "paid from the tenant's wallet (confirmed by the engine's node)"
	}
	return RailAttemptResult{Outcome: OutcomePaid, Summary: summary,
		Payment: &PaymentReport{Rail: rail, Reference: b.PaymentHash, AmountMsat: li.AmtPaidMsat}}, true, nil
}

// LightningInvoice is a payable BOLT11 for an invoice, for the payment page.
type LightningInvoice = contract.LightningInvoice

// IssueLightningInvoice returns the invoice's payable BOLT11, issuing one
// (or replacing an expired one) on the engine's node, and checks first that
// the current one was not paid out of band.
func (a *Activities) IssueLightningInvoice(ctx context.Context, in InvoiceInput) (LightningInvoice, error) {
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return LightningInvoice{}, classify(err)
	}
	if err := closed(inv); err != nil {
		return LightningInvoice{}, err
	}
	if inv.Status == store.InvoicePaid {
		return LightningInvoice{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("invoice %s is paid", inv.ID), ErrInvoiceClosed, nil)
	}
	if a.Rails.Node == nil || a.Rails.Rates == nil {
		return LightningInvoice{}, temporal.NewNonRetryableApplicationError("the Lightning rail is not configured", ErrValidation, nil)
	}
	b, err := a.ensureBolt11(ctx, inv)
	var fail *railFailure
	if errors.As(err, &fail) {
		return LightningInvoice{}, temporal.NewNonRetryableApplicationError(fail.summary, ErrValidation, nil)
	}
	var found *paidBeforeSuperseded
	if errors.As(err, &found) {
		return LightningInvoice{PaymentRequest: b.PaymentRequest, PaymentHash: b.PaymentHash, AmountMsat: b.AmountMsat, ExpiresAt: b.ExpiresAt, Settled: true}, nil
	}
	if err != nil {
		return LightningInvoice{}, err
	}
	_, settled, err := a.settledOnNode(ctx, b, true)
	if err != nil {
		return LightningInvoice{}, err
	}
	return LightningInvoice{PaymentRequest: b.PaymentRequest, PaymentHash: b.PaymentHash, AmountMsat: b.AmountMsat, ExpiresAt: b.ExpiresAt, Settled: settled}, nil
}
