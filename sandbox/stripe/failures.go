package stripesandbox

import (
	"errors"
	"net/http"
	"strings"
)

// Failure makes the next Count matching API requests fail, as Stripe or the
// network sometimes do.
type Failure struct {
	// Count is how many requests fail; at least 1.
	Count int `json:"count"`
	// Status is the HTTP status to answer: 429, 500, 503, ... Ignored with
	// Disconnect.
	Status int `json:"status,omitempty"`
	// Code is the error's code; empty chooses by Status: rate_limit for 429
	// (use "lock_timeout" for Stripe's other 429).
	Code string `json:"code,omitempty"`
	// Disconnect closes the connection without answering: a network error.
	Disconnect bool `json:"disconnect,omitempty"`
	// AfterExecute fails the request after it executed: a charge it makes
	// happens and its idempotency key keeps the outcome. With Disconnect the
	// real answer is lost on the wire and a retry replays it; with Status the
	// key keeps the error, as Stripe keeps a 500 once execution began.
	// Otherwise the request is refused before executing and nothing is kept.
	AfterExecute bool `json:"after_execute,omitempty"`
	// Method and Path restrict which requests fail: an HTTP method, and a
	// path prefix such as /v1/payment_intents. Empty matches all.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
}

// FailNext queues a failure; queued failures apply in order.
func (s *Server) FailNext(f Failure) error {
	if f.Count < 1 {
		f.Count = 1
	}
	if !f.Disconnect && (f.Status < 400 || f.Status > 599) {
		return errors.New("stripe sandbox: a failure needs Disconnect or a 4xx/5xx Status")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &f)
	return nil
}

// takeFailure consumes one count of the first failure matching r.
func (s *Server) takeFailure(r *http.Request) *Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if (f.Method != "" && !strings.EqualFold(f.Method, r.Method)) || !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		f.Count--
		if f.Count <= 0 {
			s.failures = append(s.failures[:i], s.failures[i+1:]...)
		}
		taken := *f
		return &taken
	}
	return nil
}

// response is the Stripe-shaped error answer for a status failure.
func (f *Failure) response() response {
	e := apiError{Type: "api_error", Code: f.Code, Message: "An unknown error occurred (injected by the sandbox)."}
	switch {
	case f.Status == http.StatusTooManyRequests && (f.Code == "" || f.Code == "rate_limit"):
		e = apiError{Type: "invalid_request_error", Code: "rate_limit",
			Message: "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."}
	case f.Status == http.StatusTooManyRequests && f.Code == "lock_timeout":
		e = apiError{Type: "invalid_request_error", Code: "lock_timeout",
			Message: "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request."}
	case f.Status < 500:
		e.Type = "invalid_request_error"
		e.Message = "Injected failure (" + http.StatusText(f.Status) + ")."
	}
	return jsonResponse(f.Status, errorBody(e))
}
