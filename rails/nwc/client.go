package nwc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/nbd-wtf/go-nostr"
)

// Wallet is what billflow needs from a tenant's NWC wallet. *Client is the
// implementation; activities depend on this interface.
type Wallet interface {
	// PayInvoice pays a BOLT11 invoice and returns the preimage.
	PayInvoice(ctx context.Context, req PayInvoiceRequest) (PayInvoiceResult, error)
	// MakeInvoice asks the wallet for an invoice paying it.
	MakeInvoice(ctx context.Context, req MakeInvoiceRequest) (Transaction, error)
	// LookupInvoice finds an invoice or payment the wallet knows.
	LookupInvoice(ctx context.Context, req LookupInvoiceRequest) (Transaction, error)
	// GetBalance returns the wallet's spendable balance.
	GetBalance(ctx context.Context) (BalanceResult, error)
	// GetInfo returns the wallet's node information and methods.
	GetInfo(ctx context.Context) (InfoResult, error)
}

var _ Wallet = (*Client)(nil)

var (
	// ErrNoInfo means no relay holds an info event (kind 13194) from the
	// wallet; the client then speaks legacy NIP-04 and sends every method.
	ErrNoInfo = errors.New("nwc: wallet published no info event")
	// ErrInvalidRequest wraps argument errors caught before sending.
	ErrInvalidRequest = errors.New("nwc: invalid request")
)

// Defaults for the Client options.
const (
	DefaultReplyTimeout   = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultPublishTimeout = 10 * time.Second
	DefaultInfoTimeout    = 10 * time.Second
)

// maxBolt11Length mirrors lnd's anti-DoS bound in zpay32.
const maxBolt11Length = 7089

type config struct {
	replyTimeout   time.Duration
	connectTimeout time.Duration
	publishTimeout time.Duration
	infoTimeout    time.Duration
	connector      RelayConnector
	logger         *slog.Logger
}

// Option configures a Client.
type Option func(*config)

// WithReplyTimeout bounds how long a published request waits for the
// wallet's answer; one not answered in time fails with an
// *UnknownOutcomeError. The request's NIP-40 expiration is the latest moment
// the client could still be waiting: twice the publish timeout (subscribe,
// publish) plus the reply timeout, or the ctx deadline if that is sooner.
func WithReplyTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.replyTimeout = d
		}
	}
}

// WithConnectTimeout bounds connecting to the relays.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.connectTimeout = d
		}
	}
}

// WithPublishTimeout bounds subscribing and waiting for the relays' OK.
func WithPublishTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.publishTimeout = d
		}
	}
}

// WithInfoTimeout bounds reading the wallet's info event.
func WithInfoTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.infoTimeout = d
		}
	}
}

// WithRelayConnector replaces DialRelay, e.g. for custom transports.
func WithRelayConnector(rc RelayConnector) Option {
	return func(c *config) {
		if rc != nil {
			c.connector = rc
		}
	}
}

// WithLogger sets where the client logs (debug level, metadata only: method,
// request id, relay, outcome; never keys or payloads).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// Client speaks NIP-47 to one wallet service over the connection's relays.
// It is safe for concurrent use; relay connections are opened lazily,
// shared by concurrent requests and reopened after they drop.
type Client struct {
	conn      Connection
	clientPub string
	cfg       config

	mu     sync.Mutex
	relays map[string]RelayConn
	info   *WalletInfo
	closed bool
}

// NewClient validates conn (which must come from ParseURL or NewConnection)
// and returns a client for it. No network I/O happens until the first call.
func NewClient(conn Connection, opts ...Option) (*Client, error) {
	if !conn.valid() {
		return nil, parseErr("secret", "missing; build connections with ParseURL or NewConnection")
	}
	// Fields are exported, so re-check what a caller may have changed.
	pub, err := parsePubKey(conn.WalletPubKey)
	if err != nil {
		return nil, err
	}
	relays, err := parseRelays(conn.Relays)
	if err != nil {
		return nil, err
	}
	conn.WalletPubKey, conn.Relays = pub, relays
	cfg := config{
		replyTimeout:   DefaultReplyTimeout,
		connectTimeout: DefaultConnectTimeout,
		publishTimeout: DefaultPublishTimeout,
		infoTimeout:    DefaultInfoTimeout,
		connector:      DialRelay,
		logger:         slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &Client{
		conn:      conn,
		clientPub: conn.ClientPubKey(),
		cfg:       cfg,
		relays:    map[string]RelayConn{},
	}, nil
}

// Connection is the (redacting) connection the client uses.
func (c *Client) Connection() Connection { return c.conn }

// Close closes the relay connections. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	relays := c.relays
	c.relays = map[string]RelayConn{}
	c.mu.Unlock()
	for _, r := range relays {
		_ = r.Close()
	}
	return nil
}

