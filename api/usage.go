package api

// Metered usage session endpoints (issue 10), all under the bearer token:
//
//	POST /v1/usage/sessions                  start {session_id, service_id, payer, max_unit_price, notify_dm?}
//	POST /v1/usage/sessions/{id}/reports     usage since the last report {id, seconds, bytes_received, bytes_sent} -> 202
//	POST /v1/usage/sessions/{id}/signatures  the payer's signed event over the waiting receipt {event}
//	POST /v1/usage/sessions/{id}/end         end; optional body {report} is reported first
//	GET  /v1/usage/sessions/{id}             the session's state
//	GET  /v1/usage/stats?payer=P[&service=S] the payer's statistics per service and mode (paid, free, grace)
//	DELETE /v1/usage/bans/{service}/{payer}  an operator lifts the payer's grace ban on the service
//
// A session's refusal is 4xx {"error": "usage_error", "code": <UsageErrorCode>,
// "message"} (UsageErrorStatus); an unknown session is 404.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// mountUsage adds the usage session endpoints.
func (s *Server) mountUsage(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/usage/sessions", s.app(s.usageStart))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/reports", s.app(s.usageReport))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/signatures", s.app(s.usageSign))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/end", s.app(s.usageEnd))
	mux.HandleFunc("GET /v1/usage/sessions/{id}", s.app(s.usageShow))
	mux.HandleFunc("GET /v1/usage/stats", s.app(s.usageStats))
	mux.HandleFunc("DELETE /v1/usage/bans/{service}/{payer}", s.app(s.usageUnban))
}

