package api

// Free-tier pool endpoints (issue 11), all under the bearer token:
//
//	GET    /v1/pool                       the pool: balance, low, absorbed and grants today, reserved, credited
//	POST   /v1/pool/credits               an operator's top-up {key, amount, note?} (once per key)
//	GET    /v1/pool/grants[?payer=P&outcome=O&limit=N]   the grant audit, newest first
//	POST   /v1/pool/decide                a dry run {payer, amount}: the verdict the payer would get now (nothing reserved)
//	GET    /v1/pool/tiers/{payer}         the payer's tier (derived or pinned), budget and absorbed today
//	PUT    /v1/pool/tiers/{payer}         pin the payer's tier {tier, reason?}
//	DELETE /v1/pool/tiers/{payer}         unpin it (the tier is derived again)
//
// The starter's `pool` and `tier` commands call the same functions.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// DefaultPoolConfigPath is read when BILLFLOW_POOL is unset and it exists.
const DefaultPoolConfigPath = "config/pool.json"

// LoadPoolConfig reads the free-tier pool's configuration from path
// (BILLFLOW_POOL); an empty path reads config/pool.json when it exists,
// else models.DefaultPoolConfig.
func LoadPoolConfig(path string) (models.PoolConfig, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPoolConfigPath
	}
	data, err := os.ReadFile(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return models.DefaultPoolConfig(), nil
	}
	if err != nil {
		return models.PoolConfig{}, fmt.Errorf("read the free-tier pool configuration (BILLFLOW_POOL): %w", err)
	}
	cfg, err := models.ParsePoolConfig(data)
	if err != nil {
		return models.PoolConfig{}, fmt.Errorf("free-tier pool configuration %s: %w", path, err)
	}
	return cfg, nil
}

// mountPool adds the pool endpoints.
func (s *Server) mountPool(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/pool", s.app(s.poolShow))
	mux.HandleFunc("POST /v1/pool/credits", s.app(s.poolCredit))
	mux.HandleFunc("GET /v1/pool/grants", s.app(s.poolGrants))
	mux.HandleFunc("POST /v1/pool/decide", s.app(s.poolDecide))
	mux.HandleFunc("GET /v1/pool/tiers/{payer}", s.app(s.tierShow))
	mux.HandleFunc("PUT /v1/pool/tiers/{payer}", s.app(s.tierPin))
	mux.HandleFunc("DELETE /v1/pool/tiers/{payer}", s.app(s.tierUnpin))
}

func (s *Server) poolConfig() models.PoolConfig {
	if s.Pool != nil {
		return *s.Pool
	}
	return models.DefaultPoolConfig()
}

// PoolStatus is the pool at a glance (GET /v1/pool).
func PoolStatus(ctx context.Context, st *store.Store) (store.PoolStatus, error) {
	p, err := st.PoolStatus(ctx)
	if errors.Is(err, store.ErrPoolNotConfigured) {
		return p, &models.ValidationError{Field: "pool", Reason: "the free-tier pool is not configured yet (a worker configures it from BILLFLOW_POOL at start)"}
	}
	return p, err
}

func (s *Server) poolShow(w http.ResponseWriter, r *http.Request) error {
	p, err := PoolStatus(r.Context(), s.Store)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// PoolCreditBody is an operator's top-up of the pool.
type PoolCreditBody struct {
	Key    string `json:"key"`
	Amount int64  `json:"amount"`
	Note   string `json:"note,omitempty"`
}

// CreditPool tops the pool up once per key (POST /v1/pool/credits).
func CreditPool(ctx context.Context, st *store.Store, b PoolCreditBody) (store.PoolCredit, error) {
	if strings.HasPrefix(strings.TrimSpace(b.Key), "invoice:") {
		return store.PoolCredit{}, &models.ValidationError{Field: "key", Reason: "keys starting invoice: are the shares of paid invoices"}
	}
	c, err := st.CreditPool(ctx, b.Key, b.Amount, b.Note)
	if errors.Is(err, store.ErrPoolNotConfigured) {
		_, err = PoolStatus(ctx, st)
	}
	return c, err
}

func (s *Server) poolCredit(w http.ResponseWriter, r *http.Request) error {
	var b PoolCreditBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	c, err := CreditPool(r.Context(), s.Store, b)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if c.Replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, c)
	return nil
}

// ParseGrantFilter reads the grant audit's filters (payer: hex or npub).
func ParseGrantFilter(payer, outcome, limit string) (store.GrantFilter, error) {
	var f store.GrantFilter
	if payer != "" {
		id, err := models.ParseTenantID(payer)
		if err != nil {
			return f, &models.ValidationError{Field: "payer", Reason: err.Error()}
		}
		f.Payer = id
	}
	f.Outcome = outcome
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n <= 0 || n > 1000 {
			return f, &models.ValidationError{Field: "limit", Reason: fmt.Sprintf("%q is not a number from 1 to 1000", limit)}
		}
		f.Limit = n
	}
	return f, nil
}

