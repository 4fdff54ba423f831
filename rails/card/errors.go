package card

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// Sentinels an *APIError matches with errors.Is.
var (
	// ErrIdempotencyConflict: the idempotency key was used before with other
	// parameters. A bug in the caller (two different charges sharing a
	// key), never fixed by retrying.
	ErrIdempotencyConflict = errors.New("stripe idempotency key reused with different parameters")
	// ErrNotFound: the customer or PaymentIntent does not exist.
	ErrNotFound = errors.New("stripe object not found")
	// ErrUnauthorized: Stripe refused the API key (401) or its permissions
	// (403).
	ErrUnauthorized = errors.New("stripe refused the API key")
)

// RetryableError is a failure that retrying the same call, with the same
// idempotency key, may fix: 429 (rate_limit, lock_timeout), 409, 5xx, and
// network failures or timeouts where the outcome is unknown. The key makes
// the retry safe: Stripe either runs the request once or returns the first
// run's result.
type RetryableError struct {
	// Op names the call, e.g. "create payment intent".
	Op string
	// StatusCode is Stripe's HTTP status; 0 for a network failure.
	StatusCode int
	// Code is Stripe's error code, e.g. rate_limit or lock_timeout.
	Code string
	// Message is Stripe's message, with anything key-shaped removed.
	Message string
	// RequestID is Stripe's Request-Id, for support.
	RequestID string
	// Replayed is true when Stripe answered from its idempotency cache: it
	// saved this failure (a 500 after the request began executing) for the
	// key, so retrying the same key will keep returning it. The charge's
	// outcome is then unknown and must be reconciled (RetrievePaymentIntent,
	// webhooks) rather than retried.
	Replayed bool
	// Err is the network or timeout cause; nil when Stripe answered.
	Err error
}

func (e *RetryableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe %s: retryable: ", e.Op)
	if e.StatusCode == 0 {
		fmt.Fprintf(&b, "no response: %v", e.Err)
		return b.String()
	}
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Replayed {
		b.WriteString(" (replayed for this idempotency key)")
	}
	if e.RequestID != "" {
		b.WriteString(" [" + e.RequestID + "]")
	}
	return b.String()
}

// Unwrap returns the network cause, if any.
func (e *RetryableError) Unwrap() error { return e.Err }

// APIError is a request Stripe refused for good: retrying it unchanged
// cannot succeed (bad parameters, unknown object, bad key, idempotency
// conflict).
type APIError struct {
	Op         string
	StatusCode int
	// Type is Stripe's error type, e.g. invalid_request_error.
	Type string
	// Code is Stripe's error code, e.g. resource_missing.
	Code string
	// Param names the offending parameter, if Stripe said.
	Param string
	// Message is Stripe's message, with anything key-shaped removed; empty
	// for 401/403, whose messages quote the key.
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe %s: HTTP %d %s", e.Op, e.StatusCode, e.Type)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Param != "" {
		b.WriteString(" (param " + e.Param + ")")
	}
	switch {
	case e.Message != "":
		b.WriteString(": " + e.Message)
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		b.WriteString(": the API key was refused")
	}
	if e.RequestID != "" {
		b.WriteString(" [" + e.RequestID + "]")
	}
	return b.String()
}

// Is matches ErrIdempotencyConflict, ErrNotFound and ErrUnauthorized.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrIdempotencyConflict:
		return e.Type == string(stripe.ErrorTypeIdempotency)
	case ErrNotFound:
		return e.Code == string(stripe.ErrorCodeResourceMissing)
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// UnexpectedStatusError is a PaymentIntent in a state an off-session,
// confirmed, automatically captured charge should never leave it in.
type UnexpectedStatusError struct {
	Op              string
	PaymentIntentID string
	Status          string
}

func (e *UnexpectedStatusError) Error() string {
	return fmt.Sprintf("stripe %s: payment intent %s has unexpected status %q", e.Op, e.PaymentIntentID, e.Status)
}

// apiErr classifies an error from stripe-go. Stripe's own *stripe.Error is
// never returned as is: its Error() is the whole JSON body, PaymentIntent
// client secret included.
func (c *Client) apiErr(op string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// No Stripe answer: a network failure, a timeout, or a body that
		// was not Stripe's JSON (a proxy's 502 page). Whether the request
		// ran is unknown; only a retry with the same key can tell safely.
		return &RetryableError{Op: op, Err: c.redactErr(err)}
	}
	msg := c.redact(se.Msg)
	if se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden {
		msg = "" // Stripe quotes (part of) the key it refused
	}
	replay := replayed(se.LastResponse)
	shouldRetry := se.LastResponse != nil && se.LastResponse.Header.Get("Stripe-Should-Retry") == "true"
	status := se.HTTPStatusCode
	if shouldRetry || status == http.StatusTooManyRequests || status == http.StatusConflict || status >= 500 {
		return &RetryableError{Op: op, StatusCode: status, Code: string(se.Code), Message: msg, RequestID: se.RequestID, Replayed: replay}
	}
	return &APIError{Op: op, StatusCode: status, Type: string(se.Type), Code: string(se.Code), Param: se.Param, Message: msg, RequestID: se.RequestID}
}

// keyShaped matches Stripe secrets: API keys and webhook signing secrets.
var keyShaped = regexp.MustCompile(`\b(sk|rk|pk|whsec)_[A-Za-z0-9_*]+`)

// redact removes apiKey (when not empty) and anything key-shaped from text
// that came from Stripe or the network, so no error string carries a secret.
func redact(s, apiKey string) string {
	if apiKey != "" {
		s = strings.ReplaceAll(s, apiKey, "[redacted]")
	}
	return keyShaped.ReplaceAllString(s, "[redacted]")
}

func (c *Client) redact(s string) string { return redact(s, c.apiKey) }

// redactedError keeps a cause's chain (errors.Is on timeouts still works)
// while its text goes through redact.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (c *Client) redactErr(err error) error {
	if msg := c.redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}
