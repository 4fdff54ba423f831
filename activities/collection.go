package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
	"github.com/btcsuite/btcd/chaincfg"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Rails are the payment rails the cascade uses. A nil field turns its rail
// off: the cascade skips it and says so in the attempt table.
type Rails struct {
	// Node is the engine's Lightning node; Rates prices invoices in msat.
	Node  lightning.Node
	Rates lightning.RateSource
	// Network and Payee, when set, pin every BOLT11 the node issues before
	// a wallet is asked to pay it (Payee: the node's public key).
	Network *chaincfg.Params
	Payee   string
	// InvoiceExpiry is how long an issued BOLT11 stays payable (default 1h).
	InvoiceExpiry time.Duration
	// Vault opens tenants' NWC connections; NewNWC dials one (nwc.NewClient
	// when nil).
	Vault  *vault.Vault
	NewNWC func(nwc.Connection) (NWCPayer, error)
	// NWCTimeout bounds one pay_invoice round trip (default 60s).
	NWCTimeout time.Duration
	// Payouts pays withdrawals out from the engine's node; nil: Lightning
	// withdrawals are refused at request time.
	Payouts PayoutNode
	Cards   card.Charger
	DM      dm.Sender
	// AppURL is where tenants pay by hand: <AppURL>/account?invoice=<id>,
	// unless Pages mints hosted page links.
	AppURL string
	Pages  PageLinks
}

// NWCPayer is what the cascade needs from an NWC client.
type NWCPayer interface {
	PayInvoice(ctx context.Context, req nwc.PayInvoiceRequest) (nwc.PayInvoiceResult, error)
	Close() error
}

var _ NWCPayer = (*nwc.Client)(nil)

// Notifier reaches other workflows from activities; main wires it to the
// Temporal client (package billing implements it).
type Notifier interface {
	// ReportPayment signals an invoice's workflow that money arrived. It
	// returns ErrWorkflowGone when that workflow is no longer running.
	ReportPayment(ctx context.Context, invoiceID string, p PaymentReport) error
	// ReportCollectionFailed starts the tenant's grace window, or feeds the
	// running one (signal-with-start).
	ReportCollectionFailed(ctx context.Context, req CollectionFailedInput) error
}

// ErrWorkflowGone is a Notifier's answer for a workflow that has finished.
var ErrWorkflowGone = contract.ErrWorkflowGone

// PaymentPolicy is the collection schedule, from the worker's configuration.
type PaymentPolicy struct {
	// Dunning is when the automatic rails are retried, measured from the
	// first failed attempt (default 24h, 72h, 120h).
	Dunning []time.Duration `json:"dunning"`
	// Reconcile is when LND and Stripe are asked directly, measured from
	// when the invoice started waiting; after the last, every ReconcileEvery.
	Reconcile      []time.Duration `json:"reconcile"`
	ReconcileEvery time.Duration   `json:"reconcile_every"`
	// GraceWindow and BanFactor configure the grace window a failed
	// collection opens.
	GraceWindow time.Duration `json:"grace_window"`
	BanFactor   int           `json:"ban_factor"`
}

// DefaultPaymentPolicy is the policy when the worker configures none.
func DefaultPaymentPolicy() PaymentPolicy {
	return PaymentPolicy{
		Dunning:        []time.Duration{24 * time.Hour, 72 * time.Hour, 120 * time.Hour},
		Reconcile:      []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour},
		ReconcileEvery: 24 * time.Hour,
		GraceWindow:    7 * 24 * time.Hour,
		BanFactor:      50,
	}
}

// CollectionFailedInput starts or feeds a tenant's grace window.
type CollectionFailedInput = contract.CollectionFailedInput

