package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/btcsuite/btcd/chaincfg"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/rails/dm"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
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
	Cards      card.Charger
	DM         dm.Sender
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

// PaymentReport is money received for an invoice, as reported to its workflow.
type PaymentReport = contract.PaymentReport

// CollectionFailedInput starts or feeds a tenant's grace window.
type CollectionFailedInput = contract.CollectionFailedInput

// BeginCollectionResult is the invoice and the policy to collect it under.
type BeginCollectionResult struct {
	Invoice InvoiceRef    `json:"invoice"`
	Policy  PaymentPolicy `json:"policy"`
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
	return BeginCollectionResult{Invoice: invoiceRef(inv), Policy: p}, nil
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
}

// RailAttemptResult is what a rail did. Summary is short, secret-free text
// for people: the attempt table, the tenant's DM.
type RailAttemptResult struct {
	Outcome string `json:"outcome"`
	// Payment is set when Outcome is paid.
	Payment *PaymentReport `json:"payment,omitempty"`
	Summary string         `json:"summary,omitempty"`
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

func closed(inv store.Invoice) error {
	if inv.Status == store.InvoiceVoid || inv.Status == store.InvoiceUncollectible {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("invoice %s is %s", inv.ID, inv.Status), ErrInvoiceClosed, nil)
	}
	return nil
}

// PayByNWC pays the invoice from the tenant's wallet over NWC: it makes sure
// a payable BOLT11 exists on the engine's node, asks the wallet to pay it and
// verifies the preimage. An error or an unknown outcome is settled by asking
// the node first: if the invoice was paid anyway it is paid ("oob"). The NWC
// connection is opened here and nowhere else; nothing secret leaves.
func (a *Activities) PayByNWC(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	defer heartbeat(ctx)()
	inv, methods, done, res, err := a.railTurn(ctx, in)
	if done || err != nil {
		return res, err
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
	return a.nwcFailed(ctx, in, inv.TenantID, "NWC: "+payErr.Error())
}

func (a *Activities) nwcFailed(ctx context.Context, in RailAttemptInput, tenant models.TenantID, summary string) (RailAttemptResult, error) {
	summary = Summarize(summary)
	if err := a.Store.SetNWCError(ctx, tenant, summary, a.now()); err != nil {
		return RailAttemptResult{}, err
	}
	return a.record(ctx, in, "nwc", RailAttemptResult{Outcome: OutcomeFailed, Summary: summary})
}

// railTurn loads what a rail needs for its turn. done is true when the
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
	if b, err := a.Store.LiveBolt11(ctx, inv.ID, now); err == nil {
		return b, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Bolt11{}, err
	}
	msat, err := a.Rails.Rates.MsatFor(ctx, inv.Total, string(inv.Currency))
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
		AmountMsat: msat, QuoteAmount: inv.Total, QuoteCurrency: inv.Currency, CreatedAt: li.CreatedAt, ExpiresAt: li.ExpiresAt}, now)
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

// ChargeCard charges the tenant's saved card off-session with the
// idempotency key invoice/<id>/card/<attempt>, so however often Temporal
// retries this activity, Stripe charges once per attempt.
func (a *Activities) ChargeCard(ctx context.Context, in RailAttemptInput) (RailAttemptResult, error) {
	defer heartbeat(ctx)()
	inv, methods, done, turn, err := a.railTurn(ctx, in)
	if done || err != nil {
		return turn, err
	}
	switch {
	case methods.StripeCustomerID == "":
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no card on file"})
	case a.Rails.Cards == nil:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "the card rail is not configured"})
	}
	pm, found, err := a.Rails.Cards.DefaultPaymentMethod(ctx, methods.StripeCustomerID)
	var apiErr *card.APIError
	if errors.As(err, &apiErr) {
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: "card: " + apiErr.Error()})
	}
	if err != nil {
		return RailAttemptResult{}, err
	}
	if !found {
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no saved card to charge"})
	}
	key := card.IdempotencyKey(inv.ID, in.Attempt)
	res, err := a.Rails.Cards.ChargeOffSession(ctx, card.ChargeRequest{CustomerID: methods.StripeCustomerID, PaymentMethodID: pm,
		AmountMinor: inv.Total, Currency: string(inv.Currency), InvoiceID: inv.ID, IdempotencyKey: key})
	var retry *card.RetryableError
	switch {
	case errors.As(err, &retry) && retry.Replayed:
		// Stripe cached a failure mid-charge under this key: the outcome is
		// unknown and only Stripe's webhook can tell (the PaymentIntent id
		// never reached us, so reconciliation cannot ask for it). Treated
		// as processing, so no dunning retry charges again meanwhile.
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeProcessing, Summary: "card charge outcome unknown; waiting for Stripe"})
	case errors.As(err, &retry):
		return RailAttemptResult{}, err // retried by Temporal with the same key
	case err != nil:
		// Refused for good (bad request, unknown customer, idempotency
		// conflict, an impossible PaymentIntent state): this rail failed.
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: "card: " + err.Error()})
	}
	if err := a.Store.RecordCardPayment(ctx, store.CardPayment{PaymentIntentID: res.PaymentIntentID, InvoiceID: inv.ID, IdempotencyKey: key,
		Attempt: in.Attempt, Amount: inv.Total, Currency: inv.Currency, Status: res.Status, Outcome: string(res.Outcome), DeclineCode: res.DeclineCode}); err != nil {
		return RailAttemptResult{}, err
	}
	switch res.Outcome {
	case card.OutcomeSucceeded:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomePaid, Summary: "charged the saved card",
			Payment: &PaymentReport{Rail: store.RailStripe, Reference: res.PaymentIntentID, Amount: inv.Total, Currency: string(inv.Currency)}})
	case card.OutcomeProcessing:
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeProcessing, Summary: "card charge processing; waiting for Stripe"})
	case card.OutcomeAuthenticationRequired:
		summary := "card requires authentication by the cardholder"
		if err := a.Store.MarkNeedsAction(ctx, inv.ID, summary, a.now()); err != nil {
			return RailAttemptResult{}, err
		}
		a.nudge(ctx)
		return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeNeedsAction, Summary: summary})
	}
	summary := "card declined"
	if res.DeclineCode != "" {
		summary += " (" + res.DeclineCode + ")"
	}
	if res.Message != "" {
		summary += ": " + res.Message
	}
	return a.record(ctx, in, "card", RailAttemptResult{Outcome: OutcomeFailed, Summary: summary})
}

