package meterclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
)

var secret = []byte("hook-secret")

// fakeAPI stands in for billflow's api: it checks the bearer token and the
// payer's event as the engine would (signature, key) and records what it
// was sent; statuses queue answers to give first (503s, say).
type fakeAPI struct {
	t        *testing.T
	payer    string
	mu       sync.Mutex
	posts    []posted
	statuses []int
	srv      *httptest.Server
}

type posted struct {
	Session string
	Event   contract.NostrEvent
}

func newFakeAPI(t *testing.T, payer string) *fakeAPI {
	f := &fakeAPI{t: t, payer: payer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/usage/sessions/{id}/signatures", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body contract.UsageSignRequest
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		f.mu.Lock()
		f.posts = append(f.posts, posted{Session: r.PathValue("id"), Event: body.Event})
		var status int
		if len(f.statuses) > 0 {
			status, f.statuses = f.statuses[0], f.statuses[1:]
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case status != 0:
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"unavailable","message":"retry later"}`))
		case payersign.Verify(body.Event) != nil:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"usage_error","code":"RECEIPT_BAD_SIGNATURE","message":"bad"}`))
		case body.Event.PubKey != f.payer:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"usage_error","code":"RECEIPT_WRONG_PKEY_HASH","message":"not the payer"}`))
		default:
			_, _ = w.Write([]byte(`{"state":"NORMAL"}`))
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) received() []posted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]posted(nil), f.posts...)
}

// harness is a client mounted as a webhook endpoint in front of a fake api.
type harness struct {
	c    *Client
	api  *fakeAPI
	hook *httptest.Server
	sk   string
}

func newHarness(t *testing.T, mode Mode, delay time.Duration) harness {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	api := newFakeAPI(t, pk)
	c, err := New(Options{SecretKey: sk, APIURL: api.srv.URL, APIToken: "tok", WebhookSecret: secret, Mode: mode, Delay: delay})
	require.NoError(t, err)
	hook := httptest.NewServer(c)
	t.Cleanup(hook.Close)
	t.Cleanup(c.Close)
	return harness{c: c, api: api, hook: hook, sk: sk}
}

func signRequest(payer, session string, seq int64, attempt int) contract.SignRequest {
	id := "rcpt-" + session + "-" + string(rune('0'+seq))
	return contract.SignRequest{ReceiptID: id, Attempt: attempt,
		Receipt: contract.Receipt{Version: 2, SessionID: session, Payer: models.TenantID(payer), Seq: seq},
		Event:   contract.NostrEvent{ID: strings.Repeat("cd", 32)}}
}

// deliver posts an event the way billflow's outbound sender does.
func (h harness) deliver(t *testing.T, id, typ string, data any, key []byte) error {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"id": id, "type": typ, "tenant_id": h.c.PublicKey(), "subject_id": "s", "created_at": time.Now().UTC(), "data": json.RawMessage(raw)})
	require.NoError(t, err)
	s := outbound.Sender{URL: h.hook.URL, Secret: key}
	return s.Deliver(context.Background(), outbound.Event{ID: id, Type: typ, Body: body})
}

func waitOutcomes(t *testing.T, c *Client, n int) []Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.WaitOutcomes(ctx, n)
	require.NoError(t, err, "outcomes so far: %+v", out)
	return out
}

// auto: each sign request for the payer is signed with its key and posted
// to the session's signatures endpoint; a redelivered event is answered
// once, a re-send (another event) again.
func TestAutoSignsEachRequestOnce(t *testing.T) {
	h := newHarness(t, ModeAuto, 0)
	sr := signRequest(h.c.PublicKey(), "sess-1", 1, 1)
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, sr, secret))
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, sr, secret))
	sr.Attempt = 2
	require.NoError(t, h.deliver(t, "ev-2", EventSignRequest, sr, secret))
	waitOutcomes(t, h.c, 2)
	h.c.Close()
	out := h.c.Outcomes()
	require.Len(t, out, 2, "the redelivered ev-1 is answered once")
	for _, o := range out {
		assert.Equal(t, "signed", o.Result, "%+v", o)
		assert.Equal(t, "sess-1", o.SessionID)
	}
	posts := h.api.received()
	require.Len(t, posts, 2)
	ev := posts[0].Event
	assert.Equal(t, "sess-1", posts[0].Session)
	assert.Equal(t, h.c.PublicKey(), ev.PubKey)
	assert.Equal(t, payersign.EventKind, ev.Kind)
	assert.Equal(t, sr.ReceiptID, payersign.ReceiptID(ev))
	assert.Contains(t, ev.Tags, []string{"e", sr.Event.ID})
	require.NoError(t, payersign.Verify(ev))
}

// Deliveries that are not billflow's (bad signature) are refused 401;
// other event types and other payers' requests are acknowledged and left.
func TestIgnoresWhatIsNotItsSignRequest(t *testing.T) {
	h := newHarness(t, ModeAuto, 0)
	err := h.deliver(t, "ev-x", EventSignRequest, signRequest(h.c.PublicKey(), "s", 1, 1), []byte("other-secret"))
	var de *outbound.DeliveryError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, http.StatusUnauthorized, de.Status)
	require.NoError(t, h.deliver(t, "ev-y", "invoice.paid", map[string]any{"invoice_id": "inv-1"}, secret))
	other, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	require.NoError(t, h.deliver(t, "ev-z", EventSignRequest, signRequest(other, "s", 1, 1), secret))
	h.c.Close()
	assert.Empty(t, h.c.Outcomes())
	assert.Empty(t, h.api.received())

	resp, err := http.Get(h.hook.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// never: requests are received and left unanswered.
func TestNeverSigns(t *testing.T) {
	h := newHarness(t, ModeNever, 0)
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, signRequest(h.c.PublicKey(), "s", 1, 1), secret))
	out := waitOutcomes(t, h.c, 1)
	assert.Equal(t, "ignored", out[0].Result)
	h.c.Close()
	assert.Empty(t, h.api.received())
}

// wrong-key: the receipt is signed with another key, and the refusal's
// code is recorded.
func TestWrongKeyIsRefused(t *testing.T) {
	h := newHarness(t, ModeWrongKey, 0)
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, signRequest(h.c.PublicKey(), "s", 1, 1), secret))
	out := waitOutcomes(t, h.c, 1)
	assert.Equal(t, "refused", out[0].Result)
	assert.Equal(t, "RECEIPT_WRONG_PKEY_HASH", out[0].Code)
	posts := h.api.received()
	require.Len(t, posts, 1)
	assert.NotEqual(t, h.c.PublicKey(), posts[0].Event.PubKey)
	require.NoError(t, payersign.Verify(posts[0].Event), "a valid signature, by the wrong key")
}

// late: the answer waits for the delay (here: longer than the test), and
// the webhook is acknowledged at once all the same.
func TestLateWaitsForTheDelay(t *testing.T) {
	h := newHarness(t, ModeLate, time.Hour)
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, signRequest(h.c.PublicKey(), "s", 1, 1), secret), "acknowledged before the answer")
	assert.Empty(t, h.api.received(), "not answered before the delay")
	h.c.Close()
	out := h.c.Outcomes()
	require.Len(t, out, 1)
	assert.Equal(t, "failed", out[0].Result)
	assert.Contains(t, out[0].Detail, "before the delay ended")
	assert.Empty(t, h.api.received())

	short := newHarness(t, ModeLate, time.Millisecond)
	require.NoError(t, short.deliver(t, "ev-1", EventSignRequest, signRequest(short.c.PublicKey(), "s", 1, 1), secret))
	assert.Equal(t, "signed", waitOutcomes(t, short.c, 1)[0].Result)
}

// An api that is unavailable (503) is tried again; the signature lands.
func TestRetriesAnUnavailableAPI(t *testing.T) {
	h := newHarness(t, ModeAuto, 0)
	h.api.mu.Lock()
	h.api.statuses = []int{http.StatusServiceUnavailable}
	h.api.mu.Unlock()
	require.NoError(t, h.deliver(t, "ev-1", EventSignRequest, signRequest(h.c.PublicKey(), "s", 1, 1), secret))
	out := waitOutcomes(t, h.c, 1)
	assert.Equal(t, "signed", out[0].Result, "%+v", out[0])
	assert.Len(t, h.api.received(), 2)
}

func TestNewChecksOptions(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	ok := Options{SecretKey: sk, APIURL: "http://127.0.0.1:1", APIToken: "t", WebhookSecret: secret}
	for name, c := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"key":    {func(o *Options) { o.SecretKey = "nope" }, "not 64 hex digits"},
		"mode":   {func(o *Options) { o.Mode = "sometimes" }, `mode "sometimes"`},
		"url":    {func(o *Options) { o.APIURL = "127.0.0.1:8080" }, "api URL"},
		"token":  {func(o *Options) { o.APIToken = "" }, "bearer token"},
		"secret": {func(o *Options) { o.WebhookSecret = nil }, "webhook secret"},
		"late":   {func(o *Options) { o.Mode = ModeLate }, "positive delay"},
	} {
		o := ok
		c.edit(&o)
		_, err := New(o)
		assert.ErrorContains(t, err, c.want, name)
	}
	o := ok
	o.Mode, o.APIURL, o.APIToken = ModeNever, "", ""
	_, err := New(o)
	assert.NoError(t, err, "never answers, so it needs no api")
}