// BeginCollectionResult is the invoice and the policy to collect it under.
type BeginCollectionResult struct {
	Invoice InvoiceRef    `json:"invoice"`
	Policy  PaymentPolicy `json:"policy"`
	// NWCSkip, asked for by InvoiceInput.Rails, is why PayByNWC would skip
	// now (the summary it would record); empty when it may pay.
	NWCSkip string `json:"nwc_skip,omitempty"`
	// Wallet is the first attempt's wallet turn, run here when
	// InvoiceInput.Wallet asked for it and the invoice is being collected
	// (PayFromWallet with attempt 1); WalletError says why that call
	// failed (the workflow then runs PayFromWallet itself, as before).
	Wallet      *WalletRailResult `json:"wallet,omitempty"`
	WalletError string            `json:"wallet_error,omitempty"`
}

// BeginCollection marks the invoice as being collected and returns the
// collection policy, so that configuration enters the workflow's history
// once instead of being read from the environment on replay.
func (a *Activities) BeginCollection(ctx context.Context, in InvoiceInput) (BeginCollectionResult, error) {
	inv, err := a.Store.SetInvoiceStatus(ctx, in.InvoiceID, store.InvoiceCollecting)
	if err != nil {
		return BeginCollectionResult{}, classify(err)
	}
	p := a.Policy
	if p.GraceWindow == 0 {
		p = DefaultPaymentPolicy()
	}
	out := BeginCollectionResult{Invoice: invoiceRef(inv), Policy: p}
	if in.Rails && inv.Status == store.InvoiceCollecting {
		if out.NWCSkip, err = a.nwcSkip(ctx, inv.TenantID); err != nil {
			return BeginCollectionResult{}, err
		}
	}
	if in.Wallet && inv.Status == store.InvoiceCollecting {
		// The same store transaction PayFromWallet's own call makes, safe
		// to repeat: a re-run finds the payment it made.
		w, err := a.PayFromWallet(ctx, RailAttemptInput{InvoiceID: in.InvoiceID, Attempt: 1})
		if err != nil {
			out.WalletError = Summarize(err.Error())
		} else {
			out.Wallet = &w
		}
	}
	return out, nil
}

// nwcSkip is why PayByNWC would skip the tenant now, in its order
// (suspended, no connection, no rail configured), or "" when it may pay.
// Only reads: the skipped row is recorded by whoever acts on it.
func (a *Activities) nwcSkip(ctx context.Context, id models.TenantID) (string, error) {
	if susp, err := a.suspended(ctx, id); err != nil {
		return "", err
	} else if susp {
		return SuspendedSummary, nil
	}
	methods, err := a.Store.GetPaymentMethods(ctx, id)
	if err != nil {
		return "", classify(err)
	}
	switch {
	case !methods.HasNWC():
		return "no NWC wallet connected", nil
	case a.Rails.Node == nil || a.Rails.Rates == nil || a.Rails.Vault == nil:
		return "the Lightning rail is not configured", nil
	}
	return "", nil
}

// SetInvoiceStatusInput moves an invoice between collection statuses.
type SetInvoiceStatusInput struct {
	InvoiceID string `json:"invoice_id"`
	Status    string `json:"status"`
}

// SetInvoiceStatus records where collection stands; a paid or closed invoice is left alone.
func (a *Activities) SetInvoiceStatus(ctx context.Context, in SetInvoiceStatusInput) (InvoiceRef, error) {
	inv, err := a.Store.SetInvoiceStatus(ctx, in.InvoiceID, in.Status)
	if err != nil {
		return InvoiceRef{}, classify(err)
	}
	return invoiceRef(inv), nil
}

// Rail attempt outcomes.
const (
	OutcomePaid        = "paid"
	OutcomeFailed      = "failed"
	OutcomeSkipped     = "skipped"
	OutcomeProcessing  = "processing"
	OutcomeNeedsAction = "needs_action"
	OutcomeSent        = "sent"
)