// PayInvoice asks the wallet to pay a BOLT11 invoice. When the invoice
// decodes, the returned preimage is checked against its payment hash; a
// mismatch is an *UnknownOutcomeError (the wallet claims a payment it cannot
// prove).
func (c *Client) PayInvoice(ctx context.Context, req PayInvoiceRequest) (PayInvoiceResult, error) {
	if req.Invoice == "" || len(req.Invoice) > maxBolt11Length {
		return PayInvoiceResult{}, fmt.Errorf("%w: pay_invoice needs a BOLT11 invoice of at most %d characters", ErrInvalidRequest, maxBolt11Length)
	}
	if req.AmountMsat < 0 {
		return PayInvoiceResult{}, fmt.Errorf("%w: pay_invoice amount must not be negative", ErrInvalidRequest)
	}
	var res PayInvoiceResult
	id, err := c.call(ctx, MethodPayInvoice, req, &res)
	if err != nil {
		return PayInvoiceResult{}, err
	}
	if hash, ok := paymentHash(req.Invoice); ok && !preimageMatches(res.Preimage, hash) {
		return PayInvoiceResult{}, &UnknownOutcomeError{Method: MethodPayInvoice, RequestID: id,
			Reason: "the wallet's preimage does not match the invoice's payment hash"}
	}
	return res, nil
}

// MakeInvoice asks the wallet to create an invoice for AmountMsat.
func (c *Client) MakeInvoice(ctx context.Context, req MakeInvoiceRequest) (Transaction, error) {
	if req.AmountMsat <= 0 {
		return Transaction{}, fmt.Errorf("%w: make_invoice amount must be positive", ErrInvalidRequest)
	}
	if req.Expiry < 0 {
		return Transaction{}, fmt.Errorf("%w: make_invoice expiry must not be negative", ErrInvalidRequest)
	}
	var tx Transaction
	_, err := c.call(ctx, MethodMakeInvoice, req, &tx)
	return tx, err
}

// LookupInvoice finds an invoice or payment by payment hash or invoice.
func (c *Client) LookupInvoice(ctx context.Context, req LookupInvoiceRequest) (Transaction, error) {
	if req.PaymentHash == "" && req.Invoice == "" {
		return Transaction{}, fmt.Errorf("%w: lookup_invoice needs a payment hash or an invoice", ErrInvalidRequest)
	}
	if req.PaymentHash != "" && !nostr.IsValid32ByteHex(req.PaymentHash) {
		return Transaction{}, fmt.Errorf("%w: lookup_invoice payment hash must be 64 lowercase hex characters", ErrInvalidRequest)
	}
	var tx Transaction
	_, err := c.call(ctx, MethodLookupInvoice, req, &tx)
	return tx, err
}

// GetBalance returns the wallet's balance.
func (c *Client) GetBalance(ctx context.Context) (BalanceResult, error) {
	var b BalanceResult
	_, err := c.call(ctx, MethodGetBalance, struct{}{}, &b)
	return b, err
}

// GetInfo returns the wallet's get_info answer.
func (c *Client) GetInfo(ctx context.Context) (InfoResult, error) {
	var i InfoResult
	_, err := c.call(ctx, MethodGetInfo, struct{}{}, &i)
	return i, err
}

// WalletInfo returns the wallet's info event (kind 13194), read from the
// relays once and cached for the client's lifetime. ErrNoInfo means the
// relays answered but hold none.
func (c *Client) WalletInfo(ctx context.Context) (WalletInfo, error) {
	c.mu.Lock()
	if c.info != nil {
		info := *c.info
		c.mu.Unlock()
		return info, nil
	}
	c.mu.Unlock()

	relays, err := c.connect(ctx)
	if err != nil {
		return WalletInfo{}, err
	}
	ictx, cancel := context.WithTimeout(ctx, c.cfg.infoTimeout)
	defer cancel()
	filter := nostr.Filter{Kinds: []int{KindInfo}, Authors: []string{c.conn.WalletPubKey}, Limit: 1}
	subs, errs := subscribeAll(ictx, relays, filter)
	if len(subs) == 0 {
		return WalletInfo{}, &TransportError{Op: "info", Err: errors.Join(errs...)}
	}
	defer closeAll(subs)

	var best *nostr.Event
	eosed := 0
	pending := len(subs)
	in, wait := fanIn(ictx, subs)
	defer wait()
	defer cancel()
	for pending > 0 {
		select {
		case m := <-in:
			switch {
			case m.ev != nil:
				if best == nil || m.ev.CreatedAt > best.CreatedAt {
					best = m.ev
				}
			case m.eose:
				eosed++
				pending--
			case m.done:
				pending--
			}
		case <-ictx.Done():
			pending = 0
		}
	}
	if best == nil {
		if eosed == 0 {
			return WalletInfo{}, &TransportError{Op: "info", Err: errors.New("no relay finished sending stored events in time")}
		}
		return WalletInfo{}, ErrNoInfo
	}
	info, err := ParseInfoEvent(best)
	if err != nil {
		return WalletInfo{}, err
	}
	c.mu.Lock()
	c.info = &info
	c.mu.Unlock()
	return info, nil
}

