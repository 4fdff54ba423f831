// Package card is the card rail: off-session charges of a customer's saved
// card through Stripe with stripe-go v76, and verification of Stripe's
// webhooks. Each Client has its own backend and API key (the global
// stripe.Key is never used), so the real Stripe, the sandbox under
// sandbox/stripe and stripe-mock are one configuration apart.
//
// Retries belong to the caller (Temporal): the client never retries a
// request itself and reports failures worth retrying as *RetryableError. A charge must be retried with the same idempotency key,
// which makes Stripe return the first attempt's outcome instead of charging
// again.
package card

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/billflow/billflow/models"
)

// Charger is what workflows' activities need from the card rail.
type Charger interface {
	// DefaultPaymentMethod finds the saved card to charge off-session.
	DefaultPaymentMethod(ctx context.Context, customerID string) (pmID string, found bool, err error)
	// ChargeOffSession charges a saved card once per idempotency key.
	ChargeOffSession(ctx context.Context, req ChargeRequest) (ChargeResult, error)
	// RetrievePaymentIntent reads a PaymentIntent for reconciliation.
	RetrievePaymentIntent(ctx context.Context, id string) (PaymentIntent, error)
}

var _ Charger = (*Client)(nil)

// DefaultTimeout bounds one API call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Client.
type Config struct {
	// APIKey is the Stripe secret or restricted key (sk_..., rk_...). It is
	// sent only in the Authorization header and never appears in errors.
	APIKey string
	// BackendURL is the API base URL; empty means Stripe's
	// (https://api.stripe.com). The sandbox's or stripe-mock's URL in dev and
	// tests.
	BackendURL string
	// Timeout bounds each API call, through both its context and the HTTP
	// client; zero means DefaultTimeout.
	Timeout time.Duration
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

// Client is the Stripe card rail. It is safe for concurrent use.
type Client struct {
	api     *client.API
	apiKey  string
	timeout time.Duration
}

// New builds a client from cfg.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, &models.ValidationError{Field: "stripe api key", Reason: "must not be empty"}
	}
	if cfg.BackendURL == "" {
		cfg.BackendURL = stripe.APIURL
	}
	u, err := url.Parse(cfg.BackendURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &models.ValidationError{Field: "stripe backend url", Reason: fmt.Sprintf("%q is not an http(s) URL", cfg.BackendURL)}
	}
	if cfg.Timeout < 0 {
		return nil, &models.ValidationError{Field: "stripe timeout", Reason: "must not be negative"}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	httpClient := &http.Client{Timeout: cfg.Timeout, Transport: cfg.Transport}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:        stripe.String(cfg.BackendURL),
		HTTPClient: httpClient,
		// Zero: Temporal owns retries. stripe-go's own retries would sleep
		// inside one activity attempt, invisible to the workflow's retry
		// policy, timeouts and history, and would stack multiplicatively
		// with Temporal's.
		MaxNetworkRetries: stripe.Int64(0),
		// stripe-go logs every failed request, at debug level with response
		// bodies (which carry PaymentIntent client secrets). The rail
		// returns typed errors instead and leaves logging to its callers.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		// Telemetry would ship request timings to Stripe in headers of later
		// requests; nothing here needs it.
		EnableTelemetry: stripe.Bool(false),
	})
	// Every backend kind points at the configured URL, so no code path of
	// this client can reach another Stripe host.
	api := client.New(cfg.APIKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &Client{api: api, apiKey: cfg.APIKey, timeout: cfg.Timeout}, nil
}

