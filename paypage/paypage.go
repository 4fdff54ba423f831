// Package paypage serves billflow's hosted pages, mounted by the api:
//
//	GET  /pay/{token}          an invoice: amount, items, due status; while
//	                           payable a BOLT11 QR code with copy button and
//	                           lightning: link, and "pay by card"
//	GET  /pay/{token}/status   the invoice's status as a tiny JSON document,
//	                           polled by the page every second
//	POST /pay/{token}/card     charges the tenant's saved card (idempotent)
//	GET  /account/{token}      a tenant's standing and invoices
//	GET  /page-assets/{file}   the pages' stylesheet and script
//
// Tokens are capabilities minted by package links; a wrong, revoked or
// malformed token is 404, whatever else is wrong. Pages are server-rendered
// with html/template; the only script is page.js (live status and the copy
// button), served from the same origin so the Content-Security-Policy
// allows no inline script at all. Every answer carries the security headers
// (CSP with frame-ancestors 'none', Referrer-Policy no-referrer,
// X-Content-Type-Options nosniff), and requests are rate limited per token
// and per client address (429).
//
// The page shows what a payer needs and nothing else: no secret, no other
// tenant's data, no payment-method details beyond "a saved card".
package paypage

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/rails/card"
	"github.com/billflow/billflow/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
	"time": func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).ParseFS(templateFS, "templates/*.html"))

// Server serves the pages.
type Server struct {
	Links *links.Issuer
	Store *store.Store
	// Billing reaches the invoice's workflow: its lightning-invoice update
	// issues (or reuses) the BOLT11 through the cascade's own ensure path,
	// and money a page charge collected is reported to it.
	Billing *billing.Client
	// Cards is the card rail; nil means "pay by card" is not offered.
	Cards  card.Charger
	Logger *slog.Logger
	// Limits are the rate limits; zero means DefaultLimits.
	Limits Limits
	// Now is the clock; tests replace it.
	Now func() time.Time

	limiter *limiter
}

// Mount adds the pages' routes to mux.
func (s *Server) Mount(mux *http.ServeMux) {
	s.limiter = newLimiter(s.Limits)
	mux.Handle("GET /pay/{token}", s.guard(s.invoicePage, false))
	mux.Handle("GET /pay/{token}/status", s.guard(s.invoiceStatus, true))
	mux.Handle("POST /pay/{token}/card", s.guard(s.payByCard, false))
	mux.Handle("GET /account/{token}", s.guard(s.accountPage, false))
	assets, _ := fs.Sub(assetFS, "assets")
	mux.Handle("GET /page-assets/", secured(http.StripPrefix("/page-assets/", http.FileServerFS(assets))))
	// Browsers ask for it on every page; the pages link page-assets/icon.svg,
	// but an old browser asking here gets an empty answer, not a logged 404.
	mux.Handle("GET /favicon.ico", secured(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))
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

// csp allows this origin's stylesheet, script and fetches, the QR code as a
// data: image, and nothing else: no inline script, no framing, forms posting
// only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// secured sets the security headers on every answer.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/page-assets/") {
			hd.Set("Cache-Control", "public, max-age=300")
		} else {
			// A page names an invoice behind a capability: keep it out of
			// shared caches and the browser's disk cache.
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// guard applies the headers and rate limits, then resolves nothing: the
// handler resolves its own token kind.
func (s *Server) guard(h func(http.ResponseWriter, *http.Request), asJSON bool) http.Handler {
	return secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.limiter.allow(r.PathValue("token"), clientAddr(r), s.now()) {
			w.Header().Set("Retry-After", "1")
			s.logger().Info("rate limited page request", "path", RedactPath(r.URL.Path), "addr", clientAddr(r))
			if asJSON {
				writeJSONError(w, http.StatusTooManyRequests, "rate_limited", "too many requests; retry in a second")
			} else {
				s.errorPage(w, http.StatusTooManyRequests, "Too many requests", "Please wait a moment and reload the page.")
			}
			return
		}
		h(w, r)
	}))
}

// clientAddr is the connection's address: forwarded headers are not
// trusted, since anyone can send them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RedactPath keeps a page token out of the logs: a logged link would be a
// working capability for whoever reads them. Other paths are returned as
// they are.
func RedactPath(p string) string {
	if !strings.HasPrefix(p, "/pay/") && !strings.HasPrefix(p, "/account/") {
		return p
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if len(part) >= 16 {
			parts[i] = part[:4] + "…"
		}
	}
	return strings.Join(parts, "/")
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorView struct {
	Title, Message string
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error.html", errorView{Title: title, Message: msg})
}

func (s *Server) notFound(w http.ResponseWriter) {
	s.errorPage(w, http.StatusNotFound, "Page not found", "This link is not valid, or it was revoked. Ask for a new link.")
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		s.logger().Error("render page", "template", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail answers an unexpected error without detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, asJSON bool) {
	s.logger().Error("page request failed", "path", RedactPath(r.URL.Path), "error", err)
	if asJSON {
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "billflow is unavailable; retry later")
		return
	}
	s.errorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "Please try again in a minute.")
}

