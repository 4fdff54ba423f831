// Package api is billflow's HTTP ingress: the Stripe webhook endpoint and the
// application endpoints that wrap the billing package, so services not
// written in Go can signal billflow's workflows too.
//
//	POST /v1/tenants/{tenant}/activities   record an activity (JSON body; an unknown
//	                                       tenant is 404 unless "create_tenant": true)
//	GET  /v1/tenants/{tenant}              a tenant's billing state
//	POST /v1/invoices/{invoice}/payments   report a payment {rail, reference}
//	/v1/tenants/{tenant}/wallet...         a tenant's wallet (api/wallet.go)
//	/v1/usage/sessions...                  metered usage sessions (api/usage.go)
//	POST /webhooks/stripe                  Stripe events (Stripe-Signature)
//	GET  /healthz                          readiness: Postgres and Temporal reachable
//	GET  /metrics                          Prometheus metrics
//	GET  /pay/{token}, /account/{token}    hosted invoice and account pages
//	                                       (package paypage), when configured
//	POST /codecs/{encode,decode}           the payload codec for the Temporal Web UI
//	                                       and CLI (api/codec.go), when payloads are encrypted
//
// Application endpoints need "Authorization: Bearer <BILLFLOW_API_TOKEN>".
// Every error, including an unknown path (404), a wrong method (405) and an
// oversized body (413), is the JSON errorBody.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/paypage"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/store"
)

// maxBody bounds request bodies; billflow's requests are small, and Stripe's
// events are well under it.
const maxBody = 1 << 20

// errTooLarge is a body over maxBody.
var errTooLarge = fmt.Errorf("request body is larger than %d bytes", maxBody)

// Server serves the HTTP ingress.
type Server struct {
	Billing *billing.Client
	Store   *store.Store
	// Token authenticates application requests.
	Token string
	// StripeWebhookSecret verifies Stripe's deliveries (whsec_...).
	StripeWebhookSecret string
	Logger              *slog.Logger
	// Now is the clock for webhook tolerance; tests replace it.
	Now func() time.Time
	// Checks are what /healthz reports (metrics.Readiness: Postgres and
	// Temporal); none means always ready.
	Checks []metrics.Check
	// Metrics serves GET /metrics when set.
	Metrics http.Handler
	// Pages are the hosted invoice and account pages, when configured.
	Pages *paypage.Server
	// WalletMaxAge is how old a synced balance GET .../wallet answers
	// without syncing first (0: contract.DefaultBalanceMaxAge).
	WalletMaxAge time.Duration
	// PayloadCodec, when set, is served at /codecs/ (the Temporal codec
	// server protocol) so the Web UI and the temporal CLI can read the
	// encrypted payloads; CodecToken and CodecOrigins are its authorization
	// and CORS origins (mountCodec).
	PayloadCodec converter.PayloadCodec
	CodecToken   string
	CodecOrigins []string
	// Pool is the free-tier pool's configuration (BILLFLOW_POOL) that tiers
	// and dry-run decisions are computed with; nil: models.DefaultPoolConfig.
	Pool *models.PoolConfig
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tenants/{tenant}/activities", s.app(s.recordActivity))
	mux.HandleFunc("GET /v1/tenants/{tenant}", s.app(s.tenant))
	mux.HandleFunc("POST /v1/invoices/{invoice}/payments", s.app(s.reportPayment))
	mux.HandleFunc("POST /v1/invoices/{invoice}/close", s.app(s.closeInvoice))
	mux.HandleFunc("POST /v1/invoices/{invoice}/lightning", s.app(s.lightningInvoice))
	s.mountWallet(mux)
	s.mountUsage(mux)
	s.mountCodec(mux)
	s.mountPool(mux)
	mux.HandleFunc("POST /webhooks/stripe", s.stripeWebhook)
	mux.Handle("GET /healthz", metrics.Health(5*time.Second, s.Checks...))
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	if s.Pages != nil {
		s.Pages.Mount(mux)
	}
	return s.routed(mux)
}

