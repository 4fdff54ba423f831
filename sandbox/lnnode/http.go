package lnnode

import (
	"context"
	"encoding/json"
	"errors"
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

// PayHandler serves POST /pay for settling invoices by hand in dev mode.
// The body is the BOLT11 string, as text or as the form field "invoice":
//
//	curl -d lnbcrt... http://127.0.0.1:PORT/pay
//
// Replies 200 with PayResponse, or an error body with 400 (invalid), 404
// (unknown invoice), 409 (already paid) or 410 (expired). It has no
// authentication: it is for a node bound to 127.0.0.1, in a sandbox.
func (n *Node) PayHandler() http.Handler {
	mux := http.NewServeMux()
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