// invoiceFor resolves an invoice token; ok is false when the answer (404
// or an error) was written.
func (s *Server) invoiceFor(w http.ResponseWriter, r *http.Request, asJSON bool) (store.Invoice, []store.Item, bool) {
	id, err := s.Links.Resolve(r.Context(), store.PageInvoice, r.PathValue("token"))
	if err == nil {
		var inv store.Invoice
		var items []store.Item
		inv, items, err = s.Store.GetInvoice(r.Context(), id)
		if err == nil {
			return inv, items, true
		}
	}
	if errors.Is(err, links.ErrUnknownToken) || errors.Is(err, store.ErrNotFound) {
		if asJSON {
			writeJSONError(w, http.StatusNotFound, "not_found", "no such page")
		} else {
			s.notFound(w)
		}
		return store.Invoice{}, nil, false
	}
	s.fail(w, r, err, asJSON)
	return store.Invoice{}, nil, false
}

// statusLabels are the due statuses as the payer reads them.
var statusLabels = map[string]string{
	store.InvoiceOpen: "Open", store.InvoiceCollecting: "Collecting", store.InvoiceAwaitingPayment: "Awaiting payment",
	store.InvoicePaid: "Paid", store.InvoiceVoid: "Void", store.InvoiceUncollectible: "Uncollectible",
}

func statusLabel(s string) string {
	if l, ok := statusLabels[s]; ok {
		return l
	}
	return s
}

// payable reports whether an invoice still takes money from its page.
func payable(inv store.Invoice) bool {
	switch inv.Status {
	case store.InvoiceOpen, store.InvoiceCollecting, store.InvoiceAwaitingPayment:
		return inv.Due() > 0
	}
	return false
}

// shortRef shortens a payment reference (a payment hash, a PaymentIntent
// id) for display.
func shortRef(s string) string {
	if len(s) <= 16 {
		return s
	}
	return s[:10] + "…" + s[len(s)-4:]
}

// railLabels name the rails for payers.
var railLabels = map[string]string{
	store.RailNWC: "Lightning (wallet connection)", store.RailLightning: "Lightning", store.RailOOB: "Lightning",
	store.RailStripe: "Card", store.RailManual: "Manual payment",
}

func railLabel(r string) string {
	if l, ok := railLabels[r]; ok {
		return l
	}
	return r
}

// Status is the JSON of GET /pay/{token}/status: what the page shows,
// nothing more.
type Status struct {
	Status      string     `json:"status"`
	StatusLabel string     `json:"status_label"`
	Payable     bool       `json:"payable"`
	Total       string     `json:"total"`
	Due         string     `json:"due"`
	Rail        string     `json:"rail,omitempty"`
	Reference   string     `json:"reference,omitempty"`
	PaidAt      *time.Time `json:"paid_at,omitempty"`
	PaidAtText  string     `json:"paid_at_text,omitempty"`
}

func statusOf(inv store.Invoice) Status {
	st := Status{Status: inv.Status, StatusLabel: statusLabel(inv.Status), Payable: payable(inv),
		Total: models.FormatAmount(inv.Total, inv.Currency), Due: models.FormatAmount(max(inv.Due(), 0), inv.Currency)}
	if inv.Status == store.InvoicePaid {
		st.Rail, st.Reference, st.PaidAt = railLabel(inv.PaidRail), shortRef(inv.PaidReference), inv.PaidAt
		if inv.PaidAt != nil {
			st.PaidAtText = inv.PaidAt.UTC().Format("2 Jan 2006 15:04 UTC")
		}
	}
	return st
}

func (s *Server) invoiceStatus(w http.ResponseWriter, r *http.Request) {
	inv, _, ok := s.invoiceFor(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, statusOf(inv))
}

// lightningView is the BOLT11 block of a payable invoice.
type lightningView struct {
	PaymentRequest string
	// QRPayload is exactly what the QR code encodes (the page's
	// data-qr-payload): the BIP-21 style "LIGHTNING:<BOLT11>" in upper
	// case, which QR codes store in their compact alphanumeric mode.
	QRPayload string
	QRDataURI template.URL
	Sats      string
	ExpiresAt time.Time
}

