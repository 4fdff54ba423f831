// Package relay is a small, in-memory Nostr relay speaking NIP-01 over
// websockets, for dev mode and tests: the NWC wallet sandbox and the DM rail
// talk to it with the same go-nostr client code they use against public
// relays.
//
// It verifies every event's id and Schnorr signature, stores regular events,
// keeps only the newest replaceable (0, 3, 10000-19999) and addressable
// (30000-39999) versions, relays ephemeral kinds (20000-29999) without storing
// them, drops NIP-40 expired events, and answers NIP-45 COUNT and NIP-11
// information requests. It has no authentication (NIP-42) and no persistence:
// it is a sandbox, not a production relay.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// Options tune a Relay; zero values select the defaults.
type Options struct {
	// Name is advertised in the NIP-11 information document.
	Name string
	// MaxMessageBytes caps one incoming websocket message; a client sending
	// more is disconnected. Default 512 KiB.
	MaxMessageBytes int64
	// SendQueue is how many outgoing messages (an event delivery, an OK, a
	// stored-events batch) may wait per connection. A client that lets the
	// queue fill, typically by not reading, is dropped, which bounds the
	// memory one connection can hold. Default 1024.
	SendQueue int
	// MaxSubscriptions caps open subscriptions per connection. Default 64.
	MaxSubscriptions int
	// MaxFilters caps the filters in one REQ or COUNT. Default 16.
	MaxFilters int
	// MaxLimit caps the stored events returned per filter, and is the limit
	// for filters that set none. Default 500.
	MaxLimit int
	// MaxEvents caps the stored events; the oldest are evicted first.
	// Default 100000.
	MaxEvents int
	// WriteTimeout bounds every websocket write. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the relay pings each client; a client silent
	// for two intervals (no message, no pong) is disconnected. Default 30s.
	PingInterval time.Duration
	// Reject, when set, vets each valid event before it is stored or
	// relayed: a non-empty result refuses it and is sent as the OK reason
	// (prefix it per NIP-01, e.g. "blocked: ..."). Tests use it to simulate
	// a relay that refuses writes. It must not call back into the Relay.
	Reject func(ev *nostr.Event) string
	// Logger receives connection-level diagnostics; nil discards them.
	// Event contents are never logged.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "billflow sandbox relay"
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 512 << 10
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 1024
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 64
	}
	if o.MaxFilters <= 0 {
		o.MaxFilters = 16
	}
	if o.MaxLimit <= 0 {
		o.MaxLimit = 500
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 100_000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Relay is an in-memory Nostr relay. It is an http.Handler; Start also runs
// it on its own listener. All methods are safe for concurrent use.
type Relay struct {
	opts     Options
	upgrader websocket.Upgrader

	// mu guards the store and the connection set. Accepting an event holds
	// it exclusively while storing and fanning out; answering a REQ holds it
	// shared while querying and registering the subscription, so every event
	// reaches a new subscription exactly once: in the stored batch before
	// EOSE or live after it.
	mu     sync.RWMutex
	store  *store
	conns  map[*conn]struct{}
	closed bool
	// handlers counts running ServeHTTP websocket sessions so Close can wait
	// for all of them.
	handlers sync.WaitGroup

	// Set by Start.
	srv       *http.Server
	serveDone chan struct{}
	stopCtx   func() bool

	closeOnce sync.Once
}

// New returns a relay ready to serve; it owns no listener until Start.
func New(opts Options) *Relay {
	opts = opts.withDefaults()
	return &Relay{
		opts:  opts,
		store: newStore(opts.MaxEvents),
		conns: make(map[*conn]struct{}),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: opts.WriteTimeout,
			// Nostr relays are public endpoints that browsers reach from any
			// origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
}

// Start runs a new relay with default options on addr (for example
// "127.0.0.1:0") and returns it with its ws:// URL. The relay stops when ctx
// ends or Close is called.
func Start(ctx context.Context, addr string) (*Relay, string, error) {
	r := New(Options{})
	url, err := r.Start(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	return r, url, nil
}

// Start serves r on a new listener at addr and returns its ws:// URL. The
// relay stops when ctx ends or Close is called. Start may be called once.
func (r *Relay) Start(ctx context.Context, addr string) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("relay: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.opts.WriteTimeout,
		ErrorLog:          slog.NewLogLogger(r.opts.Logger.Handler(), slog.LevelDebug),
	}
	r.mu.Lock()
	if r.closed || r.srv != nil {
		already := r.srv != nil
		r.mu.Unlock()
		_ = ln.Close()
		if already {
			return "", errors.New("relay: already started")
		}
		return "", errors.New("relay: closed")
	}
	r.srv = srv
	serveDone := make(chan struct{})
	r.serveDone = serveDone
	// Registered under mu: a Close it triggers waits for the lock and then
	// sees everything Start set up.
	r.stopCtx = context.AfterFunc(ctx, r.Close)
	r.mu.Unlock()

	go func() {
		defer close(serveDone)
		_ = srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	url := "ws://" + ln.Addr().String()
	r.opts.Logger.Info("relay listening", "url", url)
	return url, nil
}

// Close disconnects every client, stops the listener started by Start, and
// waits until all connection goroutines have ended. It is idempotent.
func (r *Relay) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		srv, stopCtx, serveDone := r.srv, r.stopCtx, r.serveDone
		conns := make([]*conn, 0, len(r.conns))
		for c := range r.conns {
			conns = append(conns, c)
		}
		r.mu.Unlock()

		if stopCtx != nil {
			stopCtx()
		}
		if srv != nil {
			_ = srv.Close()
			<-serveDone
		}
		for _, c := range conns {
			c.kill("relay shutting down")
		}
		r.handlers.Wait()
	})
}

