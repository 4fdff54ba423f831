package lnnode

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxPayBody bounds a pay request: a BOLT11 string is at most 7089 bytes.
const maxPayBody = 16 << 10

// PayResponse is the JSON body of a successful POST /pay.
type PayResponse struct {
	PaymentHash string `json:"payment_hash"`
	Preimage    string `json:"preimage"`
}

// payError is the JSON body of a failed POST /pay.
type payError struct {
	Error string `json:"error"`
}

// PayeeInvoiceRequest is the JSON body of POST /payee/invoices.
type PayeeInvoiceRequest struct {
	// AmountMsat 0 makes an amount-less invoice (billflow refuses those).
	AmountMsat int64  `json:"amount_msat"`
	Memo       string `json:"memo"`
	// ExpirySeconds 0 is lnd's default, 24h.
	ExpirySeconds int64 `json:"expiry_seconds"`
}

// PayeeInvoiceResponse is the JSON body of a successful POST /payee/invoices.
type PayeeInvoiceResponse struct {
	PaymentRequest string `json:"payment_request"`
	PaymentHash    string `json:"payment_hash"`
}

// PayeeInvoiceStatus is the JSON body of GET /payee/invoices/{hash}.
type PayeeInvoiceStatus struct {
	PaymentHash    string    `json:"payment_hash"`
	PaymentRequest string    `json:"payment_request"`
	AmountMsat     int64     `json:"amount_msat"`
	Memo           string    `json:"memo"`
	ExpiresAt      time.Time `json:"expires_at"`
	Settled        bool      `json:"settled"`
	AmtPaidMsat    int64     `json:"amt_paid_msat"`
	SettledAt      time.Time `json:"settled_at,omitzero"`
}

// PayHandler serves POST /pay for settling invoices by hand in dev mode.
// The body is the BOLT11 string, as text or as the form field "invoice":
//
//	curl -d lnbcrt... http://127.0.0.1:PORT/pay
//
// Replies 200 with PayResponse, or an error body with 400 (invalid), 404
// (unknown invoice), 409 (already paid) or 410 (expired). It has no
// authentication: it is for a node bound to 127.0.0.1, in a sandbox.
//
// It also serves the remote payee, whose invoices the engine's node pays
// out to (withdrawals):
//
//	POST /payee/invoices {"amount_msat":N,"memo":"..","expiry_seconds":N}
//	  -> 200 PayeeInvoiceResponse, or 400 with an error body
//	GET  /payee/invoices/{payment_hash}
//	  -> 200 PayeeInvoiceStatus, or 404 (unknown) or 400 (not a hash)
func (n *Node) PayHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payee/invoices", func(w http.ResponseWriter, r *http.Request) {
		var req PayeeInvoiceRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPayBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, payError{Error: "body is not a payee invoice request (amount_msat, memo, expiry_seconds): " + err.Error()})
			return
		}
		if req.ExpirySeconds < 0 || req.ExpirySeconds > int64(maxExpiry/time.Second) {
			writeJSON(w, http.StatusBadRequest, payError{Error: fmt.Sprintf("expiry_seconds %d is outside [0, %d]", req.ExpirySeconds, int64(maxExpiry/time.Second))})
			return
		}
		bolt11, hash, err := n.PayeeInvoice(r.Context(), req.AmountMsat, req.Memo, time.Duration(req.ExpirySeconds)*time.Second)
		if err != nil {
			writeJSON(w, payStatus(err), payError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, PayeeInvoiceResponse{PaymentRequest: bolt11, PaymentHash: hash})
	})
	mux.HandleFunc("GET /payee/invoices/{hash}", func(w http.ResponseWriter, r *http.Request) {
		inv, err := n.payeeInvoice(r.PathValue("hash"))
		if err != nil {
			writeJSON(w, payStatus(err), payError{Error: err.Error()})
			return
		}
		st := PayeeInvoiceStatus{
			PaymentHash:    hex.EncodeToString(inv.Hash[:]),
			PaymentRequest: inv.PaymentRequest,
			AmountMsat:     inv.ValueMsat,
			Memo:           inv.Memo,
			ExpiresAt:      inv.expiresAt().UTC(),
			Settled:        inv.State == stateSettled,
			AmtPaidMsat:    inv.AmtPaidMsat,
		}
		if st.Settled {
			st.SettledAt = inv.SettleDate.UTC()
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayBody))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, payError{Error: "request body too large or unreadable"})
			return
		}
		bolt11 := strings.TrimSpace(string(body))
		if strings.HasPrefix(bolt11, "invoice=") {
			// curl --data-urlencode invoice=... or an HTML form.
			if form, err := url.ParseQuery(bolt11); err == nil {
				bolt11 = strings.TrimSpace(form.Get("invoice"))
			}
		}
		if bolt11 == "" {
			writeJSON(w, http.StatusBadRequest, payError{Error: "no invoice in the request body"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		hash, preimage, err := n.pay(ctx, bolt11)
		if err != nil {
			writeJSON(w, payStatus(err), payError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, PayResponse{PaymentHash: hash, Preimage: preimage})
	})
	return mux
}

func payStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownInvoice):
		return http.StatusNotFound
	case errors.Is(err, ErrAlreadyPaid):
		return http.StatusConflict
	case errors.Is(err, ErrInvoiceExpired):
		return http.StatusGone
	case errors.Is(err, ErrInvalidInvoice):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The client may be gone; nothing useful to do about a failed write.
	_ = json.NewEncoder(w).Encode(v)
}