// PaymentDMInput asks for the tenant's payment-link DM.
type PaymentDMInput struct {
	InvoiceID string `json:"invoice_id"`
	Attempt   int    `json:"attempt"`
	// Failure is the last automatic rail's error summary, if one failed.
	Failure  string `json:"failure,omitempty"`
	Reminder bool   `json:"reminder,omitempty"`
}

// PaymentDMResult reports the DM sent.
type PaymentDMResult struct {
	Outcome string `json:"outcome"`
	EventID string `json:"event_id,omitempty"`
	Relays  int    `json:"relays"`
}

// PaymentMessage is the DM text: the payment link and, when an automatic
// rail failed, "Auto-payment failed: <summary>".
func PaymentMessage(link string, inv store.Invoice, failure string, reminder bool) string {
	var b strings.Builder
	if reminder {
		b.WriteString("Reminder: ")
	}
	fmt.Fprintf(&b, "payment of %s is due for invoice %s. Open the link below to review it and pay by Lightning or card:\n\n%s",
		models.FormatAmount(inv.Total, inv.Currency), inv.ID, link)
	if s := Summarize(failure); s != "" {
		b.WriteString("\n\nAuto-payment failed: " + s)
	}
	out := b.String()
	return strings.ToUpper(out[:1]) + out[1:]
}

// SendPaymentDM sends the tenant the payment link. A failure is returned
// for Temporal to retry; the workflow records it and never fails the
// invoice over a DM.
func (a *Activities) SendPaymentDM(ctx context.Context, in PaymentDMInput) (PaymentDMResult, error) {
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return PaymentDMResult{}, classify(err)
	}
	rin := RailAttemptInput{InvoiceID: in.InvoiceID, Attempt: in.Attempt}
	if inv.Status == store.InvoicePaid || inv.Status == store.InvoiceVoid || inv.Status == store.InvoiceUncollectible {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	if a.Rails.DM == nil {
		_, err := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeSkipped, Summary: "no DM robot configured"})
		return PaymentDMResult{Outcome: OutcomeSkipped}, err
	}
	link, err := a.paymentLink(ctx, inv)
	if err != nil {
		return PaymentDMResult{}, err
	}
	sent, err := a.Rails.DM.Send(ctx, string(inv.TenantID), PaymentMessage(link, inv, in.Failure, in.Reminder))
	if err != nil {
		if errors.Is(err, dm.ErrInvalidRecipient) {
			_, rerr := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeFailed, Summary: "DM: " + err.Error()})
			if rerr != nil {
				return PaymentDMResult{}, rerr
			}
			return PaymentDMResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrValidation, nil)
		}
		return PaymentDMResult{}, fmt.Errorf("send payment DM: %w", err)
	}
	accepted := 0
	for _, r := range sent.Recipient {
		if r.Accepted {
			accepted++
		}
	}
	if _, err := a.record(ctx, rin, "dm", RailAttemptResult{Outcome: OutcomeSent, Summary: fmt.Sprintf("payment link sent (event %s, %d relays)", short(sent.EventID), accepted)}); err != nil {
		return PaymentDMResult{}, err
	}
	return PaymentDMResult{Outcome: OutcomeSent, EventID: sent.EventID, Relays: accepted}, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
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
func (a *Activities) ReportCollectionFailed(ctx context.Context, in CollectionFailedInput) error {
	if a.Notify == nil {
		return temporal.NewNonRetryableApplicationError("no notifier configured", ErrValidation, nil)
	}
	return a.Notify.ReportCollectionFailed(ctx, in)
}

