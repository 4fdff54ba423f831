// Package outbound delivers billflow's events to the application's webhook
// URL, signed so the receiver can check they came from billflow and are
// fresh. Header format (also in README):
//
//	Billflow-Event-Id:   <event id>          (de-duplicate on this)
//	Billflow-Event-Type: invoice.paid | tenant.suspended | ...
//	Billflow-Signature:  t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
package outbound

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderEventID   = "Billflow-Event-Id"
	HeaderEventType = "Billflow-Event-Type"
	HeaderSignature = "Billflow-Signature"
)

// Sign returns the signature header value for body at instant t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Verification failures.
var (
	ErrMalformedSignature = errors.New("outbound: malformed signature header")
	ErrBadSignature       = errors.New("outbound: signature does not match")
	ErrStale              = errors.New("outbound: signature timestamp outside tolerance")
)

// Verify checks a signature header against the raw body, accepting
// timestamps within tolerance of now (either side, for clock skew). Any v1
// entry may match, so a sender can rotate secrets by signing twice.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrMalformedSignature
			}
			sigs = append(sigs, sig)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformedSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrBadSignature
}

// Event is one outbound event as delivered.
type Event struct {
	ID   string
	Type string
	// Body is the JSON document sent as the request body.
	Body []byte
}

// Sender posts signed events to one URL.
type Sender struct {
	URL    string
	Secret []byte
	Client *http.Client
	// Now is the clock used for signatures; tests replace it.
	Now func() time.Time
}

// DeliveryError is a failed delivery; Status is 0 for transport errors.
type DeliveryError struct {
	Status int
	Err    error
}

func (e *DeliveryError) Error() string {
	if e.Status == 0 {
		return "outbound: delivery failed: " + e.Err.Error()
	}
	return fmt.Sprintf("outbound: receiver answered HTTP %d", e.Status)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Deliver posts one event and succeeds on any 2xx answer. Failures are
// returned for the caller (a Temporal activity) to retry with back-off; the
// receiver de-duplicates by event id.
func (s *Sender) Deliver(ctx context.Context, ev Event) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return fmt.Errorf("outbound: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "billflow-webhooks/1")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEventType, ev.Type)
	req.Header.Set(HeaderSignature, Sign(s.Secret, now(), ev.Body))
	resp, err := client.Do(req)
	if err != nil {
		return &DeliveryError{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &DeliveryError{Status: resp.StatusCode}
	}
	return nil
}
