//go:build integration

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/internal/usagestub"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// usageAPI is an api (no Postgres) whose billing client's task queue runs
// the stub UsageSession workflow.
func usageAPI(t *testing.T) walletHarness {
	t.Helper()
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	usagestub.Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	hs := httptest.NewServer((&api.Server{Billing: billing.New(tc, queue), Token: "t"}).Handler())
	t.Cleanup(hs.Close)
	return walletHarness{hs: hs}
}

// usageRefusal is a usage session's error answer.
type usageRefusal struct {
	Error   string `json:"error"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// A session over HTTP: start, refused signatures (4xx with the usage error
// code), a good one, reports, show and end; an ended session and an
// unknown one answer as such.
func TestUsageAPISession(t *testing.T) {
	h := usageAPI(t)
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	id := "api-" + pk[:8]
	base := "/v1/usage/sessions/" + id

	var res contract.UsageStartResult
	start := jsonBody(t, map[string]any{"session_id": id, "service_id": "vpn", "payer": pk, "max_unit_price": 3})
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, "/v1/usage/sessions", start, &res))
	require.NotNil(t, res.Receipt)
	assert.Equal(t, contract.SubWaitingFirstReceiptSign, res.SubState)

	other := nostr.GeneratePrivateKey()
	bad, err := payersign.Sign(other, *res.Receipt, time.Now())
	require.NoError(t, err)
	var refused usageRefusal
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, base+"/signatures", jsonBody(t, map[string]any{"event": bad}), &refused))
	assert.Equal(t, "usage_error", refused.Error)
	assert.Equal(t, string(models.UsageReceiptWrongPayer), refused.Code)
	wrong := *res.Receipt
	wrong.ReceiptID = "rcpt-elsewhere"
	bad, err = payersign.Sign(sk, wrong, time.Now())
	require.NoError(t, err)
	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, base+"/signatures", jsonBody(t, map[string]any{"event": bad}), &refused))
	assert.Equal(t, "RECEIPT_CANT_FIND", refused.Code)
	assert.Contains(t, refused.Message, "rcpt-elsewhere")
	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, base+"/signatures", `{"event":{"id":"x"}}`, &refused))
	assert.Equal(t, "invalid", refused.Error)
	assert.Equal(t, "event.id", refused.Field)
	assert.Empty(t, refused.Code)

	good, err := payersign.Sign(sk, *res.Receipt, time.Now())
	require.NoError(t, err)
	var v contract.UsageView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, base+"/signatures", jsonBody(t, map[string]any{"event": good}), &v))
	assert.Equal(t, contract.UsageNormal, v.State)
	assert.Equal(t, int64(1), v.ReceiptsSigned)

	var acc api.UsageReportAccepted
	report := `{"id":"rep-1","seconds":20,"bytes_received":100,"bytes_sent":50}`
	require.Equal(t, http.StatusAccepted, h.call(t, http.MethodPost, base+"/reports", report, &acc))
	assert.True(t, acc.Accepted)
	require.Equal(t, http.StatusAccepted, h.call(t, http.MethodPost, base+"/reports", report, &acc))
	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, base+"/reports", `{"id":"rep-2","seconds":-1}`, &refused))
	assert.Equal(t, "seconds", refused.Field)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, base, "", &v))
	assert.Equal(t, int64(20), v.Seconds, "the same report id counts once")
	assert.Equal(t, int64(150), v.BytesReceived+v.BytesSent)

	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, base+"/end", `{"reprt":{}}`, &refused))
	assert.Equal(t, "body", refused.Field, "a misspelt end body is refused, and the session is not ended")
	// End with a last report, sent before the end.
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, base+"/end", `{"report":{"id":"rep-3","seconds":5}}`, &v))
	assert.Equal(t, contract.UsageEnded, v.State)
	assert.Equal(t, int64(25), v.Seconds)
	refused = usageRefusal{}
	assert.Equal(t, http.StatusConflict, h.call(t, http.MethodPost, base+"/end", "", &refused))
	assert.Equal(t, "SESSION_ENDED", refused.Code)
	refused = usageRefusal{}
	assert.Equal(t, http.StatusConflict, h.call(t, http.MethodPost, "/v1/usage/sessions", start, &refused))
	assert.Equal(t, "SESSION_ENDED", refused.Code, "an ended session's id is not started again")
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, base, "", &v))
	assert.Equal(t, contract.UsageEnded, v.State)

	refused = usageRefusal{}
	assert.Equal(t, http.StatusNotFound, h.call(t, http.MethodGet, "/v1/usage/sessions/nobody-"+pk[:8], "", &refused))
	assert.Equal(t, "not_found", refused.Error)
	assert.Contains(t, refused.Message, "nobody-"+pk[:8])
}

// Refused starts: a price above the client's is 400 UNIT_PRICE_TOO_HIGH; a
// bad payer is 400 naming the field; no token is 401.
func TestUsageAPIStartRefused(t *testing.T) {
	h := usageAPI(t)
	pk, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	var refused usageRefusal
	body := jsonBody(t, map[string]any{"session_id": "p-" + pk[:8], "service_id": usagestub.ServicePricey, "payer": pk, "max_unit_price": 1})
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, "/v1/usage/sessions", body, &refused))
	assert.Equal(t, "UNIT_PRICE_TOO_HIGH", refused.Code)
	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, "/v1/usage/sessions", `{"session_id":"s","service_id":"vpn","payer":"bob"}`, &refused))
	assert.Equal(t, "payer", refused.Field)
	refused = usageRefusal{}
	assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodPost, "/v1/usage/sessions", `{"session":"s"}`, &refused))
	assert.Equal(t, "body", refused.Field, "a misspelt field is named")

	resp, err := http.Post(h.hs.URL+"/v1/usage/sessions", "application/json", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// Statistics per service and mode from Postgres, and an operator lifting a
// grace ban: the payer's rows grouped by service with every mode present,
// one service asked for (zeros when it has none), refusals naming the
// parameter, an unknown payer 404; DELETE of a ban lifts it (the store
// has none after) and a second DELETE answers lifted false.
func TestUsageAPIStatsAndUnban(t *testing.T) {
	h := newWalletHarness(t)
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := h.st.WriteUsageStats(ctx, "r1", "vpn", h.tenant, []store.UsageStats{
		{Mode: store.UsageModePaid, Seconds: 120, BytesReceived: 10, BytesSent: 5, Units: 120, Value: 2},
		{Mode: store.UsageModeGrace, Seconds: 30, Units: 30, Value: 1, Sessions: 1},
	}, now)
	require.NoError(t, err)
	_, err = h.st.WriteUsageStats(ctx, "r1", "vpn", h.tenant, []store.UsageStats{{Mode: store.UsageModePaid, Seconds: 999}}, now)
	require.NoError(t, err)
	_, err = h.st.WriteUsageStats(ctx, "e1", "api-free", h.tenant, []store.UsageStats{{Mode: store.UsageModeFree, Seconds: 60, Units: 60}}, now)
	require.NoError(t, err)

	var v api.UsageStatsView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/usage/stats?payer="+string(h.tenant), "", &v))
	assert.Equal(t, h.tenant, v.Payer)
	require.Len(t, v.Services, 2)
	assert.Equal(t, "api-free", v.Services[0].ServiceID)
	assert.Equal(t, int64(60), v.Services[0].Free.Seconds)
	assert.Equal(t, store.UsageModePaid, v.Services[0].Paid.Mode)
	assert.True(t, v.Services[0].Paid.Zero())
	vpn := v.Services[1]
	assert.Equal(t, store.UsageStats{Mode: store.UsageModePaid, Seconds: 120, BytesReceived: 10, BytesSent: 5, Units: 120, Value: 2}, vpn.Paid,
		"the same write key counts once")
	assert.Equal(t, int64(1), vpn.Grace.Sessions)
	assert.True(t, vpn.Free.Zero())

	v = api.UsageStatsView{}
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/usage/stats?service=vpn&payer="+string(h.tenant), "", &v))
	require.Len(t, v.Services, 1)
	assert.Equal(t, int64(120), v.Services[0].Paid.Seconds)
	v = api.UsageStatsView{}
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, "/v1/usage/stats?service=relay-bandwidth&payer="+string(h.tenant), "", &v))
	require.Len(t, v.Services, 1, "a service without usage answers zeros")
	assert.True(t, v.Services[0].Paid.Zero() && v.Services[0].Grace.Zero())

	for _, c := range []struct{ query, field string }{
		{"", "payer"}, {"?payer=bob", "payer"}, {"?payer=" + string(h.tenant) + "&service=VPN!", "service"},
	} {
		var e errorAnswer
		assert.Equal(t, http.StatusBadRequest, h.call(t, http.MethodGet, "/v1/usage/stats"+c.query, "", &e), c.query)
		assert.Equal(t, c.field, e.Field, c.query)
	}
	nobody := testkit.NewTenantID(t)
	h.requireRefused(t, http.MethodGet, "/v1/usage/stats?payer="+string(nobody), "", http.StatusNotFound, string(nobody))

	until := now.Add(time.Hour).Truncate(time.Second)
	require.NoError(t, h.st.BanUsagePayer(ctx, "vpn", h.tenant, until, "grace ended unpaid", now))
	var u api.UsageUnbanned
	require.Equal(t, http.StatusOK, h.call(t, http.MethodDelete, "/v1/usage/bans/vpn/"+string(h.tenant), "", &u))
	assert.True(t, u.Lifted)
	require.NotNil(t, u.ExpiresAt)
	assert.True(t, until.Equal(*u.ExpiresAt), "%s vs %s", until, u.ExpiresAt)
	ban, err := h.st.UsageBan(ctx, "vpn", h.tenant, now)
	require.NoError(t, err)
	assert.Nil(t, ban, "the ban is gone")
	u = api.UsageUnbanned{}
	require.Equal(t, http.StatusOK, h.call(t, http.MethodDelete, "/v1/usage/bans/vpn/"+string(h.tenant), "", &u))
	assert.False(t, u.Lifted, "nothing to lift")
	assert.Nil(t, u.ExpiresAt)
	h.requireRefused(t, http.MethodDelete, "/v1/usage/bans/vpn/"+string(nobody), "", http.StatusNotFound, string(nobody))
	h.requireRefused(t, http.MethodDelete, "/v1/usage/bans/Bad!/"+string(h.tenant), "", http.StatusBadRequest, "Bad!")
	h.requireRefused(t, http.MethodDelete, "/v1/usage/bans/vpn/bob", "", http.StatusBadRequest, "bob")
}
