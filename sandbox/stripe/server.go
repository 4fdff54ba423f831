// Package stripesandbox is a local Stripe API server that stripe-go talks to
// through its backend URL, so dev mode and tests exercise the real card rail
// (rails/card) over real sockets. It speaks the parts of Stripe's API billflow
// uses: form-encoded requests, Bearer API keys, Stripe-shaped objects and
// errors, customers with saved payment methods, PaymentIntents whose outcome
// is chosen by Stripe's test payment method ids, Idempotency-Key semantics,
// and signed webhook deliveries with retries.
//
// It is stateful where stripe-mock is not (a confirmed PaymentIntent really
// succeeds or declines, a replayed key really replays), and it lets tests
// inject failures, drop and redeliver webhooks, and count charges per invoice.
package stripesandbox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// Options configures a sandbox server.
type Options struct {
	// Addr is the listen address; empty means 127.0.0.1:0 (a free port).
	Addr string
	// APIKey is the only secret key the server accepts (Bearer or Basic
	// auth, as Stripe does). Required.
	APIKey string
	// WebhookURL receives signed event deliveries; empty disables delivery
	// (events are still recorded and listed). SetWebhookURL changes it.
	WebhookURL string
	// WebhookSecret signs deliveries (the endpoint's whsec_... secret).
	// Required when WebhookURL is set.
	WebhookSecret string
	// EnabledEvents limits which event types are delivered, like a webhook
	// endpoint's enabled_events; empty means all.
	EnabledEvents []string
	// WebhookAttempts is how many times one delivery is tried before giving
	// up (Stripe retries for days; tests need a bound). Default 5.
	WebhookAttempts int
	// WebhookRetryDelay is the wait after the n-th failed attempt is n times
	// this. Default 100ms.
	WebhookRetryDelay time.Duration
	// WebhookTimeout bounds one delivery attempt. Default 10s.
	WebhookTimeout time.Duration
	// WebhookTimeScale, when positive, replaces WebhookAttempts and
	// WebhookRetryDelay with Stripe's own shape: retries with exponentially
	// growing delays (StripeRetryDelay) for up to three days
	// (StripeRetryHorizon), every duration multiplied by this factor so a
	// test crosses the schedule in minutes (0.01: first retry after 0.6s,
	// giving up after 43 minutes).
	WebhookTimeScale float64
	// StateFile, when set, keeps the sandbox's state (customers, payment
	// methods, PaymentIntents, events, idempotency keys and deliveries still
	// to be retried) in this JSON file, loaded at start and rewritten before
	// each API answer, so a restarted sandbox carries on where it stopped.
	StateFile string
	// SettleProcessingAfter, when positive, settles each processing
	// PaymentIntent (CardProcessing) as succeeded this long after its
	// charge, emitting payment_intent.succeeded: a charge only a later
	// webhook books. Zero leaves them for SettleProcessing.
	SettleProcessingAfter time.Duration
	// DropWebhooks records events without delivering them, as when
	// deliveries are lost; SetDropWebhooks changes it.
	DropWebhooks bool
	// APIVersion is stamped on events; default stripe-go's pinned version,
	// which is what the card rail's webhook verification requires.
	APIVersion string
	// Customers are created at start.
	Customers []Customer
	// Logger receives one line per request and delivery; nil discards. Keys
	// and secrets are never logged.
	Logger *slog.Logger
	// Now is the clock for created timestamps, webhook signatures and
	// idempotency-key expiry; nil means time.Now.
	Now func() time.Time
}

// Server is a running sandbox. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	listener net.Listener
	http     *http.Server
	url      string
	webhooks *http.Client

	// ctx ends when the server closes; it cancels webhook deliveries.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
	serveDone chan struct{}

	// fresh holds connections that have not sent a request yet (StateNew);
	// see Close.
	connMu sync.Mutex
	fresh  map[net.Conn]struct{}

	mu             sync.Mutex
	customers      map[string]*customer
	paymentMethods map[string]*paymentMethod
	paymentIntents map[string]*paymentIntent
	piOrder        []string
	events         []*event
	eventsByID     map[string]*event
	idem           map[string]*idemEntry
	failures       []*Failure
	webhookURL     string
	dropWebhooks   bool
	deliveries     []Delivery
	pending        int           // deliveries in flight
	idle           chan struct{} // closed when pending drops to 0
	requests       int
	seq            int
	closed         bool
	// retrying is each event whose delivery is being retried: its next
	// attempt and when, kept in the state file.
	retrying map[string]pendingDelivery
	// dirty marks state not yet written to StateFile.
	dirty bool
	// saveMu orders writes of StateFile.
	saveMu sync.Mutex
}

