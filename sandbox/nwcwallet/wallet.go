// Package nwcwallet is a Nostr Wallet Connect (NIP-47) wallet service for
// dev mode and tests. It listens on real relays (the sandbox relay), speaks
// NIP-44 v2 and/or NIP-04, keeps a balance in millisatoshis, pays BOLT11
// invoices through a Lightning node stand-in, and can be told to misbehave
// (insufficient balance, rate limiting, silence, late answers) so callers
// can test every branch of their NWC handling against the real protocol.
package nwcwallet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
)

// Payer settles BOLT11 invoices: the Lightning node stand-in the wallet pays
// through. It returns the hex preimage once the payment has settled.
type Payer interface {
	Pay(ctx context.Context, bolt11 string) (preimageHex string, err error)
}

// Options configure a Wallet. Relays is required; everything else has a
// default.
type Options struct {
	// Relays are the ws:// relay URLs the wallet listens and answers on.
	Relays []string
	// SecretKey is the wallet service's hex private key; generated if empty.
	SecretKey string
	// BalanceMsat is the starting balance.
	BalanceMsat int64
	// Payer pays invoices for pay_invoice; without it pay_invoice is not
	// offered.
	Payer Payer
	// Invoices creates and looks up the wallet's own invoices for
	// make_invoice and incoming lookup_invoice; without it make_invoice is
	// not offered.
	Invoices lightning.Node
	// Encryptions the wallet accepts and advertises; default NIP-44 v2 and
	// NIP-04. Use []nwc.Encryption{nwc.EncryptionNIP04} for a legacy wallet.
	Encryptions []nwc.Encryption
	// Network is the BOLT11 network pay_invoice accepts; nil accepts any.
	Network *chaincfg.Params
	// LUD16 is put into connection URLs when set.
	LUD16 string
	// Alias is get_info's alias.
	Alias string
	// AuthorizedClients are client public keys (hex) allowed from the start,
	// e.g. those of connection URLs minted by an earlier run.
	AuthorizedClients []string

	// ForceInsufficientBalance makes every payment fail with
	// INSUFFICIENT_BALANCE whatever the balance.
	ForceInsufficientBalance bool
	// RateLimited answers every request with RATE_LIMITED.
	RateLimited bool
	// DropRequests leaves the first N requests unanswered.
	DropRequests int
	// Silent leaves every request unanswered until SetSilent(false) or Reset.
	Silent bool
	// ReplyDelay holds each answer back this long after doing the work.
	ReplyDelay time.Duration

	// PayTimeout bounds one Payer.Pay call; default 30s.
	PayTimeout time.Duration
	// PublishTimeout bounds publishing one event; default 10s.
	PublishTimeout time.Duration
	// StartTimeout bounds Start's wait for every relay; default 15s.
	StartTimeout time.Duration
	// RelayConnector opens relay connections; default nwc.DialRelay.
	RelayConnector nwc.RelayConnector
	// Logger receives metadata-only logs (method, client key, outcome);
	// nil discards them.
	Logger *slog.Logger
}

// Outcome says what the wallet did with a request.
type Outcome string

// The outcomes recorded in Received.Outcome.
const (
	OutcomeAnswered     Outcome = "answered"
	OutcomeDropped      Outcome = "dropped"
	OutcomeExpired      Outcome = "expired"
	OutcomePublishError Outcome = "publish_failed"
	OutcomePending      Outcome = "pending"
	// OutcomeHeld: the work is done and the answer waits out the reply delay.
	OutcomeHeld Outcome = "held"
)

// Received is the wallet's record of one request, for tests to inspect.
type Received struct {
	// EventID is the request event's id.
	EventID string
	// ClientPubKey is who sent it.
	ClientPubKey string
	// Method is the decrypted method ("" if it could not be read).
	Method string
	// Encryption is the scheme the request declared.
	Encryption nwc.Encryption
	// Expiration is the NIP-40 expiration, zero if the request had none.
	Expiration time.Time
	// Tags are the request event's tags.
	Tags nostr.Tags
	// Outcome is what the wallet did; ErrorCode is set for error answers.
	Outcome   Outcome
	ErrorCode nwc.ErrorCode
}

// Payment is an outgoing payment the wallet made.
type Payment struct {
	PaymentHash string
	Invoice     string
	AmountMsat  int64
	Preimage    string
	CreatedAt   time.Time
	SettledAt   time.Time
}