// call runs one request/response exchange and returns the request event id.
func (c *Client) call(ctx context.Context, method string, params, result any) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	enc := EncryptionNIP04
	info, err := c.WalletInfo(ctx)
	switch {
	case err == nil:
		if len(info.Methods) > 0 && !info.Supports(method) {
			return "", &WalletError{Method: method, Code: CodeNotImplemented, Local: true,
				Message: "the wallet's info event does not list this method"}
		}
		enc = info.Preferred()
	case errors.Is(err, ErrNoInfo):
		// Legacy wallets publish no info event; NIP-04 is what they speak.
	default:
		return "", err
	}
	relays, err := c.connect(ctx)
	if err != nil {
		return "", err
	}

	rawParams, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("%w: %s params: %v", ErrInvalidRequest, method, err)
	}
	payload, err := json.Marshal(Request{Method: method, Params: rawParams})
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidRequest, method, err)
	}
	content, err := EncryptContent(enc, c.conn.secretHex(), c.conn.WalletPubKey, string(payload))
	if err != nil {
		return "", fmt.Errorf("nwc: %s: %w", method, err)
	}

	// The call lives in lctx: subscribing and publishing are bounded by the
	// publish timeout, the wait for the answer by the reply timeout.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The latest moment this call can still be waiting for the answer.
	deadline := time.Now().Add(2*c.cfg.publishTimeout + c.cfg.replyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ev := nostr.Event{
		Kind:      KindRequest,
		CreatedAt: nostr.Now(),
		Content:   content,
		Tags: nostr.Tags{
			{"p", c.conn.WalletPubKey},
			// NIP-40: a wallet that sees the request after we stopped
			// waiting must drop it rather than pay unobserved.
			{tagExpiration, strconv.FormatInt(ceilUnix(deadline), 10)},
		},
	}
	if enc == EncryptionNIP44v2 {
		ev.Tags = append(ev.Tags, nostr.Tag{tagEncryption, string(EncryptionNIP44v2)})
	}
	if err := ev.Sign(c.conn.secretHex()); err != nil {
		// go-nostr's Sign error quotes the key it was given.
		return "", fmt.Errorf("nwc: %s: signing the request failed", method)
	}
	log := c.cfg.logger.With("method", method, "request_id", ev.ID, "encryption", string(enc))

	// Subscribe first and wait for EOSE, so each relay has registered the
	// REQ before the wallet can possibly answer.
	filter := nostr.Filter{
		Kinds:   []int{KindResponse},
		Authors: []string{c.conn.WalletPubKey},
		Tags:    nostr.TagMap{"e": {ev.ID}, "p": {c.clientPub}},
	}
	sctx, scancel := context.WithTimeout(lctx, c.cfg.publishTimeout)
	subs, errs := subscribeAll(lctx, relays, filter)
	subs, eerrs := awaitEOSE(sctx, subs)
	scancel()
	defer closeAll(subs)
	if len(subs) == 0 {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return "", &TransportError{Op: "subscribe", Err: errors.Join(append(errs, eerrs...)...)}
	}

	reached, perrs := c.publishAll(lctx, subs, ev)
	if !reached {
		log.Debug("nwc request not delivered", "relays", len(subs))
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return ev.ID, &TransportError{Op: "publish", Err: errors.Join(perrs...)}
	}
	log.Debug("nwc request sent", "relays", len(subs))

	unknown := func(reason string, cause error) error {
		log.Debug("nwc outcome unknown", "reason", reason)
		return &UnknownOutcomeError{Method: method, RequestID: ev.ID, Reason: reason, Err: cause}
	}
	rctx, rcancel := context.WithTimeout(lctx, c.cfg.replyTimeout)
	defer rcancel()
	in, wait := fanIn(rctx, subs)
	defer wait()
	defer rcancel()
	live := len(subs)
	for {
		select {
		case m := <-in:
			if m.done {
				if live--; live == 0 {
					return ev.ID, unknown("every relay dropped before the wallet answered", m.err)
				}
				continue
			}
			if m.ev == nil {
				continue
			}
			return ev.ID, c.readAnswer(log, method, ev.ID, m.ev, result)
		case <-rctx.Done():
			if err := ctx.Err(); err != nil {
				return ev.ID, unknown("the caller's context ended before the wallet answered", err)
			}
			return ev.ID, unknown("no answer within "+c.cfg.replyTimeout.String(), context.DeadlineExceeded)
		}
	}
}

