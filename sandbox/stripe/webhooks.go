package stripesandbox

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
	"slices"
	"strconv"
	"time"
)

// Delivery is one attempt to deliver an event to the webhook URL.
type Delivery struct {
	EventID string
	Attempt int
	// Status is the endpoint's HTTP status, 0 when the request failed.
	Status int
	// Err says why a request failed without a status.
	Err string
}

// emitLocked records an event for obj and schedules its delivery. Callers
// hold s.mu.
func (s *Server) emitLocked(typ string, obj any, req *apiRequest) *event {
	ev := &event{ID: newID("evt"), Type: typ, Created: s.now().Unix()}
	var reqID, key *string
	if req != nil {
		reqID = optional(req.requestID)
		key = optional(req.idempotencyKey)
	}
	ev.body = mustJSON(eventJSON{
		ID: ev.ID, Object: "event", APIVersion: s.opts.APIVersion, Created: ev.Created,
		Data: eventDataJSON{Object: obj}, PendingWebhooks: 1,
		Request: eventRequestJSON{ID: reqID, IdempotencyKey: key}, Type: typ,
	})
	s.events = append(s.events, ev)
	s.eventsByID[ev.ID] = ev
	s.dirty = true
	if s.closed || s.webhookURL == "" || s.dropWebhooks || !s.enabled(typ) {
		if s.dropWebhooks {
			s.log.Info("stripe sandbox: webhook dropped", "event", ev.ID, "type", typ)
		}
		return ev
	}
	s.startDeliveryLocked(s.webhookURL, ev, pendingDelivery{EventID: ev.ID, Attempt: 1, Due: s.now(), FirstAt: s.now()})
	return ev
}

// WaitWebhooks waits until no delivery is in flight: each has succeeded or
// given up. Tests call it before reading Deliveries.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	s.mu.Lock()
	if s.pending == 0 {
		s.mu.Unlock()
		return nil
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) enabled(typ string) bool {
	return len(s.opts.EnabledEvents) == 0 || slices.Contains(s.opts.EnabledEvents, typ) || slices.Contains(s.opts.EnabledEvents, "*")
}

// pendingDelivery is where the delivery of one event stands: the attempt
// to make next and when, and when the first attempt was made (the retry
// horizon counts from it).
type pendingDelivery struct {
	EventID string    `json:"event_id"`
	Attempt int       `json:"attempt"`
	Due     time.Time `json:"due"`
	FirstAt time.Time `json:"first_at"`
}

// StripeRetryHorizon is how long Stripe keeps retrying a failed delivery.
const StripeRetryHorizon = 72 * time.Hour

// StripeRetryDelay is the wait after the n-th failed attempt (n >= 1) in
// Stripe's shape: exponential back-off, one minute doubling up to twelve
// hours, until StripeRetryHorizon has passed since the first attempt.
func StripeRetryDelay(n int) time.Duration {
	d := time.Minute
	for i := 1; i < n && d < 12*time.Hour; i++ {
		d *= 2
	}
	return min(d, 12*time.Hour)
}

// nextAttempt says when to try again after attempt p.Attempt failed at
// failedAt, or false to give up.
func (s *Server) nextAttempt(p pendingDelivery, failedAt time.Time) (time.Time, bool) {
	if s.opts.WebhookTimeScale <= 0 {
		if p.Attempt >= s.opts.WebhookAttempts {
			return time.Time{}, false
		}
		return failedAt.Add(time.Duration(p.Attempt) * s.opts.WebhookRetryDelay), true
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * s.opts.WebhookTimeScale) }
	next := failedAt.Add(scale(StripeRetryDelay(p.Attempt)))
	if next.Sub(p.FirstAt) > scale(StripeRetryHorizon) {
		return time.Time{}, false
	}
	return next, true
}

// startDeliveryLocked runs the delivery of ev from p in the background,
// tracked (for the state file and WaitWebhooks) until it succeeds or gives
// up. Callers hold s.mu.
func (s *Server) startDeliveryLocked(target string, ev *event, p pendingDelivery) {
	s.wg.Add(1)
	if s.pending == 0 {
		s.idle = make(chan struct{})
	}
	s.pending++
	s.retrying[ev.ID] = p
	s.dirty = true
	go func() {
		defer s.wg.Done()
		err := s.deliver(s.ctx, target, ev, p, true)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pending--; s.pending == 0 {
			close(s.idle)
		}
		if err != nil && s.ctx.Err() != nil {
			return // closing: the state file keeps the delivery for the next start
		}
		delete(s.retrying, ev.ID)
		s.dirty = true
		if err != nil {
			s.log.Warn("stripe sandbox: webhook not delivered", "event", ev.ID, "type", ev.Type, "err", err)
		}
	}()
}

// deliver posts an event from p.Attempt on until the endpoint answers 2xx
// or the schedule runs out, signing each attempt afresh as Stripe does.
// With track, each step is written to s.retrying for the state file.
func (s *Server) deliver(ctx context.Context, target string, ev *event, p pendingDelivery, track bool) error {
	var last error
	for {
		if wait := p.Due.Sub(s.now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		status, err := s.post(ctx, target, ev)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := Delivery{EventID: ev.ID, Attempt: p.Attempt, Status: status}
		if err != nil {
			d.Err = err.Error()
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		s.log.Info("stripe sandbox: webhook attempt", "event", ev.ID, "type", ev.Type, "attempt", p.Attempt, "status", status)
		if err == nil && status/100 == 2 {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("endpoint answered %d", status)
		}
		next, ok := s.nextAttempt(p, s.now())
		if !ok {
			return fmt.Errorf("gave up after %d attempts: %w", p.Attempt, last)
		}
		p.Attempt, p.Due = p.Attempt+1, next
		if track {
			s.mu.Lock()
			s.retrying[ev.ID] = p
			s.dirty = true
			s.mu.Unlock()
		}
	}
}

func (s *Server) post(ctx context.Context, target string, ev *event) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(ev.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", SignatureHeader(ev.body, s.opts.WebhookSecret, s.now()))
	resp, err := s.webhooks.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// SignatureHeader is the Stripe-Signature header for payload signed at t:
// "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<payload>" keyed by secret>".
// Tests use it to forge deliveries (old, tampered, wrongly keyed).
func SignatureHeader(payload []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(payload)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrUnknownEvent is returned for an event id the sandbox never emitted.
var ErrUnknownEvent = errors.New("stripe sandbox: no such event")

// Redeliver sends an event to the webhook URL again (as Stripe's "resend"
// does, and as a replaying attacker might), even when deliveries are being
// dropped, and waits for it, retrying on non-2xx.
func (s *Server) Redeliver(ctx context.Context, eventID string) error {
	s.mu.Lock()
	ev, found := s.eventsByID[eventID]
	target := s.webhookURL
	s.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknownEvent, eventID)
	}
	if target == "" {
		return errors.New("stripe sandbox: no webhook URL configured")
	}
	return s.deliver(ctx, target, ev, pendingDelivery{EventID: ev.ID, Attempt: 1, Due: s.now(), FirstAt: s.now()}, false)
}

// SetWebhookURL changes where events are delivered; empty stops delivery.
func (s *Server) SetWebhookURL(url string) error {
	if url != "" && s.opts.WebhookSecret == "" {
		return errors.New("stripe sandbox: a webhook URL needs Options.WebhookSecret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = url
	return nil
}

// SetDropWebhooks turns dropping of new deliveries on or off; dropped events
// are still recorded, listed by the events API, and can be redelivered.
func (s *Server) SetDropWebhooks(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWebhooks = drop
}

// Deliveries returns every delivery attempt so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}
