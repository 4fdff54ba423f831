// Package meterclient is billflow's sandbox metered client: the payer's
// side of a usage session (issue 10). It holds the payer's Nostr key,
// receives billflow's outbound events as the application's webhook
// endpoint (verifying the Billflow-Signature header), and answers each
// usage.sign_request for its key by co-signing the receipt
// (internal/payersign) and posting the event to the api's
// POST /v1/usage/sessions/{id}/signatures.
//
// Modes let tests and demos misbehave on purpose: auto (sign at once), late
// (sign after a delay: past the engine's sign timeout, a re-send arrives
// first), never (receive and ignore), wrong-key (sign with another key: the
// engine answers RECEIPT_WRONG_PKEY_HASH).
package meterclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/outbound"
)

// EventSignRequest is the outbound event type that carries a
// contract.SignRequest in its data.
const EventSignRequest = "usage.sign_request"

// Mode is how the client answers sign requests.
type Mode string

// Modes.
const (
	ModeAuto     Mode = "auto"
	ModeLate     Mode = "late"
	ModeNever    Mode = "never"
	ModeWrongKey Mode = "wrong-key"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeAuto, ModeLate, ModeNever, ModeWrongKey:
		return m, nil
	}
	return "", fmt.Errorf("mode %q is not auto, late, never or wrong-key", s)
}

// Options configure a Client.
type Options struct {
	// SecretKey is the payer's secret key, hex or nsec.
	SecretKey string
	// APIURL is billflow's api (http://host:port), APIToken its bearer token.
	APIURL   string
	APIToken string
	// WebhookSecret verifies deliveries (BILLFLOW_WEBHOOK_SECRET).
	WebhookSecret []byte
	Mode          Mode
	// Delay is how long ModeLate waits before signing.
	Delay time.Duration
	// Tolerance bounds a delivery's signature age (default 5 minutes).
	Tolerance time.Duration
	HTTP      *http.Client
	Logger    *slog.Logger
	// Now is the clock for signatures and events; tests replace it.
	Now func() time.Time
}

