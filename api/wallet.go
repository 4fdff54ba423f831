package api

// Wallet endpoints (issue 9), all under the bearer token:
//
//	GET  /v1/tenants/{tenant}/wallet                the wallet: totals, grants, auto-recharge, open top-ups
//	GET  /v1/tenants/{tenant}/wallet/ledger         ledger page, newest first (?before=SEQ&limit=N)
//	POST /v1/tenants/{tenant}/wallet/grants         operator credit {amount, key, expires_at?, currency?}
//	POST /v1/tenants/{tenant}/wallet/top-ups        a top-up invoice, collected {amount, key, currency?}
//	POST /v1/tenants/{tenant}/wallet/withdrawals    withdraw {amount, bolt11, key} (Lightning payout) or {amount, reference} (paid by the operator)
//	PUT  /v1/tenants/{tenant}/wallet/auto-recharge  {threshold, amount}, or both null to turn it off
//	PUT  /v1/tenants/{tenant}/wallet/pay-invoices   {enabled}: the wallet pays open invoices first, or not
//
// Unknown tenant 404; an amount not positive, another currency than the
// wallet's, a grant expiry in the past and a withdrawal above withdrawable
// are 400 naming what was wrong.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// mountWallet adds the wallet endpoints.
func (s *Server) mountWallet(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/tenants/{tenant}/wallet", s.app(s.wallet))
	mux.HandleFunc("GET /v1/tenants/{tenant}/wallet/ledger", s.app(s.walletLedger))
	mux.HandleFunc("POST /v1/tenants/{tenant}/wallet/grants", s.app(s.walletGrant))
	mux.HandleFunc("POST /v1/tenants/{tenant}/wallet/top-ups", s.app(s.walletTopUp))
	mux.HandleFunc("POST /v1/tenants/{tenant}/wallet/withdrawals", s.app(s.walletWithdraw))
	mux.HandleFunc("PUT /v1/tenants/{tenant}/wallet/auto-recharge", s.app(s.walletAutoRecharge))
	mux.HandleFunc("PUT /v1/tenants/{tenant}/wallet/pay-invoices", s.app(s.walletPayInvoices))
}

// WalletGrantView is a grant with what is left of it.
type WalletGrantView struct {
	models.WalletGrant
	Remaining int64 `json:"remaining"`
}

// WalletView is what `starter wallet show` and GET .../wallet answer: the
// wallet's totals and derived amounts (a broken invariant in its
// Violation), its grants in the order settlements consume them, its
// auto-recharge setting, whether it pays invoices first and its open top-ups.
type WalletView struct {
	store.Wallet
	Grants       []WalletGrantView  `json:"grants"`
	AutoRecharge store.AutoRecharge `json:"auto_recharge"`
	// PayInvoices: the wallet pays an open invoice it covers before NWC.
	PayInvoices bool             `json:"pay_invoices_from_wallet"`
	OpenTopUps  []store.TopUpRef `json:"open_top_ups"`
	// OpenPayouts are withdrawals not paid out yet.
	OpenPayouts []store.Withdrawal `json:"open_payouts"`
	// SyncedAt is when the balance amounts were read from the ledger by the
	// tenant's BalanceSync workflow (GET .../wallet only; absent where the
	// view is read from Postgres directly, as `starter wallet show` does).
	SyncedAt *time.Time `json:"synced_at,omitempty"`
}

// LoadWalletView reads a tenant's wallet from Postgres; an unknown tenant
// is billing.ErrTenantNotFound.
func LoadWalletView(ctx context.Context, st *store.Store, tenant models.TenantID) (WalletView, error) {
	var v WalletView
	if err := RequireTenant(ctx, st, tenant); err != nil {
		return v, err
	}
	w, err := st.WalletState(ctx, tenant)
	if err != nil {
		return v, err
	}
	v.Wallet = w
	grants, err := st.WalletGrants(ctx, tenant)
	if err != nil {
		return v, err
	}
	v.Grants = make([]WalletGrantView, 0, len(grants))
	for _, g := range grants {
		v.Grants = append(v.Grants, WalletGrantView{WalletGrant: g, Remaining: g.Remaining()})
	}
	if v.AutoRecharge, err = st.WalletAutoRecharge(ctx, tenant); err != nil {
		return v, err
	}
	if v.PayInvoices, err = st.WalletPaysInvoices(ctx, tenant); err != nil {
		return v, err
	}
	if v.OpenTopUps, err = st.OpenTopUpRefs(ctx, tenant); err != nil {
		return v, err
	}
	if v.OpenPayouts, err = st.OpenWithdrawals(ctx, tenant); err == nil && v.OpenPayouts == nil {
		v.OpenPayouts = []store.Withdrawal{}
	}
	return v, err
}