// RailAttemptInput is one rail's turn in one cascade attempt.
type RailAttemptInput struct {
	InvoiceID string `json:"invoice_id"`
	Attempt   int    `json:"attempt"`
	// NWCSkipped (ChargeCard only) is the summary of the NWC turn the
	// workflow skipped in this attempt (BeginCollectionResult.NWCSkip):
	// the card records that row first, so the attempt table is as when
	// PayByNWC ran and skipped.
	NWCSkipped string `json:"nwc_skipped,omitempty"`
	// Settle (PayByNWC and ChargeCard, invoice-v7): when the rail took
	// payment, record it (Settle, with TellTenant) in the same call;
	// RailAttemptResult.Settled is the settlement.
	Settle     bool            `json:"settle,omitempty"`
	TellTenant models.TenantID `json:"tell_tenant,omitempty"`
}

// RailAttemptResult is what a rail did. Summary is short, secret-free text
// for people: the attempt table, the tenant's DM.
type RailAttemptResult struct {
	Outcome string `json:"outcome"`
	// Payment is set when Outcome is paid.
	Payment *PaymentReport `json:"payment,omitempty"`
	Summary string         `json:"summary,omitempty"`
	// PaymentUnknown is set by the NWC rail when the wallet was asked to pay
	// and did not say how it ended (a timeout, a lost answer): the money may
	// still arrive, so the card must wait until the node tells.
	PaymentUnknown bool `json:"payment_unknown,omitempty"`
	// Settled is the settlement of Payment, when RailAttemptInput.Settle
	// asked for it and it was recorded; SettleError says why it was not
	// (the workflow then settles the payment itself, as before).
	Settled     *SettleResult `json:"settled,omitempty"`
	SettleError string        `json:"settle_error,omitempty"`
}

// settleRail records the payment a rail took, in the rail's own call, when
// the workflow asked for it (RailAttemptInput.Settle). Settle is one store
// transaction, safe to repeat (the same money again is a duplicate), so a
// retried rail activity settles once. A settlement that fails is not the
// rail's failure: the money was taken, and the workflow records it itself
// (and retries it, or parks it as needs action), exactly as before.
func (a *Activities) settleRail(ctx context.Context, in RailAttemptInput, res RailAttemptResult, err error) (RailAttemptResult, error) {
	if err != nil || !in.Settle || res.Outcome != OutcomePaid || res.Payment == nil || res.Payment.Rail == store.RailWallet {
		return res, err
	}
	s, serr := a.Settle(ctx, SettleInput{InvoiceID: in.InvoiceID, Payment: *res.Payment, PaidAt: a.now(), TellTenant: in.TellTenant})
	if serr != nil {
		if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Warn("payment taken but not settled by the rail; the workflow settles it", "invoice", in.InvoiceID, "error", serr)
		}
		res.SettleError = Summarize(serr.Error())
		return res, nil
	}
	res.Settled = &s
	return res, nil
}

// MaxSummary is the longest error summary a tenant is shown.
const MaxSummary = 240

// Summarize collapses whitespace and cuts text to MaxSummary characters
// (237 and "..." when longer).
func Summarize(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= MaxSummary {
		return s
	}
	r := []rune(s)
	return string(r[:MaxSummary-3]) + "..."
}

func (a *Activities) now() time.Time {
	if a.Store != nil && a.Store.Now != nil {
		return a.Store.Now()
	}
	return time.Now()
}

// record stores a rail's outcome in the attempt table and returns it.
func (a *Activities) record(ctx context.Context, in RailAttemptInput, rail string, res RailAttemptResult) (RailAttemptResult, error) {
	res.Summary = Summarize(res.Summary)
	if err := a.Store.RecordAttempt(ctx, store.Attempt{InvoiceID: in.InvoiceID, Attempt: in.Attempt, Rail: rail,
		Outcome: res.Outcome, Detail: res.Summary, At: a.now()}); err != nil {
		return RailAttemptResult{}, err
	}
	return res, nil
}

// alreadyPaid reports an invoice paid before this rail's turn, so a retried
// or late attempt never collects twice.
func alreadyPaid(inv store.Invoice) (RailAttemptResult, bool) {
	if inv.Status != store.InvoicePaid {
		return RailAttemptResult{}, false
	}
	return RailAttemptResult{Outcome: OutcomePaid, Summary: "already paid via " + inv.PaidRail,
		Payment: &PaymentReport{Rail: inv.PaidRail, Reference: inv.PaidReference}}, true
}

