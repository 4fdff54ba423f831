package api

// Metered usage session endpoints (issue 10), all under the bearer token:
//
//	POST /v1/usage/sessions                  start {session_id, service_id, payer, max_unit_price, notify_dm?}
//	POST /v1/usage/sessions/{id}/reports     usage since the last report {id, seconds, bytes_received, bytes_sent} -> 202
//	POST /v1/usage/sessions/{id}/signatures  the payer's signed event over the waiting receipt {event}
//	POST /v1/usage/sessions/{id}/end         end; optional body {report} is reported first
//	GET  /v1/usage/sessions/{id}             the session's state
//
// A session's refusal is 4xx {"error": "usage_error", "code": <UsageErrorCode>,
// "message"} (UsageErrorStatus); an unknown session is 404.

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
)

// mountUsage adds the usage session endpoints.
func (s *Server) mountUsage(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/usage/sessions", s.app(s.usageStart))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/reports", s.app(s.usageReport))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/signatures", s.app(s.usageSign))
	mux.HandleFunc("POST /v1/usage/sessions/{id}/end", s.app(s.usageEnd))
	mux.HandleFunc("GET /v1/usage/sessions/{id}", s.app(s.usageShow))
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
