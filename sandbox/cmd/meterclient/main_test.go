package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/sandbox/meterclient"
)

// start runs the command on a free port and returns its printed variables
// and a stop function that waits for it to return.
func start(t *testing.T, dir string, env map[string]string) (map[string]string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", dir, "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, outW, io.Discard)
		_ = outW.Close()
	}()
	vars := map[string]string{}
	sc := bufio.NewScanner(outR)
	for len(vars) < 3 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
	}
	require.Len(t, vars, 3, "printed variables")
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	return vars, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("run did not return after its context ended")
			return nil
		}
	}
}

// The command serves the webhook, signs a sign request for its payer
// through the api, lists the outcome, keeps its key across restarts and
// stops when its context ends.
func TestRunSignsThroughTheAPI(t *testing.T) {
	posted := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body contract.UsageSignRequest
		_ = json.NewDecoder(r.Body).Decode(&body)
		posted <- r.URL.Path + " " + body.Event.PubKey
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer api.Close()
	env := map[string]string{"BILLFLOW_API_URL": api.URL, "BILLFLOW_API_TOKEN": "tok", "BILLFLOW_WEBHOOK_SECRET": "hook"}
	dir := t.TempDir()
	vars, stop := start(t, dir, env)
	pub := vars["METERCLIENT_PUBKEY"]
	require.Len(t, pub, 64)
	assert.True(t, strings.HasPrefix(vars["METERCLIENT_NPUB"], "npub1"))

	sr := contract.SignRequest{ReceiptID: "rcpt-1", Attempt: 1, Event: contract.NostrEvent{ID: strings.Repeat("ab", 32)},
		Receipt: contract.Receipt{Version: 2, SessionID: "sess-9", Payer: models.TenantID(pub), Seq: 1}}
	data, err := json.Marshal(sr)
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"id": "ev-1", "type": meterclient.EventSignRequest, "data": json.RawMessage(data)})
	require.NoError(t, err)
	s := outbound.Sender{URL: vars["METERCLIENT_URL"], Secret: []byte("hook")}
	require.NoError(t, s.Deliver(context.Background(), outbound.Event{ID: "ev-1", Type: meterclient.EventSignRequest, Body: body}))
	select {
	case got := <-posted:
		assert.Equal(t, "/v1/usage/sessions/sess-9/signatures "+pub, got)
	case <-time.After(30 * time.Second):
		t.Fatal("no signature reached the api")
	}
	require.NoError(t, stop())

	again, stop := start(t, dir, env)
	assert.Equal(t, pub, again["METERCLIENT_PUBKEY"], "the payer key is kept in --dir")
	resp, err := http.Get(again["METERCLIENT_URL"] + "outcomes")
	require.NoError(t, err)
	var outcomes []meterclient.Outcome
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&outcomes))
	resp.Body.Close()
	assert.NotNil(t, outcomes)
	require.NoError(t, stop())
}

// TestRunRejectsBadFlags keeps flag and configuration errors from being silent.
func TestRunRejectsBadFlags(t *testing.T) {
	env := func(string) string { return "" }
	assert.Error(t, run(context.Background(), []string{"--nope"}, env, io.Discard, io.Discard))
	assert.ErrorContains(t, run(context.Background(), []string{}, env, io.Discard, io.Discard), "--dir")
	assert.ErrorContains(t, run(context.Background(), []string{"--dir", t.TempDir(), "--mode", "maybe"}, env, io.Discard, io.Discard), "maybe")
	assert.ErrorContains(t, run(context.Background(), []string{"--dir", t.TempDir(), "--api-url", "http://127.0.0.1:1"}, env, io.Discard, io.Discard), "bearer token")
}