// RequireTenant is billing.ErrTenantNotFound (naming the tenant) for a
// tenant without a row.
func RequireTenant(ctx context.Context, st *store.Store, tenant models.TenantID) error {
	_, err := st.GetTenant(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", billing.ErrTenantNotFound, tenant)
	}
	return err
}

// WalletError turns a wallet refusal (not enough spendable or withdrawable)
// into the validation error it is to a caller: the request asked for more
// than the wallet has. Other errors pass through.
func WalletError(err error) error {
	var ne *models.NotEnoughError
	if errors.As(err, &ne) {
		what := "amount"
		if ne.Of == "withdrawable" {
			what = "withdrawal"
		}
		return &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%s of %d is above the %s %d", what, ne.Wanted, ne.Of, ne.Available)}
	}
	return err
}

// WalletWriteView is the outcome of a grant or a withdrawal.
type WalletWriteView struct {
	Entry  store.WalletEntry `json:"entry"`
	Wallet store.Wallet      `json:"wallet"`
	// Duplicate: the key was written before; nothing changed.
	Duplicate bool `json:"duplicate"`
}

// TopUpView is a top-up invoice whose collection was started.
type TopUpView struct {
	Invoice store.Invoice `json:"invoice"`
	// PaymentURL is the invoice's hosted page, when the pages are configured.
	PaymentURL string `json:"payment_url,omitempty"`
}

// walletTenant parses the path's tenant and checks it exists.
func (s *Server) walletTenant(r *http.Request) (models.TenantID, error) {
	id, err := models.ParseTenantID(r.PathValue("tenant"))
	if err != nil {
		return "", err
	}
	return id, RequireTenant(r.Context(), s.Store, id)
}

// balanceReadTimeout bounds the wallet GET's read of the balance sync, so an
// unreachable Temporal (or no worker to run the sync) is a prompt 503.
const balanceReadTimeout = 10 * time.Second