// Outcome is what became of one sign request.
type Outcome struct {
	EventID   string `json:"event_id"`
	SessionID string `json:"session_id"`
	ReceiptID string `json:"receipt_id"`
	Attempt   int    `json:"attempt"`
	// Result: "signed", "refused" (Code says why), "ignored" (mode never),
	// "failed" (the api could not be reached; Detail says how).
	Result string `json:"result"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Client is the sandbox metered client. It is an http.Handler: mount it
// as the application's webhook endpoint.
type Client struct {
	opts   Options
	sk     string
	pubkey string
	// signKey is what it signs with: sk, or another key in ModeWrongKey.
	signKey string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	seen     map[string]bool
	outcomes []Outcome
	notify   chan struct{}
}

// New checks the options and returns a client.
func New(opts Options) (*Client, error) {
	sk, err := payersign.ParseSecretKey(opts.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("meterclient: %w", err)
	}
	if opts.Mode == "" {
		opts.Mode = ModeAuto
	}
	if _, err := ParseMode(string(opts.Mode)); err != nil {
		return nil, fmt.Errorf("meterclient: %w", err)
	}
	if opts.Mode != ModeNever {
		u, err := url.Parse(opts.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("meterclient: api URL %q is not http(s)://host[:port]", opts.APIURL)
		}
		if opts.APIToken == "" {
			return nil, errors.New("meterclient: the api's bearer token is empty")
		}
	}
	if len(opts.WebhookSecret) == 0 {
		return nil, errors.New("meterclient: the webhook secret is empty: deliveries could not be verified")
	}
	if opts.Mode == ModeLate && opts.Delay <= 0 {
		return nil, errors.New("meterclient: mode late needs a positive delay")
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = 5 * time.Minute
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pk, err := payersign.PublicKey(sk)
	if err != nil {
		return nil, fmt.Errorf("meterclient: %w", err)
	}
	c := &Client{opts: opts, sk: sk, pubkey: pk, signKey: sk, seen: map[string]bool{}, notify: make(chan struct{})}
	if opts.Mode == ModeWrongKey {
		c.signKey = nostr.GeneratePrivateKey()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// PublicKey is the payer's public key (hex): start sessions for it.
func (c *Client) PublicKey() string { return c.pubkey }

// Close stops answering and waits for answers under way.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
}

// Outcomes are what became of the sign requests so far, in order (never
// nil, so its JSON is a list).
func (c *Client) Outcomes() []Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Outcome{}, c.outcomes...)
}

// WaitOutcomes blocks until at least n outcomes are recorded or ctx ends.
func (c *Client) WaitOutcomes(ctx context.Context, n int) ([]Outcome, error) {
	for {
		c.mu.Lock()
		if len(c.outcomes) >= n {
			out := append([]Outcome(nil), c.outcomes...)
			c.mu.Unlock()
			return out, nil
		}
		ch := c.notify
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return c.Outcomes(), ctx.Err()
		}
	}
}

func (c *Client) record(o Outcome) {
	c.mu.Lock()
	c.outcomes = append(c.outcomes, o)
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
	c.opts.Logger.Info("sign request", "session", o.SessionID, "receipt", o.ReceiptID, "attempt", o.Attempt, "result", o.Result, "code", o.Code, "detail", o.Detail)
}

// envelope is billflow's outbound event body (activities' eventEnvelope).
type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	TenantID  string          `json:"tenant_id"`
	SubjectID string          `json:"subject_id"`
	Data      json.RawMessage `json:"data"`
}

// ServeHTTP receives one outbound event: a bad signature is 401, anything
// else is acknowledged (204) at once, and a sign request for this payer is
// answered in the background, so a late answer never holds up billflow's
// delivery of other events. A redelivered event id is answered once.
func (c *Client) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST billflow's outbound events here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if err := outbound.Verify(c.opts.WebhookSecret, r.Header.Get(outbound.HeaderSignature), body, c.opts.Now(), c.opts.Tolerance); err != nil {
		c.opts.Logger.Warn("rejected delivery", "error", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "not an event envelope: "+err.Error(), http.StatusBadRequest)
		return
	}
	if env.ID == "" {
		env.ID = r.Header.Get(outbound.HeaderEventID)
	}
	if env.Type != EventSignRequest {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var sr contract.SignRequest
	if err := json.Unmarshal(env.Data, &sr); err != nil || sr.ReceiptID == "" {
		http.Error(w, "usage.sign_request without a sign request in data", http.StatusBadRequest)
		return
	}
	if string(sr.Receipt.Payer) != c.pubkey {
		// Another payer's receipt: an application relays each to its payer.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c.mu.Lock()
	dup := c.seen[env.ID]
	c.seen[env.ID] = true
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if dup {
		return
	}
	session := sr.Receipt.SessionID
	if session == "" {
		session = env.SubjectID
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.answer(env.ID, session, sr)
	}()
}

// answer signs per the mode and posts the signature.
func (c *Client) answer(eventID, session string, sr contract.SignRequest) {
	o := Outcome{EventID: eventID, SessionID: session, ReceiptID: sr.ReceiptID, Attempt: sr.Attempt}
	switch c.opts.Mode {
	case ModeNever:
		o.Result = "ignored"
		c.record(o)
		return
	case ModeLate:
		t := time.NewTimer(c.opts.Delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			o.Result, o.Detail = "failed", "stopped before the delay ended"
			c.record(o)
			return
		}
	}
	ev, err := payersign.Sign(c.signKey, sr, c.opts.Now())
	if err != nil {
		o.Result, o.Detail = "failed", err.Error()
		c.record(o)
		return
	}
	o.Result, o.Code, o.Detail = c.post(session, ev)
	c.record(o)
}

// post sends the signature, retrying what may pass later (transport
// errors, 5xx) a few times; a refusal is final.
func (c *Client) post(session string, ev contract.NostrEvent) (result, code, detail string) {
	body, _ := json.Marshal(contract.UsageSignRequest{Event: ev})
	endpoint := strings.TrimRight(c.opts.APIURL, "/") + "/v1/usage/sessions/" + url.PathEscape(session) + "/signatures"
	wait := 500 * time.Millisecond
	for try := 1; ; try++ {
		status, answer, err := c.postOnce(endpoint, body)
		switch {
		case err == nil && status >= 200 && status < 300:
			return "signed", "", ""
		case err == nil && status >= 400 && status < 500:
			return "refused", answer.Code, fmt.Sprintf("HTTP %d %s: %s", status, answer.Error, answer.Message)
		}
		detail = fmt.Sprintf("HTTP %d %s", status, answer.Message)
		if err != nil {
			detail = err.Error()
		}
		if try == 4 {
			return "failed", "", detail
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return "failed", "", "stopped: " + detail
		}
		wait *= 2
	}
}

// apiError is the api's error body.
type apiError struct {
	Error   string `json:"error"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (c *Client) postOnce(endpoint string, body []byte) (int, apiError, error) {
	var answer apiError
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, answer, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.opts.APIToken)
	resp, err := c.opts.HTTP.Do(req)
	if err != nil {
		return 0, answer, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer)
	}
	return resp.StatusCode, answer, nil
}