// UsageErrorStatus is the HTTP status of a session's refusal: 404 an
// unknown service, 403 a payer banned from grace, 402 what funds decide,
// 409 what the session's state decides, 400 the rest (a price above the
// client's, a receipt signature refused).
func UsageErrorStatus(code models.UsageErrorCode) int {
	switch code {
	case models.UsageServiceNotFound:
		return http.StatusNotFound
	case models.UsageBannedPayer:
		return http.StatusForbidden
	case models.UsageNotEnough, models.UsageNoFunds, models.UsageNoNewFunds:
		return http.StatusPaymentRequired
	case models.UsageWrongState, models.UsageSessionEnded, models.UsageReceiptNoSign, models.UsagePaymentError:
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// usageStartBody is the start request.
type usageStartBody struct {
	SessionID    string `json:"session_id"`
	ServiceID    string `json:"service_id"`
	Payer        string `json:"payer"`
	MaxUnitPrice int64  `json:"max_unit_price"`
	NotifyDM     bool   `json:"notify_dm,omitempty"`
}

func (s *Server) usageStart(w http.ResponseWriter, r *http.Request) error {
	var body usageStartBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	res, err := s.Billing.StartUsage(r.Context(), billing.UsageStartRequest{SessionID: body.SessionID, ServiceID: body.ServiceID,
		Payer: models.TenantID(body.Payer), MaxUnitPrice: body.MaxUnitPrice, NotifyDM: body.NotifyDM})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// UsageReportAccepted is the answer to a usage report: the session takes
// it asynchronously, once per report id.
type UsageReportAccepted struct {
	Accepted bool   `json:"accepted"`
	ID       string `json:"id"`
}

func (s *Server) usageReport(w http.ResponseWriter, r *http.Request) error {
	var body billing.UsageReport
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.Billing.ReportUsage(r.Context(), r.PathValue("id"), body); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, UsageReportAccepted{Accepted: true, ID: body.ID})
	return nil
}

func (s *Server) usageSign(w http.ResponseWriter, r *http.Request) error {
	var body billing.UsageSignRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	v, err := s.Billing.SignReceipt(r.Context(), r.PathValue("id"), body.Event)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// usageEndBody optionally carries the last report, sent before the end.
type usageEndBody struct {
	Report *billing.UsageReport `json:"report,omitempty"`
}

func (s *Server) usageEnd(w http.ResponseWriter, r *http.Request) error {
	var body usageEndBody
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if tooLarge(err) {
		return errTooLarge
	}
	if err != nil {
		return &models.ValidationError{Field: "body", Reason: "unreadable: " + err.Error()}
	}
	// No body (or only whitespace, as a chunked empty request) ends without a last report.
	if len(bytes.TrimSpace(raw)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	if body.Report != nil {
		if err := s.Billing.ReportUsage(r.Context(), id, *body.Report); err != nil {
			return err
		}
	}
	v, err := s.Billing.EndUsage(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) usageShow(w http.ResponseWriter, r *http.Request) error {
	v, err := s.Billing.UsageSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// asUsageError finds a session's typed refusal in err.
func asUsageError(err error) (*billing.UsageError, bool) {
	var ue *billing.UsageError
	ok := errors.As(err, &ue)
	return ue, ok
}

func isUsageError(err error) bool {
	_, ok := asUsageError(err)
	return ok
}

// ServiceUsageStats are one service's statistics of a payer, per mode.
type ServiceUsageStats struct {
	ServiceID string           `json:"service_id"`
	Paid      store.UsageStats `json:"paid"`
	Free      store.UsageStats `json:"free"`
	Grace     store.UsageStats `json:"grace"`
}

// UsageStatsView is what GET /v1/usage/stats and `starter usage stats`
// answer: the payer's statistics per service (one service when asked for
// one, all zero when it has none yet).
type UsageStatsView struct {
	Payer    models.TenantID     `json:"payer"`
	Services []ServiceUsageStats `json:"services"`
}

// ParseUsageStatsQuery checks a statistics request's payer (hex or npub)
// and optional service id, naming the field that is wrong.
func ParseUsageStatsQuery(payer, service string) (models.TenantID, string, error) {
	id, err := models.ParseTenantID(strings.TrimSpace(payer))
	if err != nil {
		var ve *models.ValidationError
		if errors.As(err, &ve) {
			return "", "", &models.ValidationError{Field: "payer", Reason: ve.Reason}
		}
		return "", "", err
	}
	service = strings.TrimSpace(service)
	if service != "" {
		if err := models.ValidServiceID("service", service); err != nil {
			return "", "", err
		}
	}
	return id, service, nil
}

// LoadUsageStats reads the payer's statistics (store.UsageStatsOf) of one
// service, or of every service when service is empty; a payer that is not
// a tenant is billing.ErrTenantNotFound.
func LoadUsageStats(ctx context.Context, st *store.Store, payer models.TenantID, service string) (UsageStatsView, error) {
	v := UsageStatsView{Payer: payer, Services: []ServiceUsageStats{}}
	if err := RequireTenant(ctx, st, payer); err != nil {
		return v, err
	}
	rows, err := st.UsageStatsOf(ctx, service, payer)
	if err != nil {
		return v, err
	}
	for _, r := range rows {
		if n := len(v.Services); n == 0 || v.Services[n-1].ServiceID != r.ServiceID {
			v.Services = append(v.Services, newServiceUsageStats(r.ServiceID))
		}
		cur := &v.Services[len(v.Services)-1]
		switch r.Mode {
		case store.UsageModePaid:
			cur.Paid = r.UsageStats
		case store.UsageModeFree:
			cur.Free = r.UsageStats
		case store.UsageModeGrace:
			cur.Grace = r.UsageStats
		}
	}
	if service != "" && len(v.Services) == 0 {
		v.Services = append(v.Services, newServiceUsageStats(service))
	}
	return v, nil
}

func newServiceUsageStats(service string) ServiceUsageStats {
	return ServiceUsageStats{ServiceID: service, Paid: store.UsageStats{Mode: store.UsageModePaid},
		Free: store.UsageStats{Mode: store.UsageModeFree}, Grace: store.UsageStats{Mode: store.UsageModeGrace}}
}

func (s *Server) usageStats(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if !q.Has("payer") {
		return &models.ValidationError{Field: "payer", Reason: "the payer query parameter is required (?payer=<hex or npub>)"}
	}
	payer, service, err := ParseUsageStatsQuery(q.Get("payer"), q.Get("service"))
	if err != nil {
		return err
	}
	v, err := LoadUsageStats(r.Context(), s.Store, payer, service)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// UsageUnbanned is the answer to lifting a grace ban: Lifted says whether
// there was a ban (active or expired) to lift, ExpiresAt when an active
// one would have ended.
type UsageUnbanned struct {
	ServiceID string          `json:"service_id"`
	Payer     models.TenantID `json:"payer"`
	Lifted    bool            `json:"lifted"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

// LiftUsageBan lifts the payer's grace ban on the service
// (store.LiftUsageBan): the payer may go into grace on it again. Lifting
// where there is no ban changes nothing and answers Lifted false; a payer
// that is not a tenant is billing.ErrTenantNotFound.
func LiftUsageBan(ctx context.Context, st *store.Store, service string, payer models.TenantID, now time.Time) (UsageUnbanned, error) {
	out := UsageUnbanned{ServiceID: service, Payer: payer}
	if err := RequireTenant(ctx, st, payer); err != nil {
		return out, err
	}
	until, err := st.UsageBan(ctx, service, payer, now)
	if err != nil {
		return out, err
	}
	out.ExpiresAt = until
	out.Lifted, err = st.LiftUsageBan(ctx, service, payer)
	return out, err
}

func (s *Server) usageUnban(w http.ResponseWriter, r *http.Request) error {
	service := r.PathValue("service")
	if err := models.ValidServiceID("service", service); err != nil {
		return err
	}
	payer, _, err := ParseUsageStatsQuery(r.PathValue("payer"), "")
	if err != nil {
		return err
	}
	v, err := LiftUsageBan(r.Context(), s.Store, service, payer, s.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