// Connections reports how many websocket clients are connected.
func (r *Relay) Connections() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns)
}

// Query returns the stored events matching any of filters, newest first,
// as a REQ would before EOSE. For tests and in-process inspection.
func (r *Relay) Query(filters ...nostr.Filter) []nostr.Event {
	r.mu.RLock()
	recs := r.queryLocked(filters)
	r.mu.RUnlock()
	out := make([]nostr.Event, len(recs))
	for i, rec := range recs {
		out[i] = rec.ev
	}
	return out
}

// Publish submits ev as if a client had sent it, returning the OK verdict:
// whether it was accepted and the NIP-01 reason.
func (r *Relay) Publish(ev nostr.Event) (ok bool, reason string) {
	return r.accept(&ev)
}

// ServeHTTP upgrades websocket requests to Nostr sessions, answers NIP-11
// information requests, and describes the relay to anything else.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !websocket.IsWebSocketUpgrade(req) {
		r.serveInfo(w, req)
		return
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		http.Error(w, "relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	r.handlers.Add(1)
	r.mu.Unlock()
	defer r.handlers.Done()

	ws, err := r.upgrader.Upgrade(w, req, nil)
	if err != nil {
		// Upgrade has already answered the client with an HTTP error.
		r.opts.Logger.Debug("websocket upgrade failed", "remote", req.RemoteAddr, "err", err)
		return
	}
	c := newConn(r, ws, req.RemoteAddr)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = ws.Close()
		return
	}
	r.conns[c] = struct{}{}
	r.mu.Unlock()

	r.opts.Logger.Debug("client connected", "remote", c.remote)
	c.run()

	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	r.opts.Logger.Debug("client disconnected", "remote", c.remote, "reason", c.reason())
}

// serveInfo answers plain HTTP requests: the NIP-11 document when asked for
// application/nostr+json, a short hint otherwise.
func (r *Relay) serveInfo(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "*")
	w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	if req.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !strings.Contains(req.Header.Get("Accept"), "application/nostr+json") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "%s: connect with a Nostr websocket client\n", r.opts.Name)
		return
	}
	info := map[string]any{
		"name":           r.opts.Name,
		"description":    "in-memory Nostr relay for billflow dev mode and tests",
		"software":       "github.com/billflow/billflow/sandbox/relay",
		"supported_nips": []int{1, 11, 40, 45},
		"limitation": map[string]any{
			"max_message_length": r.opts.MaxMessageBytes,
			"max_subscriptions":  r.opts.MaxSubscriptions,
			"max_filters":        r.opts.MaxFilters,
			"max_limit":          r.opts.MaxLimit,
			"max_subid_length":   maxSubIDLength,
			"auth_required":      false,
			"payment_required":   false,
		},
	}
	w.Header().Set("Content-Type", "application/nostr+json")
	_ = json.NewEncoder(w).Encode(info)
}