// Wallet is a running NWC wallet service.
type Wallet struct {
	opts    Options
	sk, pub string
	enc     []nwc.Encryption
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// payMu serialises payments so the balance check and debit cannot
	// interleave, and so one invoice is never paid twice.
	payMu sync.Mutex

	mu       sync.Mutex
	balance  int64
	clients  map[string]bool
	seen     map[string]bool
	outgoing map[string]*Payment
	incoming map[string]*incoming
	requests []Received
	changed  chan struct{}
	conns    map[string]nwc.RelayConn
	lastErr  error // the last relay failure, for Start's error

	forceInsufficient bool
	rateLimited       bool
	silent            bool
	dropNext          int
	replyDelay        time.Duration
	delayChanged      chan struct{} // closed and replaced when replyDelay changes
}

type incoming struct {
	inv      lightning.Invoice
	credited bool
}

const (
	defaultPayTimeout     = 30 * time.Second
	defaultPublishTimeout = 10 * time.Second
	defaultStartTimeout   = 15 * time.Second
	// maxSeen bounds the de-duplication set; ids older than a reset are
	// also protected by the requests' expiration.
	maxSeen = 100_000
	// maxRecords bounds the request log kept for Requests and WaitRequest.
	maxRecords = 10_000
)

// Start connects to every relay, publishes the info event, subscribes to
// requests, and returns once the wallet can answer. The wallet runs until
// ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Wallet, error) {
	if len(opts.Relays) == 0 {
		return nil, errors.New("nwcwallet: at least one relay is required")
	}
	for _, r := range opts.Relays {
		if !nostr.IsValidRelayURL(r) {
			return nil, fmt.Errorf("nwcwallet: relay %q is not a ws:// or wss:// URL", r)
		}
	}
	sk := opts.SecretKey
	if sk == "" {
		sk = nostr.GeneratePrivateKey()
	}
	sk = strings.ToLower(sk)
	pub, err := nostr.GetPublicKey(sk)
	if !nostr.IsValid32ByteHex(sk) || err != nil || !nostr.IsValidPublicKey(pub) {
		return nil, errors.New("nwcwallet: SecretKey is not a valid hex private key")
	}
	enc := opts.Encryptions
	if len(enc) == 0 {
		enc = []nwc.Encryption{nwc.EncryptionNIP44v2, nwc.EncryptionNIP04}
	}
	for _, e := range enc {
		if e != nwc.EncryptionNIP44v2 && e != nwc.EncryptionNIP04 {
			return nil, fmt.Errorf("nwcwallet: unknown encryption %q", e)
		}
	}
	for _, c := range opts.AuthorizedClients {
		if !nostr.IsValidPublicKey(c) {
			return nil, errors.New("nwcwallet: an authorized client key is not a valid public key")
		}
	}
	if opts.PayTimeout <= 0 {
		opts.PayTimeout = defaultPayTimeout
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = defaultPublishTimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	if opts.RelayConnector == nil {
		opts.RelayConnector = nwc.DialRelay
	}
	if opts.Alias == "" {
		opts.Alias = "billflow sandbox wallet"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &Wallet{
		opts: opts, sk: sk, pub: pub, enc: enc, log: log.With("wallet", pub[:12]),
		ctx: wctx, cancel: cancel,
		balance:           opts.BalanceMsat,
		clients:           map[string]bool{},
		seen:              map[string]bool{},
		outgoing:          map[string]*Payment{},
		incoming:          map[string]*incoming{},
		changed:           make(chan struct{}),
		conns:             map[string]nwc.RelayConn{},
		forceInsufficient: opts.ForceInsufficientBalance,
		rateLimited:       opts.RateLimited,
		silent:            opts.Silent,
		dropNext:          opts.DropRequests,
		replyDelay:        opts.ReplyDelay,
		delayChanged:      make(chan struct{}),
	}
	for _, c := range opts.AuthorizedClients {
		w.clients[strings.ToLower(c)] = true
	}
	// Wallet lifetime follows ctx, but Close must also work on its own.
	stop := context.AfterFunc(ctx, cancel)

	sctx, scancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer scancel()
	ready := make(chan struct{}, len(opts.Relays))
	for _, url := range opts.Relays {
		w.wg.Go(func() { w.runRelay(url, ready) })
	}
	for range opts.Relays {
		select {
		case <-ready:
		case <-sctx.Done():
			stop()
			_ = w.Close()
			w.mu.Lock()
			last := w.lastErr
			w.mu.Unlock()
			return nil, fmt.Errorf("nwcwallet: relays not ready: %w", errors.Join(sctx.Err(), last))
		}
	}
	if opts.Invoices != nil {
		w.wg.Go(w.watchSettled)
	}
	w.log.Info("nwc wallet ready", "pubkey", pub, "relays", len(opts.Relays), "encryptions", enc)
	return w, nil
}

// Close stops the wallet and waits for its goroutines. Idempotent.
func (w *Wallet) Close() error {
	w.cancel()
	w.wg.Wait()
	return nil
}

// Done is closed when the wallet is stopping.
func (w *Wallet) Done() <-chan struct{} { return w.ctx.Done() }

// PubKey is the wallet service's public key (hex).
func (w *Wallet) PubKey() string { return w.pub }

// Encryptions are the schemes the wallet accepts and advertises.
func (w *Wallet) Encryptions() []nwc.Encryption { return slices.Clone(w.enc) }

// ConnectionURL mints a new client secret, authorises its public key and
// returns the nostr+walletconnect:// URL carrying it. The wallet keeps only
// the public key, as NIP-47 asks.
func (w *Wallet) ConnectionURL() (string, error) {
	c, err := w.NewConnection()
	if err != nil {
		return "", err
	}
	return c.SecretURL(), nil
}

// NewConnection is ConnectionURL returning the parsed connection.
func (w *Wallet) NewConnection() (nwc.Connection, error) {
	secret := nostr.GeneratePrivateKey()
	c, err := nwc.NewConnection(w.pub, w.opts.Relays, secret, w.opts.LUD16)
	if err != nil {
		return nwc.Connection{}, fmt.Errorf("nwcwallet: minting a connection: %w", err)
	}
	w.Authorize(c.ClientPubKey())
	return c, nil
}

// Authorize lets clientPubKey use the wallet.
func (w *Wallet) Authorize(clientPubKey string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clients[clientPubKey] = true
}

// AuthorizedClients lists the client public keys allowed to use the wallet.
func (w *Wallet) AuthorizedClients() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.clients))
	for c := range w.clients {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Revoke withdraws clientPubKey's authorisation; its requests then get
// UNAUTHORIZED.
func (w *Wallet) Revoke(clientPubKey string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.clients, clientPubKey)
}