// bound gives one API call its deadline.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// DefaultPaymentMethod returns the card to charge off-session for a
// customer. The rule, in order:
//
//  1. the customer's invoice_settings.default_payment_method, when it is a
//     card (the default Stripe Billing itself charges);
//  2. otherwise the customer's only saved card, when exactly one is saved;
//  3. otherwise found=false: no card, or several and none chosen, and the
//     engine must not guess which one to charge.
//
// A deleted customer has no card (found=false). Legacy Sources
// (default_source, card_...) are not considered: off-session PaymentIntents
// need PaymentMethods. An unknown customer is an *APIError matching
// ErrNotFound.
func (c *Client) DefaultPaymentMethod(ctx context.Context, customerID string) (string, bool, error) {
	if strings.TrimSpace(customerID) == "" {
		return "", false, &models.ValidationError{Field: "customer_id", Reason: "must not be empty"}
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()

	params := &stripe.CustomerParams{}
	params.Context = ctx
	// Expanded, to see the default's type: a default that is not a card
	// cannot be charged by this rail.
	params.AddExpand("invoice_settings.default_payment_method")
	cust, err := c.api.Customers.Get(customerID, params)
	if err != nil {
		return "", false, c.apiErr("retrieve customer", err)
	}
	if cust.Deleted {
		return "", false, nil
	}
	if is := cust.InvoiceSettings; is != nil && is.DefaultPaymentMethod != nil && is.DefaultPaymentMethod.ID != "" {
		pm := is.DefaultPaymentMethod
		if pm.Type == "" || pm.Type == stripe.PaymentMethodTypeCard {
			return pm.ID, true, nil
		}
	}

	list := &stripe.PaymentMethodListParams{Customer: stripe.String(customerID), Type: stripe.String(string(stripe.PaymentMethodTypeCard))}
	list.Context = ctx
	// Two are enough to tell "exactly one" from "several"; one page only.
	list.Limit = stripe.Int64(2)
	list.Single = true
	it := c.api.PaymentMethods.List(list)
	var ids []string
	for it.Next() {
		ids = append(ids, it.PaymentMethod().ID)
	}
	if err := it.Err(); err != nil {
		return "", false, c.apiErr("list payment methods", err)
	}
	if len(ids) == 1 {
		return ids[0], true, nil
	}
	return "", false, nil
}

// MaxIdempotencyKeyLength is Stripe's limit on an Idempotency-Key.
const MaxIdempotencyKeyLength = 255

// IdempotencyKey is the key of a card charge attempt for an invoice,
// invoice/<id>/card/<attempt>: deterministic, so every retry of one attempt
// (a Temporal activity retry, a worker restart) sends the same key, and a
// deliberate new attempt (after the customer fixed their card) a new one.
func IdempotencyKey(invoiceID string, attempt int) string {
	return "invoice/" + invoiceID + "/card/" + strconv.Itoa(attempt)
}

// ChargeRequest is one off-session charge.
type ChargeRequest struct {
	CustomerID      string
	PaymentMethodID string
	// AmountMinor is in the currency's smallest unit (cents); positive.
	AmountMinor int64
	// Currency is an ISO 4217 code; it is sent lower-cased.
	Currency string
	// InvoiceID is recorded as metadata invoice_id on the PaymentIntent,
	// which is how webhooks and reconciliation find the invoice.
	InvoiceID string
	// IdempotencyKey is required: the same key for every retry of one
	// attempt (see IdempotencyKey). It is never generated here, because a
	// random key per call would make each retry a new charge.
	IdempotencyKey string
}

// Outcome classifies a PaymentIntent for the workflow.
type Outcome string

// Outcomes. ChargeOffSession returns only the first four.
const (
	// OutcomeSucceeded: the money moved.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeProcessing: the charge was accepted and settles later; the
	// payment_intent.succeeded or payment_failed webhook decides it.
	OutcomeProcessing Outcome = "processing"
	// OutcomeDeclined: the card was declined (DeclineCode says why).
	// Retrying the same key returns the same decline; not retryable.
	OutcomeDeclined Outcome = "declined"
	// OutcomeAuthenticationRequired: the bank wants the customer present
	// (3D Secure); off-session charging cannot succeed. Not retryable: the
	// customer has to act.
	OutcomeAuthenticationRequired Outcome = "authentication_required"
	// OutcomeCanceled: the PaymentIntent was canceled.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeIncomplete: not yet confirmed or captured (requires_confirmation,
	// requires_capture, or requires_payment_method with no failed attempt).
	OutcomeIncomplete Outcome = "incomplete"
)

// ChargeResult is the outcome of ChargeOffSession.
type ChargeResult struct {
	Outcome         Outcome `json:"outcome"`
	PaymentIntentID string  `json:"payment_intent_id"`
	// DeclineCode is the issuer's reason (e.g. insufficient_funds), or
	// Stripe's error code when the issuer gave none.
	DeclineCode string `json:"decline_code,omitempty"`
	// Message is Stripe's human-readable reason for a decline.
	Message string `json:"message,omitempty"`
	// Status is the PaymentIntent's status as Stripe reported it.
	Status string `json:"status,omitempty"`
	// Replayed is true when Stripe answered from its idempotency cache: an
	// earlier attempt with this key already ran, and this is its outcome.
	Replayed bool `json:"replayed,omitempty"`
}

// ChargeOffSession creates and confirms a PaymentIntent for a saved card
// with the customer absent (off_session=true, confirm=true). A decline or a
// demand for authentication is a result, not an error. Errors are:
// *models.ValidationError for a bad request (nothing was sent);
// *RetryableError when retrying with the same key may succeed; *APIError
// when Stripe refused the request (ErrIdempotencyConflict when the key was
// used before with other parameters); *UnexpectedStatusError for a state a
// confirmed automatic-capture PaymentIntent should not be in.
func (c *Client) ChargeOffSession(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	if err := validateCharge(&req); err != nil {
		return ChargeResult{}, err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()

	params := &stripe.PaymentIntentParams{
		Amount:        stripe.Int64(req.AmountMinor),
		Currency:      stripe.String(req.Currency),
		Customer:      stripe.String(req.CustomerID),
		PaymentMethod: stripe.String(req.PaymentMethodID),
		// Card only: without payment_method_types, API versions since
		// 2023-08-16 enable the Dashboard's payment methods, and a
		// server-side confirm then demands a return_url for redirect-based
		// ones, which an off-session charge cannot have.
		PaymentMethodTypes: stripe.StringSlice([]string{string(stripe.PaymentMethodTypeCard)}),
		OffSession:         stripe.Bool(true),
		Confirm:            stripe.Bool(true),
		Metadata:           map[string]string{"invoice_id": req.InvoiceID},
	}
	params.Context = ctx
	params.SetIdempotencyKey(req.IdempotencyKey)

	pi, err := c.api.PaymentIntents.New(params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Type == stripe.ErrorTypeCard {
			return c.cardErrorResult(se), nil
		}
		return ChargeResult{}, c.apiErr("create payment intent", err)
	}
	res := ChargeResult{PaymentIntentID: pi.ID, Status: string(pi.Status), Replayed: replayed(pi.LastResponse)}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res.Outcome = OutcomeSucceeded
	case stripe.PaymentIntentStatusProcessing:
		res.Outcome = OutcomeProcessing
	case stripe.PaymentIntentStatusRequiresAction:
		res.Outcome = OutcomeAuthenticationRequired
		res.Message = "the card requires authentication by the customer"
	case stripe.PaymentIntentStatusRequiresPaymentMethod:
		// A confirmed PaymentIntent back in requires_payment_method is a
		// failed attempt, normally reported as a card error above.
		res.Outcome, res.DeclineCode, res.Message = OutcomeDeclined, "", "the payment attempt failed"
		if e := pi.LastPaymentError; e != nil {
			res.DeclineCode, res.Message = declineCode(e), c.redact(e.Msg)
			if isAuthenticationRequired(e) {
				res.Outcome = OutcomeAuthenticationRequired
			}
		}
	default:
		return res, &UnexpectedStatusError{Op: "create payment intent", PaymentIntentID: pi.ID, Status: string(pi.Status)}
	}
	return res, nil
}

// cardErrorResult turns a 402 card error into a decline or an
// authentication demand.
func (c *Client) cardErrorResult(se *stripe.Error) ChargeResult {
	res := ChargeResult{Outcome: OutcomeDeclined, DeclineCode: declineCode(se), Message: c.redact(se.Msg), Replayed: replayed(se.LastResponse)}
	if se.PaymentIntent != nil {
		res.PaymentIntentID, res.Status = se.PaymentIntent.ID, string(se.PaymentIntent.Status)
	}
	if isAuthenticationRequired(se) {
		res.Outcome = OutcomeAuthenticationRequired
	}
	return res
}

func isAuthenticationRequired(e *stripe.Error) bool {
	return e.Code == stripe.ErrorCodeAuthenticationRequired || e.DeclineCode == stripe.DeclineCodeAuthenticationRequired
}

func declineCode(e *stripe.Error) string {
	if e.DeclineCode != "" {
		return string(e.DeclineCode)
	}
	return string(e.Code)
}

func replayed(r *stripe.APIResponse) bool {
	return r != nil && r.Header.Get("Idempotent-Replayed") == "true"
}

func validateCharge(req *ChargeRequest) error {
	switch {
	case strings.TrimSpace(req.CustomerID) == "":
		return &models.ValidationError{Field: "customer_id", Reason: "must not be empty"}
	case strings.TrimSpace(req.PaymentMethodID) == "":
		return &models.ValidationError{Field: "payment_method_id", Reason: "must not be empty"}
	case req.AmountMinor <= 0:
		return &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not a positive amount", req.AmountMinor)}
	case strings.TrimSpace(req.InvoiceID) == "":
		return &models.ValidationError{Field: "invoice_id", Reason: "must not be empty"}
	}
	cur, err := models.ParseCurrency(req.Currency)
	if err != nil {
		return err
	}
	req.Currency = string(cur)
	return validateIdempotencyKey(req.IdempotencyKey)
}

// validateIdempotencyKey rejects keys Stripe or stripe-go would alter: an
// empty key makes stripe-go invent a random one (a new charge per retry),
// and surrounding spaces are trimmed by stripe-go, so two distinct keys
// could collide.
func validateIdempotencyKey(key string) error {
	switch {
	case key == "":
		return &models.ValidationError{Field: "idempotency_key", Reason: "must not be empty: every retry of a charge must send the same key"}
	case len(key) > MaxIdempotencyKeyLength:
		return &models.ValidationError{Field: "idempotency_key", Reason: fmt.Sprintf("is %d bytes, Stripe allows %d", len(key), MaxIdempotencyKeyLength)}
	case strings.TrimSpace(key) != key:
		return &models.ValidationError{Field: "idempotency_key", Reason: "must not begin or end with spaces"}
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return &models.ValidationError{Field: "idempotency_key", Reason: "must be printable ASCII"}
		}
	}
	return nil
}