type itemView struct {
	Description string
	PeriodStart time.Time
	Amount      string
}

type invoiceView struct {
	ID          string
	Token       string
	Status      Status
	PeriodStart time.Time
	PeriodEnd   time.Time
	Items       []itemView
	PartlyPaid  bool
	AmountPaid  string
	Lightning   *lightningView
	// LightningURI is the lightning: link of Lightning's BOLT11.
	LightningURI template.URL
	// LightningNote says why there is no QR code on a payable invoice.
	LightningNote string
	CardOffered   bool
	HasCard       bool
	// CardMessage is the outcome of a "pay by card" click (fixed texts).
	CardMessage string
	CardError   bool
}

// cardMessages are the answers to a "pay by card" click, chosen by the
// ?card= parameter of the redirect (never echoed as given).
var cardMessages = map[string]struct {
	text string
	bad  bool
}{
	"succeeded":  {"Your card was charged. This page turns to Paid in a moment.", false},
	"processing": {"Your card payment is processing. This page turns to Paid once your bank confirms it.", false},
	"declined":   {"Your card was declined. Try again later, use another card, or pay with Lightning.", true},
	"auth":       {"Your bank wants to confirm this payment with you, which this page cannot do. Pay with Lightning, or contact the service.", true},
	"nocard":     {"No card is saved for this account.", true},
	"pending":    {"A card payment for this invoice is already being processed.", false},
	"retry":      {"The card payment could not be completed right now. Please try again in a minute.", true},
	"failed":     {"The card payment was refused. Pay with Lightning, or contact the service.", true},
	"closed":     {"This invoice no longer takes payments.", false},
}

func (s *Server) invoicePage(w http.ResponseWriter, r *http.Request) {
	inv, items, ok := s.invoiceFor(w, r, false)
	if !ok {
		return
	}
	v := invoiceView{ID: inv.ID, Token: r.PathValue("token"), Status: statusOf(inv), PeriodStart: inv.PeriodStart, PeriodEnd: inv.PeriodEnd,
		PartlyPaid: inv.AmountPaid > 0 && inv.Status != store.InvoicePaid, AmountPaid: models.FormatAmount(inv.AmountPaid, inv.Currency)}
	for _, it := range items {
		v.Items = append(v.Items, itemView{Description: it.Description, PeriodStart: it.PeriodStart, Amount: models.FormatAmount(it.Amount, it.Currency)})
	}
	if m, ok := cardMessages[r.URL.Query().Get("card")]; ok {
		v.CardMessage, v.CardError = m.text, m.bad
	}
	if v.Status.Payable {
		v.Lightning, v.LightningNote = s.lightning(r.Context(), inv)
		if v.Lightning != nil {
			// A BOLT11 is bech32 (checked below), so the link needs no
			// escaping; html/template would otherwise refuse the scheme.
			v.LightningURI = template.URL("lightning:" + v.Lightning.PaymentRequest)
		}
		v.CardOffered = s.Cards != nil
		if v.CardOffered {
			methods, err := s.Store.GetPaymentMethods(r.Context(), inv.TenantID)
			if err != nil {
				s.fail(w, r, err, false)
				return
			}
			v.HasCard = methods.StripeCustomerID != ""
		}
	}
	s.render(w, http.StatusOK, "invoice.html", v)
}