// wallet answers the expiring view: the balance amounts (funds, promised,
// settled, unsettled, spendable, withdrawable, violation, synced_at) come
// from the tenant's BalanceSync workflow through billing.CachedBalance: a
// sync at most WalletMaxAge old is answered from its query without reading
// the ledger; an older one (or none yet: the first read starts the
// workflow) syncs first. The rest (the other ledger totals, grants,
// auto-recharge, pay-invoices, open top-ups) is read from Postgres at
// request time, so those totals may be newer than synced_at. An unknown
// tenant is 404 before any workflow is started; a known tenant without
// ledger entries has an empty wallet in its currency (200, all zero).
// When the balance sync cannot be reached or fails, the answer is 503: a
// Postgres read is never passed off as the synced balance.
func (s *Server) wallet(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), balanceReadTimeout)
	bal, err := s.Billing.CachedBalance(ctx, string(id), s.WalletMaxAge)
	cancel()
	var ve *models.ValidationError
	switch {
	case errors.Is(err, billing.ErrTenantNotFound), errors.As(err, &ve), errors.Is(err, context.Canceled):
		return err
	case err != nil:
		s.logger().Warn("wallet balance not read", "tenant", id, "error", err)
		msg := "the wallet balance of tenant " + string(id) + " cannot be read: its balance sync (Temporal) is unreachable; retry later"
		var ue *billing.UnavailableError
		if !errors.As(err, &ue) && !errors.Is(err, context.DeadlineExceeded) {
			msg = "the wallet balance of tenant " + string(id) + " could not be synced from the ledger; retry later"
		}
		writeError(w, http.StatusServiceUnavailable, "unavailable", msg, "")
		return nil
	}
	v, err := LoadWalletView(r.Context(), s.Store, id)
	if err != nil {
		return err
	}
	v.Totals.Promised, v.Totals.Settled = bal.Promised, bal.Settled
	v.Funds, v.Unsettled, v.Spendable, v.Withdrawable, v.Violation = bal.Funds, bal.Unsettled, bal.Spendable, bal.Withdrawable, bal.Violation
	synced := bal.SyncedAt
	v.SyncedAt = &synced
	if v.Violation != "" {
		s.logger().Error("wallet invariant broken", "tenant", id, "violation", v.Violation)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) walletLedger(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var before int64
	limit := 0
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil {
			return &models.ValidationError{Field: "before", Reason: fmt.Sprintf("%q is not a ledger sequence number", v)}
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit == 0 {
			return &models.ValidationError{Field: "limit", Reason: fmt.Sprintf("%q is not between 1 and 500", v)}
		}
	}
	page, err := s.Store.LedgerPage(r.Context(), id, before, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// grantBody is the grant request; key makes a retry a no-op.
type grantBody struct {
	Amount    int64      `json:"amount"`
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Currency  string     `json:"currency,omitempty"`
}

// parseGrant reads a grant request's body for tenant id (no I/O; the store
// checks the values).
func parseGrant(w http.ResponseWriter, r *http.Request, id models.TenantID) (store.WalletWrite, error) {
	var body grantBody
	if err := decode(w, r, &body); err != nil {
		return store.WalletWrite{}, err
	}
	return store.WalletWrite{TenantID: id, Key: body.Key, Amount: body.Amount, Currency: models.Currency(body.Currency), ExpiresAt: body.ExpiresAt}, nil
}

func (s *Server) walletGrant(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	req, err := parseGrant(w, r, id)
	if err != nil {
		return err
	}
	res, err := s.Store.Grant(r.Context(), req)
	if err != nil {
		return WalletError(err)
	}
	writeJSON(w, http.StatusOK, WalletWriteView{Entry: res.Entry, Wallet: res.Wallet, Duplicate: res.Duplicate})
	return nil
}

// balanceEvent starts the tenant's aggressive balance sync (signal-with-start
// of balance/<tenant>). Best effort: the lifetime sync catches up anyway, so
// a failure is logged and the request still succeeds.
func (s *Server) balanceEvent(ctx context.Context, tenant models.TenantID, kind, ref string) {
	if err := s.Billing.ReportBalanceEvent(ctx, tenant, contract.BalanceEvent{Kind: kind, Reference: ref}); err != nil {
		s.logger().Warn("balance sync not started", "tenant", tenant, "event", kind, "error", err)
	}
}

// topUpBody is the top-up request; key makes a retry return the same invoice.
type topUpBody struct {
	Amount   int64  `json:"amount"`
	Key      string `json:"key"`
	Currency string `json:"currency,omitempty"`
}

// parseTopUp reads a top-up request's body for tenant id (no I/O; the
// store checks the values).
func parseTopUp(w http.ResponseWriter, r *http.Request, id models.TenantID) (store.TopUpParams, error) {
	var body topUpBody
	if err := decode(w, r, &body); err != nil {
		return store.TopUpParams{}, err
	}
	return store.TopUpParams{TenantID: id, Key: body.Key, Amount: body.Amount, Currency: models.Currency(body.Currency)}, nil
}

func (s *Server) walletTopUp(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	req, err := parseTopUp(w, r, id)
	if err != nil {
		return err
	}
	inv, err := s.Store.CreateTopUp(r.Context(), req)
	if err != nil {
		return err
	}
	// The invoice is written first: a failure to start its collection here
	// is answered 503, and the retry (same key) starts it for the same invoice.
	if _, err := s.Billing.CollectInvoice(r.Context(), inv.ID); err != nil {
		return err
	}
	s.balanceEvent(r.Context(), id, contract.BalanceTopUpRequested, inv.ID)
	out := TopUpView{Invoice: inv}
	if s.Pages != nil && s.Pages.Links != nil {
		if out.PaymentURL, err = s.Pages.Links.InvoiceURL(r.Context(), inv.ID); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// withdrawalBody is a withdrawal request. With bolt11 the engine's node pays
// it out over Lightning (key is the request id); without, it records a
// payout the operator made already, under its reference (which is then the
// key).
type withdrawalBody struct {
	Amount    int64  `json:"amount"`
	Key       string `json:"key,omitempty"`
	Reference string `json:"reference,omitempty"`
	BOLT11    string `json:"bolt11,omitempty"`
	Currency  string `json:"currency,omitempty"`
}

// parseWithdrawal reads a withdrawal request's body for tenant id (no I/O):
// a Lightning payout (bolt11 given) for the payout workflow, or else a
// manual payout for the store; each side checks the values further.
func parseWithdrawal(w http.ResponseWriter, r *http.Request, id models.TenantID) (store.WalletWrite, *billing.WithdrawalRequest, error) {
	var body withdrawalBody
	if err := decode(w, r, &body); err != nil {
		return store.WalletWrite{}, nil, err
	}
	if body.BOLT11 != "" {
		if body.Key == "" {
			return store.WalletWrite{}, nil, &models.ValidationError{Field: "key", Reason: "must not be empty: a Lightning withdrawal's request id (retrying it changes nothing)"}
		}
		if body.Reference != "" {
			return store.WalletWrite{}, nil, &models.ValidationError{Field: "reference", Reason: "a Lightning withdrawal's reference is its payment's preimage; give either bolt11 or reference"}
		}
		return store.WalletWrite{}, &billing.WithdrawalRequest{TenantID: id, Key: body.Key, Amount: body.Amount,
			Currency: models.Currency(body.Currency), BOLT11: body.BOLT11}, nil
	}
	if body.Reference == "" {
		return store.WalletWrite{}, nil, &models.ValidationError{Field: "reference", Reason: "must not be empty: it is the withdrawal's key and the payout's reference " +
			"(or give bolt11 and key for a Lightning payout)"}
	}
	if body.Key != "" && body.Key != body.Reference {
		return store.WalletWrite{}, nil, &models.ValidationError{Field: "key", Reason: "a manual payout's key is its reference; leave key out"}
	}
	return store.WalletWrite{TenantID: id, Key: body.Reference, Amount: body.Amount, Currency: models.Currency(body.Currency)}, nil, nil
}

func (s *Server) walletWithdraw(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	manual, lightning, err := parseWithdrawal(w, r, id)
	if err != nil {
		return err
	}
	if lightning != nil {
		return s.lightningWithdraw(w, r, *lightning)
	}
	res, err := s.Store.Withdraw(r.Context(), manual)
	if err != nil {
		return WalletError(err)
	}
	if !res.Duplicate {
		s.balanceEvent(r.Context(), id, contract.BalanceWithdrawalRequested, manual.Key)
	}
	writeJSON(w, http.StatusOK, WalletWriteView{Entry: res.Entry, Wallet: res.Wallet, Duplicate: res.Duplicate})
	return nil
}

// lightningWithdraw records a Lightning withdrawal through its payout
// workflow (the worker checks the BOLT11 against the engine's node and
// rate) and answers 202 once it is recorded; the payout goes on there.
func (s *Server) lightningWithdraw(w http.ResponseWriter, r *http.Request, req billing.WithdrawalRequest) error {
	if s.Billing == nil {
		return &billing.UnavailableError{Err: errors.New("the api has no Temporal client, so it cannot start a payout")}
	}
	res, err := s.Billing.Withdraw(r.Context(), req)
	if err != nil {
		return WalletError(err)
	}
	code := http.StatusAccepted
	if res.Duplicate {
		code = http.StatusOK
	}
	writeJSON(w, code, res)
	return nil
}

func (s *Server) walletAutoRecharge(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	var body store.AutoRecharge
	if err := decode(w, r, &body); err != nil {
		return err
	}
	a, err := s.Store.SetWalletAutoRecharge(r.Context(), id, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// PayInvoicesView is the pay-invoices setting, as PUT .../pay-invoices
// takes and answers it.
type PayInvoicesView struct {
	Enabled *bool `json:"enabled"`
}

// parsePayInvoices reads the pay-invoices setting's body (no I/O).
func parsePayInvoices(w http.ResponseWriter, r *http.Request) (PayInvoicesView, error) {
	var body PayInvoicesView
	if err := decode(w, r, &body); err != nil {
		return body, err
	}
	if body.Enabled == nil {
		return body, &models.ValidationError{Field: "enabled", Reason: "is required: true lets the wallet pay open invoices first, false turns that off"}
	}
	return body, nil
}

func (s *Server) walletPayInvoices(w http.ResponseWriter, r *http.Request) error {
	id, err := s.walletTenant(r)
	if err != nil {
		return err
	}
	body, err := parsePayInvoices(w, r)
	if err != nil {
		return err
	}
	if err := s.Store.SetWalletPaysInvoices(r.Context(), id, *body.Enabled); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
