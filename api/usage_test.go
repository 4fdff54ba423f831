package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/billflow/billflow/models"
)

// Every usage error code answers a 4xx: a refusal the caller can act on,
// never a retry-later 5xx.
func TestUsageErrorStatusIsClientError(t *testing.T) {
	for code := range models.UsageErrorMeaning {
		s := UsageErrorStatus(code)
		assert.True(t, s >= 400 && s < 500, "%s -> %d", code, s)
	}
	assert.Equal(t, http.StatusBadRequest, UsageErrorStatus(models.UsageReceiptCantFind))
	assert.Equal(t, http.StatusNotFound, UsageErrorStatus(models.UsageServiceNotFound))
	assert.Equal(t, http.StatusConflict, UsageErrorStatus(models.UsageSessionEnded))
}

// The usage endpoints are behind the bearer token, and a wrong method is
// the JSON 405.
func TestUsageEndpointsNeedToken(t *testing.T) {
	h := newTestServer(t, nil)
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v1/usage/sessions"},
		{http.MethodPost, "/v1/usage/sessions/s1/reports"},
		{http.MethodPost, "/v1/usage/sessions/s1/signatures"},
		{http.MethodPost, "/v1/usage/sessions/s1/end"},
		{http.MethodGet, "/v1/usage/sessions/s1"},
		{http.MethodGet, "/v1/usage/stats?payer=p"},
		{http.MethodDelete, "/v1/usage/bans/vpn/p"},
	} {
		code, body, _ := do(t, h, httptest.NewRequest(c.method, c.path, nil))
		assert.Equal(t, http.StatusUnauthorized, code, "%s %s", c.method, c.path)
		assert.Equal(t, "unauthorized", body.Error)
	}
	code, _, hdr := do(t, h, httptest.NewRequest(http.MethodDelete, "/v1/usage/sessions/s1", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "GET, HEAD", hdr.Get("Allow"))
}