// ReconcileResult lists payments the rails know of and the store does not.
type ReconcileResult struct {
	Found []PaymentReport `json:"found"`
	// Checked counts the Lightning invoices and PaymentIntents asked about.
	Checked int `json:"checked"`
	// Unreachable names rails that could not be asked this time.
	Unreachable []string `json:"unreachable,omitempty"`
}

// Reconcile asks the engine's node about every unsettled BOLT11 issued for
// the invoice and Stripe about every PaymentIntent, so a dropped webhook or
// a missed stream event is found by asking.
func (a *Activities) Reconcile(ctx context.Context, in InvoiceInput) (ReconcileResult, error) {
	var out ReconcileResult
	inv, _, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return out, classify(err)
	}
	if a.Rails.Node != nil {
		bolts, err := a.Store.Bolt11s(ctx, in.InvoiceID)
		if err != nil {
			return out, err
		}
		for _, b := range bolts {
			if b.SettledAt != nil {
				continue
			}
			out.Checked++
			res, ok, err := a.settledOnNode(ctx, b, false)
			if err != nil {
				activity.GetLogger(ctx).Warn("reconcile: lightning node unreachable", "invoice", inv.ID, "error", err)
				out.Unreachable = append(out.Unreachable, "lightning")
				break
			}
			if ok {
				res.Payment.Rail = store.RailLightning
				out.Found = append(out.Found, *res.Payment)
			}
		}
	}
	if a.Rails.Cards != nil {
		charges, err := a.Store.CardPayments(ctx, in.InvoiceID)
		if err != nil {
			return out, err
		}
		for _, c := range charges {
			if c.Outcome == string(card.OutcomeDeclined) || c.Outcome == string(card.OutcomeCanceled) {
				continue
			}
			out.Checked++
			pi, err := a.Rails.Cards.RetrievePaymentIntent(ctx, c.PaymentIntentID)
			if err != nil {
				activity.GetLogger(ctx).Warn("reconcile: stripe unreachable", "invoice", inv.ID, "payment_intent", c.PaymentIntentID, "error", err)
				out.Unreachable = append(out.Unreachable, "stripe")
				break
			}
			if string(pi.Outcome) != c.Outcome {
				c.Status, c.Outcome, c.DeclineCode = pi.Status, string(pi.Outcome), pi.DeclineCode
				if err := a.Store.RecordCardPayment(ctx, c); err != nil {
					return out, err
				}
			}
			if pi.Outcome == card.OutcomeSucceeded && pi.AmountReceived > 0 {
				out.Found = append(out.Found, PaymentReport{Rail: store.RailStripe, Reference: pi.ID, Amount: pi.AmountReceived, Currency: pi.Currency})
			}
		}
	}
	return out, nil
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
	if err != nil {
		return LightningInvoice{}, err
	}
	_, settled, err := a.settledOnNode(ctx, b, true)
	if err != nil {
		return LightningInvoice{}, err
	}
	return LightningInvoice{PaymentRequest: b.PaymentRequest, PaymentHash: b.PaymentHash, AmountMsat: b.AmountMsat, ExpiresAt: b.ExpiresAt, Settled: settled}, nil
}

// SuspensionDMInput names the suspended tenant.
type SuspensionDMInput struct {
	TenantID models.TenantID `json:"tenant_id"`
}

// SuspensionMessage is the DM telling a tenant its service is suspended.
func SuspensionMessage(link string, unpaid []store.Invoice) string {
	var b strings.Builder
	b.WriteString("Your service is suspended because of unpaid invoices:\n")
	for _, inv := range unpaid {
		fmt.Fprintf(&b, "\n- %s: %s", inv.ID, models.FormatAmount(inv.Total, inv.Currency))
	}
	fmt.Fprintf(&b, "\n\nPay them at %s to restore it.", link)
	return b.String()
}

// SendSuspensionDM tells a suspended tenant why and where to pay. Like the
// payment DM it is retried by Temporal and never changes the tenant's state.
func (a *Activities) SendSuspensionDM(ctx context.Context, in SuspensionDMInput) (PaymentDMResult, error) {
	if a.Rails.DM == nil {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	g, err := a.Store.GetGraceState(ctx, in.TenantID)
	if err != nil {
		return PaymentDMResult{}, classify(err)
	}
	if g.Status != store.TenantSuspended {
		return PaymentDMResult{Outcome: OutcomeSkipped}, nil
	}
	link, err := a.accountLink(ctx, in.TenantID)
	if err != nil {
		return PaymentDMResult{}, err
	}
	sent, err := a.Rails.DM.Send(ctx, string(in.TenantID), SuspensionMessage(link, g.Unpaid))
	if err != nil {
		return PaymentDMResult{}, fmt.Errorf("send suspension DM: %w", err)
	}
	return PaymentDMResult{Outcome: OutcomeSent, EventID: sent.EventID}, nil
}
