//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/internal/usagestub"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// usageQueue runs the stub UsageSession workflow on a task queue of the
// test's own and points the starter at it.
func usageQueue(t *testing.T) {
	t.Helper()
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	w := worker.New(tc, queue, worker.Options{})
	usagestub.Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	t.Setenv("BILLFLOW_TASK_QUEUE", queue)
	t.Setenv("DATABASE_URL", "")
}

func runUsage(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, append([]string{"usage"}, args...), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func requireRefused(t *testing.T, r result, code string) {
	t.Helper()
	assert.Equal(t, exitUsageRefused, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "error: "+code+": ")
	assert.Empty(t, r.stdout)
}

// A session through the CLI: start, refused signatures (exit 4 with the
// code), sign --key (the CLI reads the waiting receipt and signs it) for
// the first and the next receipt, report, show, end.
func TestUsageCommandsSession(t *testing.T) {
	usageQueue(t)
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	nsec, err := nip19.EncodePrivateKey(sk)
	require.NoError(t, err)
	npub, err := nip19.EncodePublicKey(pk)
	require.NoError(t, err)

	r := runUsage(t, "start", "--service", "vpn", "--payer", npub, "--max-unit-price", "3", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var started struct {
		SessionID string `json:"session_id"`
		contract.UsageStartResult
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &started), r.stdout)
	id := started.SessionID
	require.NotEmpty(t, id, "a session id is generated")
	require.NotNil(t, started.Receipt)
	assert.Equal(t, contract.SubWaitingFirstReceiptSign, started.SubState)

	requireRefused(t, runUsage(t, "sign", "--session", id, "--key", nostr.GeneratePrivateKey()), "RECEIPT_WRONG_PKEY_HASH")
	other := *started.Receipt
	other.ReceiptID = "rcpt-other"
	ev, err := payersign.Sign(sk, other, time.Now())
	require.NoError(t, err)
	evJSON, err := json.Marshal(ev)
	require.NoError(t, err)
	requireRefused(t, runUsage(t, "sign", "--session", id, "--event", string(evJSON)), "RECEIPT_CANT_FIND")

	r = runUsage(t, "sign", "--session", id, "--key", nsec)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "receipt "+usagestub.ReceiptID(id, 1)+" signed by "+pk)
	assert.Contains(t, r.stdout, "NORMAL")

	r = runUsage(t, "report", "--session", id, "--seconds", "70", "--bytes-sent", "9", "--id", "rep-1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "reported rep-1")
	r = runUsage(t, "show", "--session", id, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v contract.UsageView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.Equal(t, int64(70), v.Seconds)
	require.NotNil(t, v.Waiting, "the stub asks for the next receipt once paid units are used")
	assert.Equal(t, int64(2), v.Waiting.Receipt.Seq)
	r = runUsage(t, "show", "--session", id)
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"NORMAL/WAITING_NEXT_RECEIPT_SIGN", "70 used of 60 paid", usagestub.ReceiptID(id, 2), "1.40 USD"} {
		assert.Contains(t, r.stdout, want)
	}

	r = runUsage(t, "sign", "--session", id, "--key", sk, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.Equal(t, int64(2), v.ReceiptsSigned)

	r = runUsage(t, "end", "--session", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "ENDED")
	requireRefused(t, runUsage(t, "end", "--session", id), "SESSION_ENDED")

	r = runUsage(t, "show", "--session", "nobody-"+pk[:8])
	assert.Equal(t, exitNotFound, r.code, r.stderr)
	assert.Contains(t, r.stderr, "usage session not found: nobody-"+pk[:8])
}

// A refused start exits 4 with its code; signing a session that waits for
// no receipt (FREE) is WRONG_STATE.
func TestUsageCommandsRefused(t *testing.T) {
	usageQueue(t)
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	requireRefused(t, runUsage(t, "start", "--session", "p-"+pk[:8], "--service", usagestub.ServicePricey, "--payer", pk, "--max-unit-price", "1"), "UNIT_PRICE_TOO_HIGH")

	r := runUsage(t, "start", "--session", "f-"+pk[:8], "--service", usagestub.ServiceFree, "--payer", pk, "--max-unit-price", "0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "FREE")
	requireRefused(t, runUsage(t, "sign", "--session", "f-"+pk[:8], "--key", sk), "WRONG_STATE")
}

// usage stats prints the payer's statistics per service and mode (JSON and
// table); usage unban lifts a grace ban (and says so when there is none);
// an unknown payer exits 3, a bad flag 2 naming it.
func TestUsageStatsAndUnbanCommands(t *testing.T) {
	st, url := newTestStore(t)
	payer := walletTenant(t, st)
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := st.WriteUsageStats(ctx, "r1", "vpn", models.TenantID(payer), []store.UsageStats{
		{Mode: store.UsageModePaid, Seconds: 125, BytesReceived: 10, BytesSent: 5, Units: 125, Value: 3},
		{Mode: store.UsageModeGrace, Seconds: 30, Units: 30, Value: 1, Sessions: 1},
	}, now)
	require.NoError(t, err)

	r := runWithDB(t, url, "usage", "stats", "--payer", payer, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v api.UsageStatsView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	require.Len(t, v.Services, 1)
	assert.Equal(t, int64(125), v.Services[0].Paid.Seconds)
	assert.Equal(t, int64(1), v.Services[0].Grace.Sessions)
	r = runWithDB(t, url, "usage", "stats", "--payer", payer, "--service", "vpn")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"service vpn", "paid", "2m5s", "grace", "free"} {
		assert.Contains(t, r.stdout, want)
	}

	r = runWithDB(t, url, "usage", "unban", "--payer", payer, "--service", "vpn")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "no grace ban on vpn")
	require.NoError(t, st.BanUsagePayer(ctx, "vpn", models.TenantID(payer), now.Add(time.Hour), "grace ended unpaid", now))
	r = runWithDB(t, url, "usage", "unban", "--payer", payer, "--service", "vpn")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "lifted "+payer+"'s grace ban on vpn")
	ban, err := st.UsageBan(ctx, "vpn", models.TenantID(payer), now)
	require.NoError(t, err)
	assert.Nil(t, ban)

	nobody := string(testkit.NewTenantID(t))
	r = runWithDB(t, url, "usage", "stats", "--payer", nobody)
	assert.Equal(t, exitNotFound, r.code, r.stdout)
	assert.Contains(t, r.stderr, "tenant "+nobody+" not found")
	r = runWithDB(t, url, "usage", "unban", "--payer", payer, "--service", "VPN!")
	assert.Equal(t, exitInvalid, r.code, r.stdout)
	assert.Contains(t, r.stderr, "--service")
	r = runWithDB(t, url, "usage", "unban", "--payer", payer)
	assert.Equal(t, exitInvalid, r.code)
	assert.Contains(t, r.stderr, "--service is required")
}