// PaymentIntent summarises a Stripe PaymentIntent for reconciliation.
type PaymentIntent struct {
	ID      string  `json:"id"`
	Status  string  `json:"status"`
	Outcome Outcome `json:"outcome"`
	// AmountMinor is what was asked; AmountReceived what was collected.
	AmountMinor     int64     `json:"amount"`
	AmountReceived  int64     `json:"amount_received"`
	Currency        string    `json:"currency"`
	CustomerID      string    `json:"customer_id,omitempty"`
	PaymentMethodID string    `json:"payment_method_id,omitempty"`
	InvoiceID       string    `json:"invoice_id,omitempty"`
	Created         time.Time `json:"created"`
	// DeclineCode and Message describe the last failed attempt, if any.
	DeclineCode string `json:"decline_code,omitempty"`
	Message     string `json:"message,omitempty"`
}

// RetrievePaymentIntent reads a PaymentIntent; an unknown id is an
// *APIError matching ErrNotFound.
func (c *Client) RetrievePaymentIntent(ctx context.Context, id string) (PaymentIntent, error) {
	if strings.TrimSpace(id) == "" {
		return PaymentIntent{}, &models.ValidationError{Field: "payment_intent_id", Reason: "must not be empty"}
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripe.PaymentIntentParams{}
	params.Context = ctx
	pi, err := c.api.PaymentIntents.Get(id, params)
	if err != nil {
		return PaymentIntent{}, c.apiErr("retrieve payment intent", err)
	}
	return summarise(pi, c.apiKey), nil
}

// summarise maps a stripe-go PaymentIntent to the rail's summary; apiKey
// (possibly empty) is redacted from Stripe's messages.
func summarise(pi *stripe.PaymentIntent, apiKey string) PaymentIntent {
	out := PaymentIntent{
		ID: pi.ID, Status: string(pi.Status), AmountMinor: pi.Amount, AmountReceived: pi.AmountReceived,
		Currency: string(pi.Currency), InvoiceID: pi.Metadata["invoice_id"], Created: time.Unix(pi.Created, 0).UTC(),
	}
	if pi.Customer != nil {
		out.CustomerID = pi.Customer.ID
	}
	if pi.PaymentMethod != nil {
		out.PaymentMethodID = pi.PaymentMethod.ID
	}
	if e := pi.LastPaymentError; e != nil {
		out.DeclineCode, out.Message = declineCode(e), redact(e.Msg, apiKey)
	}
	out.Outcome = classify(pi)
	return out
}

// classify maps a PaymentIntent's status to an Outcome.
func classify(pi *stripe.PaymentIntent) Outcome {
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		return OutcomeSucceeded
	case stripe.PaymentIntentStatusProcessing:
		return OutcomeProcessing
	case stripe.PaymentIntentStatusRequiresAction:
		return OutcomeAuthenticationRequired
	case stripe.PaymentIntentStatusCanceled:
		return OutcomeCanceled
	case stripe.PaymentIntentStatusRequiresPaymentMethod:
		if e := pi.LastPaymentError; e != nil {
			if isAuthenticationRequired(e) {
				return OutcomeAuthenticationRequired
			}
			return OutcomeDeclined
		}
	}
	return OutcomeIncomplete
}