// methods are those a request is tried with to tell a wrong method (405)
// from an unknown path (404).
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// routed answers requests no route takes with the JSON error shape: Go's
// ServeMux would answer them in plain text.
func (s *Server) routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allowed []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" {
				allowed = append(allowed, m)
			}
		}
		s.logger().Info("rejected request", "method", r.Method, "path", paypage.RedactPath(r.URL.Path), "allowed", allowed)
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")), "")
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path), "")
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// app wraps an application endpoint with bearer-token authentication.
func (s *Server) app(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.Token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token", "")
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}
}

// errorBody is every error response's shape; Code is a usage session's
// error code (error "usage_error").
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, errorBody{Error: code, Message: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail maps billing's typed errors to HTTP: bad input is 400, unknown 404,
// closed 409, a usage session's refusal 4xx by its code (UsageErrorStatus),
// anything transient 503 so the caller retries.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ve *models.ValidationError
	var ue *billing.UnavailableError
	switch {
	case errors.Is(err, errTooLarge):
		s.logger().Info("rejected request", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error(), "body")
	case errors.As(err, &ve):
		s.logger().Info("rejected request", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadRequest, "invalid", ve.Error(), ve.Field)
	case isUsageError(err):
		ue, _ := asUsageError(err)
		s.logger().Info("usage session refused", "path", r.URL.Path, "code", ue.Code, "error", ue.Message)
		writeJSON(w, UsageErrorStatus(ue.Code), errorBody{Error: "usage_error", Code: string(ue.Code), Message: ue.Error()})
	case errors.Is(err, billing.ErrTenantNotFound), errors.Is(err, billing.ErrInvoiceNotFound), errors.Is(err, billing.ErrUsageSessionNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error(), "")
	case errors.Is(err, billing.ErrInvoiceClosed):
		writeError(w, http.StatusConflict, "invoice_closed", err.Error(), "")
	case errors.As(err, &ue), errors.Is(err, context.DeadlineExceeded):
		s.logger().Warn("billflow unavailable", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "billflow is unavailable; retry later", "")
	default:
		s.logger().Error("request failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
	}
}

// decode reads a JSON body strictly, so misspelt fields are reported. A body
// over maxBody is refused whole (413), never cut to fit.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if tooLarge(err) {
			return errTooLarge
		}
		return &models.ValidationError{Field: "body", Reason: "not valid JSON for this endpoint: " + err.Error()}
	}
	// Anything after the JSON value is a second value, or more of the body
	// than the limit allows.
	var extra json.RawMessage
	if err := dec.Decode(&extra); tooLarge(err) {
		return errTooLarge
	} else if err != io.EOF {
		return &models.ValidationError{Field: "body", Reason: "not valid JSON for this endpoint: more than one JSON value"}
	}
	return nil
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// activityBody is the record-activity request.
type activityBody struct {
	ID         string              `json:"id"`
	Type       models.ActivityType `json:"type"`
	ResourceID string              `json:"resource_id"`
	PlanID     string              `json:"plan_id,omitempty"`
	CreatedAt  *time.Time          `json:"created_at,omitempty"`
	// CreateTenant creates an unknown tenant (usd, calendar months) instead
	// of answering 404.
	CreateTenant bool `json:"create_tenant,omitempty"`
}