// lightning asks the invoice's workflow for its payable BOLT11: the
// workflow's lightning-invoice update runs the cascade's own ensure path,
// which reuses the live BOLT11 or replaces an expired one (the store's
// partial UNIQUE index keeps one payable BOLT11 per invoice), and checks the
// node first so a BOLT11 paid meanwhile is not shown again.
func (s *Server) lightning(ctx context.Context, inv store.Invoice) (*lightningView, string) {
	if s.Billing == nil {
		return nil, "Lightning payment is not available here."
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	li, err := s.Billing.LightningInvoice(ctx, inv.ID)
	if err != nil {
		s.logger().Warn("no lightning invoice for the page", "invoice", inv.ID, "error", err)
		return nil, "Lightning payment is not available for this invoice right now."
	}
	if li.Settled {
		return nil, "A Lightning payment was received; confirming it."
	}
	if !bolt11Shape.MatchString(li.PaymentRequest) {
		s.logger().Error("the node's BOLT11 has an unexpected shape", "invoice", inv.ID)
		return nil, "Lightning payment is not available for this invoice right now."
	}
	payload := "LIGHTNING:" + strings.ToUpper(li.PaymentRequest)
	png, err := qrcode.Encode(payload, qrcode.Medium, 320)
	if err != nil {
		s.logger().Error("encode QR code", "invoice", inv.ID, "error", err)
		return nil, "Lightning payment is not available for this invoice right now."
	}
	return &lightningView{PaymentRequest: li.PaymentRequest, QRPayload: payload,
		QRDataURI: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
		Sats:      formatSats(li.AmountMsat), ExpiresAt: li.ExpiresAt}, ""
}

// bolt11Shape is a BOLT11's character set: a human-readable part starting
// "ln" and bech32 data, lower case.
var bolt11Shape = regexp.MustCompile(`^ln[a-z0-9]+1[02-9ac-hj-np-z]+$`)

// formatSats shows msat as whole sats, with the msat remainder when there
// is one.
func formatSats(msat int64) string {
	if msat%1000 == 0 {
		return fmt.Sprintf("%d sats", msat/1000)
	}
	return fmt.Sprintf("%d.%03d sats", msat/1000, msat%1000)
}

// sameOrigin refuses a form post from another site: the token is a
// capability, but a page elsewhere must not make a payer's browser charge
// their card. Browsers say where a request comes from in Sec-Fetch-Site;
// the Origin header cannot decide alone, since under Referrer-Policy
// no-referrer a same-origin form post carries "Origin: null".
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Browsers send Origin on every cross-site POST; a missing one is a
		// non-browser client holding the token.
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && origin != "null" && u.Host == r.Host
}

// pageChargeAttempt offsets page charges in card_payments, so reconciliation
// and `invoice show` see them next to the cascade's attempts (1, 2, ...)
// without colliding with their numbers.
const pageChargeAttempt = 1000

func (s *Server) payByCard(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.logger().Warn("refused cross-origin card payment", "origin", r.Header.Get("Origin"))
		s.errorPage(w, http.StatusForbidden, "Refused", "This payment must be made from the invoice's own page.")
		return
	}
	inv, _, ok := s.invoiceFor(w, r, false)
	if !ok {
		return
	}
	back := func(outcome string) {
		http.Redirect(w, r, "/pay/"+r.PathValue("token")+"?card="+outcome, http.StatusSeeOther)
	}
	if !payable(inv) {
		back("closed")
		return
	}
	if s.Cards == nil {
		back("failed")
		return
	}
	ctx := r.Context()
	methods, err := s.Store.GetPaymentMethods(ctx, inv.TenantID)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	if methods.StripeCustomerID == "" {
		back("nocard")
		return
	}
	// The cascade's own charge may be in flight (processing, or succeeded
	// and not yet settled): charging again would take the money twice.
	charges, err := s.Store.CardPayments(ctx, inv.ID)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	for _, c := range charges {
		if c.Attempt < pageChargeAttempt && (c.Outcome == string(card.OutcomeProcessing) || c.Outcome == string(card.OutcomeSucceeded)) {
			back("pending")
			return
		}
	}
	pc, err := s.Store.ReservePageCharge(ctx, inv.ID)
	if errors.Is(err, store.ErrInvoiceClosed) {
		back("closed")
		return
	}
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	pm, found, err := s.Cards.DefaultPaymentMethod(ctx, methods.StripeCustomerID)
	if err != nil {
		s.logger().Warn("page card payment: no payment method", "invoice", inv.ID, "error", err)
		back("retry")
		return
	}
	if !found {
		back("nocard")
		return
	}
	res, err := s.Cards.ChargeOffSession(ctx, card.ChargeRequest{CustomerID: methods.StripeCustomerID, PaymentMethodID: pm,
		AmountMinor: pc.Amount, Currency: string(pc.Currency), InvoiceID: inv.ID, IdempotencyKey: pc.IdempotencyKey})
	var retry *card.RetryableError
	switch {
	case errors.As(err, &retry):
		// Outcome unknown: the reservation keeps its key, so the next click
		// replays this charge instead of making another.
		s.logger().Warn("page card payment: outcome unknown", "invoice", inv.ID, "key", pc.IdempotencyKey, "error", err)
		back("retry")
		return
	case err != nil:
		s.logger().Warn("page card payment refused", "invoice", inv.ID, "key", pc.IdempotencyKey, "error", err)
		if err := s.Store.FinishPageCharge(ctx, inv.ID, pc.N, "", "failed"); err != nil {
			s.fail(w, r, err, false)
			return
		}
		back("failed")
		return
	}
	if res.PaymentIntentID != "" {
		if err := s.Store.RecordCardPayment(ctx, store.CardPayment{PaymentIntentID: res.PaymentIntentID, InvoiceID: inv.ID, IdempotencyKey: pc.IdempotencyKey,
			Attempt: pageChargeAttempt + pc.N, Amount: pc.Amount, Currency: pc.Currency, Status: res.Status, Outcome: string(res.Outcome), DeclineCode: res.DeclineCode}); err != nil {
			s.fail(w, r, err, false)
			return
		}
	}
	if err := s.Store.FinishPageCharge(ctx, inv.ID, pc.N, res.PaymentIntentID, string(res.Outcome)); err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.logger().Info("page card payment", "invoice", inv.ID, "key", pc.IdempotencyKey, "outcome", res.Outcome, "replayed", res.Replayed)
	switch res.Outcome {
	case card.OutcomeSucceeded:
		// Settled like every payment: the invoice's workflow records it
		// through store.Settle (Stripe's webhook reports the same
		// PaymentIntent too; the money is recorded once, by its reference).
		err := s.Billing.ReportPayment(ctx, inv.ID, billing.PaymentReport{Rail: store.RailStripe, Reference: res.PaymentIntentID,
			Amount: pc.Amount, Currency: string(pc.Currency)})
		if err != nil {
			s.logger().Warn("page card payment: report to the workflow failed; the webhook or reconciliation settles it", "invoice", inv.ID, "error", err)
		}
		back("succeeded")
	case card.OutcomeProcessing:
		back("processing")
	case card.OutcomeAuthenticationRequired:
		back("auth")
	default:
		back("declined")
	}
}