// Start listens and serves until ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.APIKey == "" {
		return nil, errors.New("stripe sandbox: Options.APIKey is required")
	}
	if opts.WebhookURL != "" && opts.WebhookSecret == "" {
		return nil, errors.New("stripe sandbox: Options.WebhookSecret is required with WebhookURL")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 5
	}
	if opts.WebhookRetryDelay <= 0 {
		opts.WebhookRetryDelay = 100 * time.Millisecond
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 10 * time.Second
	}
	if opts.APIVersion == "" {
		opts.APIVersion = stripe.APIVersion
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		opts:           opts,
		log:            log,
		now:            opts.Now,
		webhooks:       &http.Client{Timeout: opts.WebhookTimeout},
		customers:      map[string]*customer{},
		paymentMethods: map[string]*paymentMethod{},
		paymentIntents: map[string]*paymentIntent{},
		eventsByID:     map[string]*event{},
		idem:           map[string]*idemEntry{},
		webhookURL:     opts.WebhookURL,
		dropWebhooks:   opts.DropWebhooks,
		retrying:       map[string]pendingDelivery{},
	}
	if err := s.loadState(); err != nil {
		return nil, err
	}
	for _, c := range opts.Customers {
		// A restarted sandbox already has its seeded customers.
		s.mu.Lock()
		_, known := s.customers[c.ID]
		s.mu.Unlock()
		if known && opts.StateFile != "" {
			continue
		}
		if err := s.AddCustomer(c); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("stripe sandbox: listen on %s: %w", opts.Addr, err)
	}
	s.listener = ln
	s.url = "http://" + ln.Addr().String()
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.fresh = map[net.Conn]struct{}{}
	s.serveDone = make(chan struct{})
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ConnState: func(c net.Conn, st http.ConnState) {
			s.connMu.Lock()
			defer s.connMu.Unlock()
			if st == http.StateNew {
				s.fresh[c] = struct{}{}
			} else {
				delete(s.fresh, c)
			}
		},
	}
	go func() {
		defer close(s.serveDone)
		err := s.http.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("stripe sandbox: serve", "err", err)
		}
	}()
	s.resume()
	if opts.StateFile != "" {
		go s.flushLoop()
	}
	// The server lives as long as ctx: a test's or a command's lifetime.
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	return s, nil
}

// URL is the base URL to give stripe-go as its API backend URL.
func (s *Server) URL() string { return s.url }

// Close stops serving and waits for in-flight requests and webhook
// deliveries, which it cancels.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		// Stop accepting first. Then close connections that never sent a
		// request (a client's spare pooled connections): Shutdown would wait
		// five seconds for each before deeming it idle. In-flight requests
		// still finish.
		_ = s.listener.Close()
		<-s.serveDone
		s.connMu.Lock()
		for c := range s.fresh {
			_ = c.Close()
		}
		s.connMu.Unlock()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.http.Shutdown(shutdownCtx)
		s.mu.Lock()
		s.closed = true // no new deliveries may join the wait group
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		if err := s.saveState(); err != nil {
			s.log.Error("stripe sandbox: saving state", "err", err)
		}
	})
}

// routes maps Stripe's paths and the sandbox's admin paths.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h apiFunc) { mux.Handle(pattern, s.api(h)) }
	api("POST /v1/customers", s.createCustomer)
	api("GET /v1/customers/{id}", s.getCustomer)
	api("POST /v1/customers/{id}", s.updateCustomer)
	api("GET /v1/customers/{id}/payment_methods", s.listCustomerPaymentMethods)
	api("GET /v1/payment_methods", s.listPaymentMethods)
	api("GET /v1/payment_methods/{id}", s.getPaymentMethod)
	api("POST /v1/payment_methods/{id}/attach", s.attachPaymentMethod)
	api("POST /v1/payment_intents", s.createPaymentIntent)
	api("GET /v1/payment_intents", s.listPaymentIntents)
	api("GET /v1/payment_intents/{id}", s.getPaymentIntent)
	api("POST /v1/payment_intents/{id}/confirm", s.confirmPaymentIntent)
	api("GET /v1/events", s.listEvents)
	api("GET /v1/events/{id}", s.getEvent)
	api("/v1/", s.unknownRoute)
	s.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody(invalidRequest("", fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path))))
	})
	return mux
}

// authorized checks the API key the way Stripe accepts it: Bearer, or Basic
// with the key as user name.
func (s *Server) authorized(r *http.Request) (ok bool, given string) {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Bearer "):
		given = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
		if err == nil {
			given, _, _ = strings.Cut(string(raw), ":")
		}
	}
	return given != "" && subtle.ConstantTimeCompare([]byte(given), []byte(s.opts.APIKey)) == 1, given
}

// maskKey shows a key the way Stripe's error messages do: prefix and the
// last four characters only.
func maskKey(k string) string {
	if len(k) <= 4 {
		return "****"
	}
	prefix := ""
	if i := strings.LastIndex(k[:len(k)-4], "_"); i >= 0 {
		prefix = k[:i+1]
	}
	return prefix + "****" + k[len(k)-4:]
}

// newID returns prefix_ and random base62-ish characters, like Stripe ids.
func newID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + "_" + string(b)
}