// PoolGrants is the grant audit (GET /v1/pool/grants).
type PoolGrants struct {
	Grants []store.PoolGrant `json:"grants"`
}

func (s *Server) poolGrants(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := ParseGrantFilter(q.Get("payer"), q.Get("outcome"), q.Get("limit"))
	if err != nil {
		return err
	}
	gs, err := s.Store.ListGrants(r.Context(), f)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []store.PoolGrant{}
	}
	writeJSON(w, http.StatusOK, PoolGrants{Grants: gs})
	return nil
}

// PoolDecideBody asks for a dry-run decision.
type PoolDecideBody struct {
	Payer  string `json:"payer"`
	Amount int64  `json:"amount"`
}

// DecidePool is the verdict the payer would get for amount now; nothing
// is reserved (POST /v1/pool/decide).
func DecidePool(ctx context.Context, st *store.Store, cfg models.PoolConfig, b PoolDecideBody) (store.PoolVerdict, error) {
	payer, err := models.ParseTenantID(b.Payer)
	if err != nil {
		return store.PoolVerdict{}, &models.ValidationError{Field: "payer", Reason: err.Error()}
	}
	if b.Amount <= 0 {
		return store.PoolVerdict{}, &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not a positive amount in minor units", b.Amount)}
	}
	v, err := st.DecidePool(ctx, cfg, store.PoolRequest{Payer: payer, Key: "dry-run", Estimated: b.Amount})
	if errors.Is(err, store.ErrPoolNotConfigured) {
		_, err = PoolStatus(ctx, st)
	}
	return v, tenantErr(payer, err)
}

func (s *Server) poolDecide(w http.ResponseWriter, r *http.Request) error {
	var b PoolDecideBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	v, err := DecidePool(r.Context(), s.Store, s.poolConfig(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// tenantErr reports an unknown payer as a validation error naming it.
func tenantErr(payer models.TenantID, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &models.ValidationError{Field: "payer", Reason: fmt.Sprintf("%s is not a tenant", payer)}
	}
	return err
}

// PayerTier is the payer's standing (GET /v1/pool/tiers/{payer}).
func PayerTier(ctx context.Context, st *store.Store, cfg models.PoolConfig, payer string) (store.PayerTier, error) {
	id, err := models.ParseTenantID(payer)
	if err != nil {
		return store.PayerTier{}, &models.ValidationError{Field: "payer", Reason: err.Error()}
	}
	t, err := st.PayerTier(ctx, cfg, id)
	return t, tenantErr(id, err)
}

// TierPinBody pins a payer's tier.
type TierPinBody struct {
	Tier   string `json:"tier"`
	Reason string `json:"reason,omitempty"`
}

// SetPayerTier pins the payer's tier, or unpins it (tier ""), and answers
// the standing that results.
func SetPayerTier(ctx context.Context, st *store.Store, cfg models.PoolConfig, payer string, b TierPinBody) (store.PayerTier, error) {
	id, err := models.ParseTenantID(payer)
	if err != nil {
		return store.PayerTier{}, &models.ValidationError{Field: "payer", Reason: err.Error()}
	}
	if b.Tier == "" {
		err = st.UnpinTier(ctx, id)
	} else {
		var tier models.TrustTier
		if tier, err = models.ParseTrustTier(b.Tier); err != nil {
			return store.PayerTier{}, err
		}
		err = st.PinTier(ctx, id, tier, b.Reason)
	}
	if err != nil {
		return store.PayerTier{}, tenantErr(id, err)
	}
	return PayerTier(ctx, st, cfg, payer)
}

func (s *Server) tierShow(w http.ResponseWriter, r *http.Request) error {
	t, err := PayerTier(r.Context(), s.Store, s.poolConfig(), r.PathValue("payer"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) tierPin(w http.ResponseWriter, r *http.Request) error {
	var b TierPinBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	if strings.TrimSpace(b.Tier) == "" {
		return &models.ValidationError{Field: "tier", Reason: "is required (new, established, trusted or elite); DELETE unpins"}
	}
	t, err := SetPayerTier(r.Context(), s.Store, s.poolConfig(), r.PathValue("payer"), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) tierUnpin(w http.ResponseWriter, r *http.Request) error {
	t, err := SetPayerTier(r.Context(), s.Store, s.poolConfig(), r.PathValue("payer"), TierPinBody{})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}