// accept validates, stores and fans out one event, returning the OK verdict.
func (r *Relay) accept(ev *nostr.Event) (bool, string) {
	if reason := validate(ev); reason != "" {
		return false, reason
	}
	return r.admit(ev)
}

// admit applies expiry, policy, storage and fan-out to a verified event.
func (r *Relay) admit(ev *nostr.Event) (bool, string) {
	now := unixNow()
	exp := expiration(ev)
	if exp != 0 && exp <= now {
		return false, "invalid: event has expired"
	}
	if r.opts.Reject != nil {
		if reason := r.opts.Reject(ev); reason != "" {
			return false, nostr.NormalizeOKMessage(reason, "blocked")
		}
	}
	// A fresh struct drops any unknown JSON fields the client sent, so what
	// we store and serve is exactly the signed event.
	clean := nostr.Event{
		ID:        ev.ID,
		PubKey:    ev.PubKey,
		CreatedAt: ev.CreatedAt,
		Kind:      ev.Kind,
		Tags:      ev.Tags,
		Content:   ev.Content,
		Sig:       ev.Sig,
	}
	if clean.Tags == nil {
		clean.Tags = nostr.Tags{}
	}
	raw, err := clean.MarshalJSON()
	if err != nil {
		return false, "error: could not encode event"
	}
	rec := &record{ev: clean, raw: raw, expiresAt: exp}

	r.mu.Lock()
	defer r.mu.Unlock()
	if clean.IsEphemeral() {
		r.fanoutLocked(rec)
		return true, ""
	}
	if exp != 0 {
		r.store.purgeExpired(now)
	}
	ok, reason := r.store.save(rec)
	if ok && reason == "" {
		r.fanoutLocked(rec)
	}
	return ok, reason
}

// fanoutLocked queues rec for every live subscription it matches. r.mu must
// be held exclusively.
func (r *Relay) fanoutLocked(rec *record) {
	for c := range r.conns {
		c.deliver(rec)
	}
}

// queryLocked runs filters against the store: each filter's limit applies on
// its own, results are merged newest first without duplicates. r.mu must be
// held.
func (r *Relay) queryLocked(filters []nostr.Filter) []*record {
	now := unixNow()
	seen := make(map[*record]struct{})
	var out []*record
	for i := range filters {
		f := &filters[i]
		limit := r.opts.MaxLimit
		switch {
		case f.LimitZero:
			limit = 0
		case f.Limit > 0 && f.Limit < limit:
			limit = f.Limit
		}
		for _, rec := range r.store.query(f, limit, now) {
			if _, dup := seen[rec]; !dup {
				seen[rec] = struct{}{}
				out = append(out, rec)
			}
		}
	}
	if len(filters) > 1 {
		sortNewestFirst(out)
	}
	return out
}

// countLocked counts stored events matching any of filters, ignoring limits
// (NIP-45). r.mu must be held.
func (r *Relay) countLocked(filters []nostr.Filter) int64 {
	now := unixNow()
	var n int64
	for _, rec := range r.store.events {
		if !rec.expired(now) && nostr.Filters(filters).Match(&rec.ev) {
			n++
		}
	}
	return n
}

// validate checks an event's shape, id and signature, returning a NIP-01
// "invalid:" reason or "".
func validate(ev *nostr.Event) string {
	switch {
	case !isLowerHex(ev.ID, 64):
		return "invalid: id must be 64 lowercase hex characters"
	case !isLowerHex(ev.PubKey, 64):
		return "invalid: pubkey must be 64 lowercase hex characters"
	case !isLowerHex(ev.Sig, 128):
		return "invalid: sig must be 128 lowercase hex characters"
	case ev.Kind < 0 || ev.Kind > 65535:
		return "invalid: kind must be between 0 and 65535"
	case ev.CreatedAt < 0:
		return "invalid: created_at must not be negative"
	}
	if !ev.CheckID() {
		return "invalid: event id does not match its content"
	}
	if ok, _ := ev.CheckSignature(); !ok {
		return "invalid: signature verification failed"
	}
	return ""
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