// accountView is the account page.
type accountView struct {
	Tenant       string
	Status       string
	StatusLabel  string
	GraceEnds    *time.Time
	SuspendedAt  *time.Time
	BannedUntil  *time.Time
	Open, Recent []accountInvoice
}

type accountInvoice struct {
	ID          string
	URL         string
	Total       string
	Due         string
	Status      string
	StatusLabel string
	Created     time.Time
}

// recentInvoices bounds the closed invoices an account page lists.
const recentInvoices = 10

var tenantLabels = map[string]string{store.TenantActive: "Active", store.TenantGrace: "Grace period", store.TenantSuspended: "Suspended"}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sub, err := s.Links.Resolve(ctx, store.PageAccount, r.PathValue("token"))
	if errors.Is(err, links.ErrUnknownToken) {
		s.notFound(w)
		return
	}
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	tenant := models.TenantID(sub)
	g, err := s.Store.GetGraceState(ctx, tenant)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	invoices, err := s.Store.ListInvoices(ctx, tenant)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	v := accountView{Tenant: tenant.Short(), Status: g.Status, StatusLabel: tenantLabels[g.Status], SuspendedAt: g.SuspendedAt}
	if g.Status == store.TenantGrace {
		v.GraceEnds = g.GraceExpiresAt
	}
	if g.Banned(s.now()) {
		v.BannedUntil = g.BannedUntil
	}
	for _, inv := range invoices {
		if !payable(inv) && len(v.Recent) >= recentInvoices {
			continue
		}
		u, err := s.Links.InvoiceURL(ctx, inv.ID)
		if err != nil {
			s.fail(w, r, err, false)
			return
		}
		ai := accountInvoice{ID: inv.ID, URL: u, Total: models.FormatAmount(inv.Total, inv.Currency), Due: models.FormatAmount(max(inv.Due(), 0), inv.Currency),
			Status: inv.Status, StatusLabel: statusLabel(inv.Status), Created: inv.CreatedAt}
		if payable(inv) {
			v.Open = append(v.Open, ai)
		} else {
			v.Recent = append(v.Recent, ai)
		}
	}
	s.render(w, http.StatusOK, "account.html", v)
}

// FromConfig builds the pages from the api's configuration: nil when
// BILLFLOW_PUBLIC_URL is unset (the pages are off), with the card rail when
// BILLFLOW_STRIPE_API_KEY is set.
func FromConfig(cfg config.API, st *store.Store, bc *billing.Client, logger *slog.Logger) (*Server, error) {
	if cfg.PublicURL == "" {
		return nil, nil
	}
	li, err := links.New(st, cfg.SecretKey, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Server{Links: li, Store: st, Billing: bc, Logger: logger}
	if cfg.StripeAPIKey != "" {
		cc, err := card.New(card.Config{APIKey: cfg.StripeAPIKey, BackendURL: cfg.StripeAPIURL})
		if err != nil {
			return nil, fmt.Errorf("card rail (BILLFLOW_STRIPE_*): %w", err)
		}
		s.Cards = cc
	}
	logger.Info("hosted pages on", "base", li.Base(), "card", s.Cards != nil)
	return s, nil
}