func (s *Server) recordActivity(w http.ResponseWriter, r *http.Request) error {
	var body activityBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	act := billing.Activity{ID: body.ID, Type: body.Type, ResourceID: body.ResourceID, PlanID: body.PlanID, CreateTenant: body.CreateTenant}
	if body.CreatedAt != nil {
		act.CreatedAt = *body.CreatedAt
	}
	res, err := s.Billing.RecordActivity(r.Context(), r.PathValue("tenant"), act)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) tenant(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Billing.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	if err := FreshenTenantState(r.Context(), s.Store, &st); err != nil {
		return &billing.UnavailableError{Err: err}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// paymentBody is the report-payment request.
type paymentBody struct {
	Rail      string `json:"rail"`
	Reference string `json:"reference"`
	// Amount (minor units) with Currency, or AmountMsat: what was received.
	// Omitted, the report stands for the full amount still due.
	Amount     int64  `json:"amount,omitempty"`
	Currency   string `json:"currency,omitempty"`
	AmountMsat int64  `json:"amount_msat,omitempty"`
}

func (s *Server) reportPayment(w http.ResponseWriter, r *http.Request) error {
	var body paymentBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	res, err := s.Billing.RecordPayment(r.Context(), r.PathValue("invoice"), billing.PaymentReport{Rail: body.Rail, Reference: body.Reference,
		Amount: body.Amount, Currency: body.Currency, AmountMsat: body.AmountMsat})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// lightningInvoice returns a payable BOLT11 for the invoice.
func (s *Server) lightningInvoice(w http.ResponseWriter, r *http.Request) error {
	li, err := s.Billing.LightningInvoice(r.Context(), r.PathValue("invoice"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, li)
	return nil
}

type closeBody struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// closeInvoice voids an invoice or writes it off.
func (s *Server) closeInvoice(w http.ResponseWriter, r *http.Request) error {
	var body closeBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	res, err := s.Billing.CloseInvoice(r.Context(), r.PathValue("invoice"), body.Status, body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// stripeWebhook verifies a delivery on its raw body, acts on it, then
// records its event id. Acting comes first: settlement is idempotent, so a
// redelivery after a failure to record is harmless, whereas recording first
// would turn a failure to act into a lost payment. A failure answers 5xx so
// Stripe delivers again.
func (s *Server) stripeWebhook(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if tooLarge(err) {
		s.fail(w, r, errTooLarge)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "unreadable body", "")
		return
	}
	ev, err := card.VerifyWebhook(payload, r.Header.Get("Stripe-Signature"), s.StripeWebhookSecret, s.now())
	if err != nil {
		status, code := webhookRejection(err)
		s.logger().Warn("rejected stripe webhook", "code", code, "error", err)
		writeError(w, status, code, err.Error(), "")
		return
	}
	ctx := r.Context()
	if _, err := s.Store.GetStripeEvent(ctx, ev.ID); err == nil {
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "duplicate": true})
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, &billing.UnavailableError{Err: err})
		return
	}
	rec := store.StripeEvent{ID: ev.ID, Type: ev.Type, Payload: ev.Payload}
	if pi := ev.PaymentIntent; pi != nil {
		rec.PaymentIntentID, rec.InvoiceID = pi.ID, pi.InvoiceID
		if ev.Type == card.EventPaymentIntentSucceeded && pi.InvoiceID != "" {
			if err := s.settleFromStripe(ctx, ev.ID, pi); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if ev.Type == card.EventPaymentIntentPaymentFailed && pi.InvoiceID != "" {
			reason := pi.DeclineCode
			if pi.Message != "" {
				reason = strings.TrimSpace(reason + " " + pi.Message)
			}
			err := s.Billing.ReportCardFailed(ctx, pi.InvoiceID, pi.ID, reason)
			if err != nil && !errors.Is(err, activities.ErrWorkflowGone) {
				s.fail(w, r, err)
				return
			}
		}
	}
	if _, err := s.Store.RecordStripeEvent(ctx, rec); err != nil {
		s.fail(w, r, &billing.UnavailableError{Err: err})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": true})
}

// webhookRejection maps a refused delivery to its answer, so an operator
// reading Stripe's dashboard sees what is wrong: a signature that does not
// match is not the same fix as an endpoint pinned to another API version.
// A missing secret answers 503, so Stripe keeps the events for redelivery
// once the api is configured.
func webhookRejection(err error) (int, string) {
	switch {
	case errors.Is(err, card.ErrWebhookNoSecret):
		return http.StatusServiceUnavailable, "webhook_not_configured"
	case errors.Is(err, card.ErrWebhookAPIVersion):
		return http.StatusBadRequest, "api_version_mismatch"
	case errors.Is(err, card.ErrWebhookTooOld), errors.Is(err, card.ErrWebhookFromFuture):
		return http.StatusBadRequest, "timestamp_out_of_tolerance"
	case errors.Is(err, card.ErrWebhookMalformed):
		return http.StatusBadRequest, "malformed_webhook"
	default:
		return http.StatusBadRequest, "invalid_signature"
	}
}

// settleFromStripe reports a succeeded PaymentIntent to its invoice's
// workflow with the amount and currency Stripe received, like any payment:
// the settlement (store.Settle) decides whether it pays the invoice, pays
// part of it, overpays it or is money in the wrong currency to refund. An
// unknown invoice is logged for an operator, not retried: redelivery would
// not change it.
func (s *Server) settleFromStripe(ctx context.Context, eventID string, pi *card.PaymentIntent) error {
	inv, _, err := s.Store.GetInvoice(ctx, pi.InvoiceID)
	if errors.Is(err, store.ErrNotFound) {
		s.logger().Error("stripe payment for an unknown invoice", "event", eventID, "payment_intent", pi.ID, "invoice", pi.InvoiceID)
		return nil
	}
	if err != nil {
		return &billing.UnavailableError{Err: err}
	}
	if pi.AmountReceived <= 0 {
		// A report without an amount would vouch for the amount due; Stripe
		// saying nothing was received vouches for nothing.
		s.logger().Warn("stripe payment succeeded with nothing received; not settled", "event", eventID, "payment_intent", pi.ID, "invoice", inv.ID)
		return nil
	}
	if inv.Status == store.InvoicePaid && inv.PaidRail == store.RailStripe && inv.PaidReference == pi.ID {
		// This very charge paid the invoice and is recorded (the card rail
		// settled it): a report would carry nothing new to a workflow that
		// already knows, or start a run only to find a duplicate.
		return nil
	}
	if pi.AmountReceived != inv.Due() || !strings.EqualFold(pi.Currency, string(inv.Currency)) {
		s.logger().Warn("stripe payment does not match the amount due; settling what was received", "event", eventID, "payment_intent", pi.ID,
			"invoice", inv.ID, "received", pi.AmountReceived, "currency", pi.Currency, "due", inv.Due(), "invoice_currency", inv.Currency)
	}
	// Signal-with-start: a finished workflow gets a new run that records the
	// money (an overpayment when the invoice is already paid or closed).
	return s.Billing.ReportPayment(ctx, inv.ID, activities.PaymentReport{Rail: store.RailStripe, Reference: pi.ID,
		Amount: pi.AmountReceived, Currency: pi.Currency})
}

// FreshenTenantState replaces what a tenant's workflow remembers of its
// standing, its outstanding total and its open invoices with Postgres' rows,
// the system of record: the workflow keeps each invoice as it was when
// claimed, so without this `tenant show` and `invoice list` would disagree
// about an invoice that has moved on (awaiting_payment, paid).
func FreshenTenantState(ctx context.Context, st *store.Store, state *billing.TenantState) error {
	t, err := st.GetTenant(ctx, state.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	state.Status = t.Status
	// Items written outside the tenant's workflow (a restore after
	// suspension) are outstanding too: the store knows, the workflow may not yet.
	if state.Outstanding, err = st.Outstanding(ctx, t.ID); err != nil {
		return err
	}
	invoices, err := st.OpenInvoices(ctx, t.ID)
	if err != nil {
		return err
	}
	state.OpenInvoices = state.OpenInvoices[:0]
	for _, inv := range invoices {
		state.OpenInvoices = append(state.OpenInvoices, contract.InvoiceRef{ID: inv.ID, TenantID: inv.TenantID, Total: inv.Total,
			Currency: inv.Currency, Status: inv.Status, CreatedAt: inv.CreatedAt, PaidRail: inv.PaidRail})
	}
	return nil
}
