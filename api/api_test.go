package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/billflow/billflow/metrics"
)

// These tests need no server: every request they send is answered before
// the api reaches Temporal or Postgres.

const (
	testToken = "test-token"
	testWhsec = "whsec_test"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, logs *bytes.Buffer) http.Handler {
	t.Helper()
	if logs == nil {
		logs = &bytes.Buffer{}
	}
	s := &Server{Token: testToken, StripeWebhookSecret: testWhsec, Now: func() time.Time { return testNow },
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	return s.Handler()
}

// do sends a request and decodes the JSON error shape, failing when the
// answer is not JSON.
func do(t *testing.T, h http.Handler, req *http.Request) (int, errorBody, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "body %q", rec.Body.String())
	var body errorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "body %q", rec.Body.String())
	return rec.Code, body, rec.Header()
}

func TestUnknownPathAndWrongMethodAnswerJSON(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, &logs)
	code, body, _ := do(t, h, httptest.NewRequest(http.MethodGet, "/v1/nothing-here", nil))
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "not_found", body.Error)
	assert.Contains(t, body.Message, "/v1/nothing-here")

	code, body, hdr := do(t, h, httptest.NewRequest(http.MethodDelete, "/v1/tenants/abc", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "method_not_allowed", body.Error)
	assert.Contains(t, body.Message, "DELETE")
	assert.Contains(t, hdr.Get("Allow"), "GET")

	code, body, hdr = do(t, h, httptest.NewRequest(http.MethodGet, "/webhooks/stripe", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "POST", hdr.Get("Allow"))
	assert.Equal(t, "method_not_allowed", body.Error)

	// Rejected requests are the caller's mistake: never logged as errors.
	assert.NotContains(t, logs.String(), "level=ERROR")
}

func TestOversizedBodiesAre413(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, &logs)
	// A valid JSON object padded past the limit: cutting it to fit would
	// have parsed (or failed as bad JSON); it must be refused as too large.
	pad := strings.Repeat(" ", maxBody)
	for path, body := range map[string]string{
		"/v1/tenants/" + strings.Repeat("a", 64) + "/activities": `{"id":"a1","type":"resource_created","resource_id":"r","plan_id":"pro"}`,
		"/v1/invoices/inv-1/payments":                            `{"rail":"manual","reference":"wire-1"}`,
		"/v1/invoices/inv-1/close":                               `{"status":"void","reason":"dup"}`,
	} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body+pad))
		req.Header.Set("Authorization", "Bearer "+testToken)
		code, body, _ := do(t, h, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, code, path)
		assert.Equal(t, "too_large", body.Error, path)
		assert.Equal(t, "body", body.Field, path)
	}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(strings.Repeat("x", maxBody+1)))
	req.Header.Set("Stripe-Signature", "t=1,v1=00")
	code, body, _ := do(t, h, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Equal(t, "too_large", body.Error)
	assert.NotContains(t, logs.String(), "level=ERROR")
}

func TestSecondJSONValueIsRefused(t *testing.T) {
	h := newTestServer(t, nil)
	req := httptest.NewRequest(http.MethodPost, "/v1/invoices/inv-1/payments", strings.NewReader(`{"rail":"manual"} {"rail":"stripe"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	code, body, _ := do(t, h, req)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body.Message, "more than one JSON value")
}

// signed is a Stripe delivery of a payment_intent.succeeded event rendered
// for apiVersion, signed at signedAt.
func signed(t *testing.T, apiVersion string, signedAt time.Time) *http.Request {
	t.Helper()
	payload := fmt.Sprintf(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded","api_version":%q,"created":%d,
		"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd","status":"succeeded","metadata":{"invoice_id":"inv-1"}}}}`,
		apiVersion, signedAt.Unix())
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: testWhsec, Timestamp: signedAt})
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(sp.Payload))
	req.Header.Set("Stripe-Signature", sp.Header)
	return req
}

func TestStripeWebhookFromTheFutureIsRefused(t *testing.T) {
	h := newTestServer(t, nil)
	code, body, _ := do(t, h, signed(t, stripe.APIVersion, testNow.Add(10*time.Minute)))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "timestamp_out_of_tolerance", body.Error)
	assert.Contains(t, body.Message, "future")

	code, body, _ = do(t, h, signed(t, stripe.APIVersion, testNow.Add(-10*time.Minute)))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "timestamp_out_of_tolerance", body.Error)
}

func TestStripeWebhookAPIVersionMismatchIsNamed(t *testing.T) {
	h := newTestServer(t, nil)
	code, body, _ := do(t, h, signed(t, "2020-08-27", testNow))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "api_version_mismatch", body.Error)
	assert.Contains(t, body.Message, "2020-08-27")
	assert.Contains(t, body.Message, stripe.APIVersion)
	assert.NotContains(t, body.Message, "signature")

	// A wrong signature is still reported as one.
	req := signed(t, stripe.APIVersion, testNow)
	req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", testNow.Unix(), strings.Repeat("0", 64)))
	code, body, _ = do(t, h, req)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "invalid_signature", body.Error)
}

func TestHealthzReportsWhichDependencyFailed(t *testing.T) {
	down := errors.New("connection refused")
	s := &Server{Checks: []metrics.Check{
		{Name: "postgres", Func: func(context.Context) error { return nil }},
		{Name: "temporal", Func: func(context.Context) error { return down }},
	}}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
		Failed []string          `json:"failed"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "unavailable", body.Status)
	assert.Equal(t, []string{"temporal"}, body.Failed)
	assert.Equal(t, "ok", body.Checks["postgres"])
	assert.NotContains(t, rec.Body.String(), "connection refused", "errors stay in the log")

	s.Checks[1].Func = func(context.Context) error { return nil }
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"status":"ok"`)
}