// SuspendedSummary is the attempt table's note for a rail skipped because
// the tenant is suspended.
const SuspendedSummary = "tenant suspended: no automatic collection until restored"

// suspended reports whether the tenant is suspended: a suspended tenant is
// not charged or messaged; money it sends is still recorded.
func (a *Activities) suspended(ctx context.Context, id models.TenantID) (bool, error) {
	t, err := a.Store.GetTenant(ctx, id)
	if err != nil {
		return false, classify(err)
	}
	return t.Status == store.TenantSuspended, nil
}

func closed(inv store.Invoice) error {
	if inv.Status == store.InvoiceVoid || inv.Status == store.InvoiceUncollectible {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("invoice %s is %s", inv.ID, inv.Status), ErrInvoiceClosed, nil)
	}
	return nil
}

// invoice was paid before the turn (res says how), so nothing is collected twice.
func (a *Activities) railTurn(ctx context.Context, in RailAttemptInput) (inv store.Invoice, methods store.PaymentMethods, done bool, res RailAttemptResult, err error) {
	inv, _, err = a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return inv, methods, false, res, classify(err)
	}
	if res, ok := alreadyPaid(inv); ok {
		return inv, methods, true, res, nil
	}
	if err := closed(inv); err != nil {
		return inv, methods, false, res, err
	}
	methods, err = a.Store.GetPaymentMethods(ctx, inv.TenantID)
	return inv, methods, false, res, classify(err)
}

// RecordAttemptInput records a rail outcome the workflow decided (a DM that
// could not be sent after all retries).
type RecordAttemptInput struct {
	InvoiceID string `json:"invoice_id"`
	Attempt   int    `json:"attempt"`
	Rail      string `json:"rail"`
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail"`
}

// RecordAttempt stores one rail outcome in the attempt table.
func (a *Activities) RecordAttempt(ctx context.Context, in RecordAttemptInput) error {
	_, err := a.record(ctx, RailAttemptInput{InvoiceID: in.InvoiceID, Attempt: in.Attempt}, in.Rail, RailAttemptResult{Outcome: in.Outcome, Summary: in.Detail})
	return err
}

// ReportCollectionFailed starts or feeds the tenant's grace window.
//
// A wallet top-up is not owed money: its failed collection (an auto
// top-up the tenant's NWC wallet refused, say) leaves the tenant in good
// standing, so it opens no grace window.
func (a *Activities) ReportCollectionFailed(ctx context.Context, in CollectionFailedInput) error {
	if a.Notify == nil {
		return temporal.NewNonRetryableApplicationError("no notifier configured", ErrValidation, nil)
	}
	if a.Store != nil {
		kind, err := a.Store.InvoiceKind(ctx, in.InvoiceID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if kind == store.InvoiceKindTopUp {
			activity.GetLogger(ctx).Info("top-up not paid; no grace window: a top-up is not owed", "invoice", in.InvoiceID, "tenant", in.TenantID)
			return nil
		}
	}
	return a.Notify.ReportCollectionFailed(ctx, in)
}

// CloseInvoiceInput voids an invoice or writes it off.
type CloseInvoiceInput struct {
	InvoiceID string    `json:"invoice_id"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// CloseInvoice voids or writes off the invoice, releasing its discount slot.
func (a *Activities) CloseInvoice(ctx context.Context, in CloseInvoiceInput) (InvoiceRef, error) {
	inv, err := a.Store.CloseInvoice(ctx, in.InvoiceID, in.Status, in.Reason, in.At)
	if err != nil {
		return InvoiceRef{}, classify(err)
	}
	a.nudge(ctx)
	return invoiceRef(inv), nil
}

// heartbeat tells Temporal every few seconds that this worker is alive,
// until the returned stop is called, so a worker that dies mid-payment is
// noticed within the heartbeat timeout rather than the start-to-close one.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
