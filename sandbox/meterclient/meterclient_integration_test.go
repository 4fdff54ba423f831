//go:build integration

package meterclient_test

import (
	"context"
	"encoding/json"
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
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/internal/usagestub"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/sandbox/meterclient"
)

// The metered client against billflow's real api, in front of the stub
// UsageSession workflow on the dev server: the sign request it is
// delivered is signed and accepted (the session goes NORMAL); in wrong-key
// mode the api's refusal code comes back.
func TestMeterClientAgainstTheAPI(t *testing.T) {
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	usagestub.Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	bc := billing.New(tc, queue)
	hs := httptest.NewServer((&api.Server{Billing: bc, Token: "tok"}).Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, c := range []struct {
		mode       meterclient.Mode
		result     string
		code       string
		finalState string
	}{
		{meterclient.ModeAuto, "signed", "", contract.UsageNormal},
		{meterclient.ModeWrongKey, "refused", string(models.UsageReceiptWrongPayer), contract.UsageIdle},
	} {
		mc, err := meterclient.New(meterclient.Options{SecretKey: nostr.GeneratePrivateKey(), APIURL: hs.URL, APIToken: "tok",
			WebhookSecret: []byte("hook"), Mode: c.mode})
		require.NoError(t, err)
		hook := httptest.NewServer(mc)
		session := string(c.mode) + "-" + mc.PublicKey()[:8]
		res, err := bc.StartUsage(ctx, billing.UsageStartRequest{SessionID: session, ServiceID: "vpn", Payer: models.TenantID(mc.PublicKey()), MaxUnitPrice: 5})
		require.NoError(t, err)
		require.NotNil(t, res.Receipt)

		// What the worker's outbound delivery sends for the first receipt.
		data, err := json.Marshal(res.Receipt)
		require.NoError(t, err)
		body, err := json.Marshal(map[string]any{"id": "ev-" + session, "type": meterclient.EventSignRequest, "tenant_id": mc.PublicKey(),
			"subject_id": session, "created_at": time.Now().UTC(), "data": json.RawMessage(data)})
		require.NoError(t, err)
		sender := outbound.Sender{URL: hook.URL, Secret: []byte("hook")}
		require.NoError(t, sender.Deliver(ctx, outbound.Event{ID: "ev-" + session, Type: meterclient.EventSignRequest, Body: body}))
		out, err := mc.WaitOutcomes(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, c.result, out[0].Result, "%s: %+v", c.mode, out[0])
		assert.Equal(t, c.code, out[0].Code, "%s", c.mode)
		v, err := bc.UsageSession(ctx, session)
		require.NoError(t, err)
		assert.Equal(t, c.finalState, v.State, "%s", c.mode)
		mc.Close()
		hook.Close()
	}
}