// Balance is the current balance in millisatoshis.
func (w *Wallet) Balance() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.balance
}

// SetBalance sets the balance in millisatoshis.
func (w *Wallet) SetBalance(msat int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.balance = msat
}

// SetForceInsufficientBalance makes payments fail with INSUFFICIENT_BALANCE
// regardless of the balance.
func (w *Wallet) SetForceInsufficientBalance(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forceInsufficient = on
}

// SetRateLimited answers every request with RATE_LIMITED while on.
func (w *Wallet) SetRateLimited(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rateLimited = on
}

// SetSilent leaves every request unanswered while on.
func (w *Wallet) SetSilent(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.silent = on
}

// DropNext leaves the next n requests unanswered.
func (w *Wallet) DropNext(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropNext = n
}

// SetReplyDelay holds answers back by d after the work is done. Answers
// already held are re-timed: SetReplyDelay(0) releases them at once.
func (w *Wallet) SetReplyDelay(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setDelayLocked(d)
}

func (w *Wallet) setDelayLocked(d time.Duration) {
	w.replyDelay = d
	close(w.delayChanged)
	w.delayChanged = make(chan struct{})
}

// Reset turns every failure mode off.
func (w *Wallet) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forceInsufficient, w.rateLimited, w.silent = false, false, false
	w.dropNext = 0
	w.setDelayLocked(0)
}

// Requests returns the requests received so far, oldest first.
func (w *Wallet) Requests() []Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.requests)
}

// Payments returns the outgoing payments made so far.
func (w *Wallet) Payments() []Payment {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Payment, 0, len(w.outgoing))
	for _, p := range w.outgoing {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Payment) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out
}

// WaitRequest blocks until a received request satisfies match (checking
// those already received first) and returns it, or until ctx ends. Tests use
// it to wait for conditions instead of sleeping.
func (w *Wallet) WaitRequest(ctx context.Context, match func(Received) bool) (Received, error) {
	for {
		w.mu.Lock()
		for _, r := range w.requests {
			if match(r) {
				w.mu.Unlock()
				return r, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Received{}, ctx.Err()
		}
	}
}

// record appends or updates (by event id) a request record and wakes waiters.
func (w *Wallet) record(r Received) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.requests {
		if w.requests[i].EventID == r.EventID {
			w.requests[i] = r
			w.notifyLocked()
			return
		}
	}
	if len(w.requests) >= maxRecords {
		// A long-running standalone wallet must not grow without bound.
		w.requests = slices.Delete(w.requests, 0, len(w.requests)-maxRecords/2)
	}
	w.requests = append(w.requests, r)
	w.notifyLocked()
}

func (w *Wallet) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *Wallet) methods() []string {
	m := []string{}
	if w.opts.Payer != nil {
		m = append(m, nwc.MethodPayInvoice)
	}
	if w.opts.Invoices != nil {
		m = append(m, nwc.MethodMakeInvoice)
	}
	return append(m, nwc.MethodLookupInvoice, nwc.MethodGetBalance, nwc.MethodGetInfo)
}

func (w *Wallet) supports(e nwc.Encryption) bool { return slices.Contains(w.enc, e) }