// readAnswer reads the wallet's response event to request requestID of
// method into result: nil when answered, a *WalletError when the wallet
// says it failed, an *UnknownOutcomeError when the answer cannot be read.
// It is the parser of what a wallet (or anyone on its relays holding no
// key) sends back, kept apart from the relay I/O so FuzzReadAnswer reaches it.
func (c *Client) readAnswer(log *slog.Logger, method, requestID string, ev *nostr.Event, result any) error {
	unknown := func(reason string, cause error) error {
		log.Debug("nwc outcome unknown", "reason", reason)
		return &UnknownOutcomeError{Method: method, RequestID: requestID, Reason: reason, Err: cause}
	}
	resp, err := c.decodeResponse(ev)
	if err != nil {
		return unknown("the wallet's answer could not be read", err)
	}
	if resp.ResultType != "" && resp.ResultType != method {
		return unknown("the wallet answered a different method ("+sanitizeMessage(resp.ResultType)+")", nil)
	}
	if resp.Error != nil {
		werr := &WalletError{Method: method, Code: sanitizeCode(resp.Error.Code), Message: sanitizeMessage(resp.Error.Message)}
		log.Debug("nwc wallet error", "code", string(werr.Code))
		return werr
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return unknown("the wallet's result is malformed", nil)
		}
	}
	log.Debug("nwc request answered")
	return nil
}

func (c *Client) decodeResponse(ev *nostr.Event) (Response, error) {
	// Answer in kind is the rule, but the payload's shape is authoritative.
	enc := SniffEncryption(ev.Content)
	plain, err := DecryptContent(enc, c.conn.secretHex(), c.conn.WalletPubKey, ev.Content)
	if err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.Unmarshal([]byte(plain), &resp); err != nil {
		// json's error may quote the plaintext; keep it out.
		return Response{}, errors.New("nwc: response is not NIP-47 JSON")
	}
	return resp, nil
}

// connect returns the live relay connections, dialling any that are missing
// or dropped, in parallel and bounded by the connect timeout.
func (c *Client) connect(ctx context.Context) ([]RelayConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	var live []RelayConn
	var missing []string
	for _, url := range c.conn.Relays {
		if r := c.relays[url]; r != nil && r.Err() == nil {
			live = append(live, r)
		} else {
			missing = append(missing, url)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return live, nil
	}

	dctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
	defer cancel()
	type dialed struct {
		url string
		rc  RelayConn
		err error
	}
	results := make([]dialed, len(missing))
	var wg sync.WaitGroup
	for i, url := range missing {
		wg.Go(func() {
			rc, err := c.cfg.connector(dctx, url)
			results[i] = dialed{url: url, rc: rc, err: err}
		})
	}
	wg.Wait()

	var errs []error
	var stale []RelayConn
	c.mu.Lock()
	for _, d := range results {
		if d.err != nil {
			errs = append(errs, d.err)
			c.cfg.logger.Debug("nwc relay connect failed", "relay", d.url, "err", d.err)
			continue
		}
		switch old := c.relays[d.url]; {
		case c.closed:
			stale = append(stale, d.rc)
		case old != nil && old.Err() == nil:
			// A concurrent call got there first; keep one connection.
			stale = append(stale, d.rc)
			live = append(live, old)
		default:
			if old != nil {
				stale = append(stale, old)
			}
			c.relays[d.url] = d.rc
			live = append(live, d.rc)
		}
	}
	closed := c.closed
	c.mu.Unlock()
	for _, r := range stale {
		_ = r.Close()
	}
	if closed {
		return nil, ErrClosed
	}
	if len(live) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, &TransportError{Op: "connect", Err: errors.Join(errs...)}
	}
	return live, nil
}

// publishAll publishes ev on every subscribed relay in parallel. reached
// reports whether the event may be on at least one relay.
func (c *Client) publishAll(ctx context.Context, subs []relaySub, ev nostr.Event) (reached bool, errs []error) {
	pctx, cancel := context.WithTimeout(ctx, c.cfg.publishTimeout)
	defer cancel()
	out := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { out[i] = s.relay.Publish(pctx, ev) })
	}
	wg.Wait()
	for i, err := range out {
		if MayHaveReachedRelay(err) {
			reached = true
		}
		if err != nil {
			c.cfg.logger.Debug("nwc publish failed", "relay", subs[i].relay.URL(), "err", err)
			errs = append(errs, err)
		}
	}
	return reached, errs
}

type relaySub struct {
	relay RelayConn
	sub   RelaySubscription
}

func subscribeAll(ctx context.Context, relays []RelayConn, f nostr.Filter) ([]relaySub, []error) {
	subs := make([]relaySub, len(relays))
	errs := make([]error, len(relays))
	var wg sync.WaitGroup
	for i, r := range relays {
		wg.Go(func() {
			s, err := r.Subscribe(ctx, nostr.Filters{f})
			if err != nil {
				errs[i] = fmt.Errorf("nwc: subscribe on %s: %w", r.URL(), err)
				return
			}
			subs[i] = relaySub{relay: r, sub: s}
		})
	}
	wg.Wait()
	var ok []relaySub
	var bad []error
	for i := range relays {
		if subs[i].sub != nil {
			ok = append(ok, subs[i])
		} else {
			bad = append(bad, errs[i])
		}
	}
	return ok, bad
}

// awaitEOSE keeps the subscriptions whose relay confirmed them (EOSE) before
// ctx ends, closing the rest: a relay that cannot confirm the REQ cannot be
// trusted to deliver the answer.
func awaitEOSE(ctx context.Context, subs []relaySub) ([]relaySub, []error) {
	var ok []relaySub
	var errs []error
	for _, s := range subs {
		select {
		case <-s.sub.EOSE():
			ok = append(ok, s)
			continue
		default:
		}
		select {
		case <-s.sub.EOSE():
			ok = append(ok, s)
		case <-s.sub.Done():
			errs = append(errs, fmt.Errorf("nwc: subscription on %s ended: %w", s.relay.URL(), s.sub.Err()))
		case <-ctx.Done():
			s.sub.Close()
			errs = append(errs, fmt.Errorf("nwc: %s did not confirm the subscription in time", s.relay.URL()))
		}
	}
	return ok, errs
}

func closeAll(subs []relaySub) {
	for _, s := range subs {
		s.sub.Close()
	}
}

type fanMsg struct {
	ev   *nostr.Event
	eose bool
	done bool
	err  error
}

// fanIn merges several subscriptions into one channel until ctx ends. wait
// blocks until its goroutines have exited; cancel ctx before calling it.
func fanIn(ctx context.Context, subs []relaySub) (<-chan fanMsg, func()) {
	out := make(chan fanMsg)
	var wg sync.WaitGroup
	send := func(m fanMsg) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, s := range subs {
		// drain forwards what is already buffered. Stored events sit in the
		// buffer before EOSE closes (and live ones before Done), but select
		// picks among ready cases at random, so markers wait for a drain.
		drain := func() bool {
			for {
				select {
				case ev := <-s.sub.Events():
					if !send(fanMsg{ev: ev}) {
						return false
					}
				default:
					return true
				}
			}
		}
		wg.Go(func() {
			eose := s.sub.EOSE()
			for {
				select {
				case ev := <-s.sub.Events():
					if !send(fanMsg{ev: ev}) {
						return
					}
				case <-eose:
					eose = nil
					if !drain() || !send(fanMsg{eose: true}) {
						return
					}
				case <-s.sub.Done():
					if drain() {
						send(fanMsg{done: true, err: s.sub.Err()})
					}
					return
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return out, wg.Wait
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// bolt11Nets are tried in this order because their prefixes nest
// (lnbcrt before lnbc, lntbs before lntb).
var bolt11Nets = []*chaincfg.Params{
	&chaincfg.RegressionNetParams, &chaincfg.MainNetParams, &chaincfg.SigNetParams,
	&chaincfg.TestNet3Params, &chaincfg.SimNetParams,
}

// paymentHash decodes a BOLT11 invoice for any known network.
func paymentHash(invoice string) ([32]byte, bool) {
	for _, net := range bolt11Nets {
		inv, err := zpay32.Decode(invoice, net)
		if err == nil && inv.PaymentHash != nil {
			return *inv.PaymentHash, true
		}
	}
	return [32]byte{}, false
}

func preimageMatches(preimageHex string, hash [32]byte) bool {
	p, err := hex.DecodeString(preimageHex)
	if err != nil || len(p) != 32 {
		return false
	}
	return sha256.Sum256(p) == hash
}
