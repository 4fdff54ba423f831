// Package dm is billflow's messaging rail: Nostr direct messages from the
// engine's robot key, the last step of the payment cascade (a payment link
// or a reminder sent to the tenant's npub).
//
// Messages are NIP-17 private DMs: an unsigned kind 14 rumor, sealed (kind 13)
// and gift-wrapped (kind 1059) once for the recipient and once for the robot
// itself, so the robot's relays keep a copy. The recipient's wrap goes to the
// relays the recipient lists in its kind 10050 event when it has published
// one on the robot's relays, else to the robot's relays. NIP-04 (kind 4) is
// available only as an explicit option, for recipients whose clients predate
// NIP-17.
package dm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip17"
	"github.com/nbd-wtf/go-nostr/nip19"
)

// Sender sends one direct message to a Nostr user.
type Sender interface {
	// Send delivers message to recipientPubkey (hex or npub). It succeeds when
	// at least one relay accepted the recipient's event; Sent reports every
	// relay's outcome, also alongside an error.
	Send(ctx context.Context, recipientPubkey string, message string) (Sent, error)
}

var _ Sender = (*Robot)(nil)

// Protocol names the DM scheme of a message.
type Protocol string

const (
	// NIP17 is gift-wrapped private messages (kinds 14/13/1059), the default.
	NIP17 Protocol = "nip17"
	// NIP04 is legacy encrypted DMs (kind 4): they expose sender, recipient
	// and timing to relays, so they are used only when asked for.
	NIP04 Protocol = "nip04"
)

// Sent describes a delivered (or attempted) message. It carries no message
// content, so it may be stored in workflow history.
type Sent struct {
	Protocol Protocol `json:"protocol"`
	// EventID is the id of the event addressed to the recipient: the gift
	// wrap (kind 1059) for NIP-17, the kind 4 event for NIP-04.
	EventID string `json:"event_id"`
	// CopyEventID is the NIP-17 gift wrap addressed to the robot itself.
	CopyEventID string `json:"copy_event_id,omitempty"`
	// ToInbox is true when the recipient's kind 10050 relays were used.
	ToInbox bool `json:"to_inbox"`
	// Recipient has one outcome per relay tried for the recipient's event.
	Recipient []RelayOutcome `json:"recipient"`
	// Copy has one outcome per robot relay tried for the robot's copy.
	Copy []RelayOutcome `json:"copy,omitempty"`
}

// Delivered reports whether any relay accepted the recipient's event.
func (s Sent) Delivered() bool {
	for _, o := range s.Recipient {
		if o.Accepted {
			return true
		}
	}
	return false
}

// RelayOutcome is what one relay did with one event.
type RelayOutcome struct {
	URL string `json:"url"`
	// Accepted is the relay's OK verdict (true also for "duplicate:").
	Accepted bool `json:"accepted"`
	// Reason is the relay's OK message, or why the relay could not be
	// reached or did not answer in time.
	Reason string `json:"reason,omitempty"`
}

var (
	// ErrInvalidRecipient means the recipient is not a valid Nostr public
	// key; retrying cannot help.
	ErrInvalidRecipient = errors.New("dm: invalid recipient public key")
	// ErrEmptyMessage means there was nothing to send.
	ErrEmptyMessage = errors.New("dm: empty message")
	// ErrNotDelivered means no relay accepted the recipient's event; it may
	// succeed later.
	ErrNotDelivered = errors.New("dm: no relay accepted the message")
)

// Options tune a Robot; zero values select the defaults. A Send takes at
// most LookupTimeout + ConnectTimeout + 2×PublishTimeout (15s by default),
// less when its context ends sooner: size activity timeouts accordingly.
type Options struct {
	// Protocol is NIP17 unless set to NIP04 explicitly.
	Protocol Protocol
	// ConnectTimeout bounds each relay's websocket handshake. Default 5s.
	ConnectTimeout time.Duration
	// PublishTimeout bounds each wait for a relay's OK. Default 5s.
	PublishTimeout time.Duration
	// LookupTimeout bounds the whole kind 10050 lookup; a recipient whose
	// list is not found in time gets the fallback relays. Default 3s.
	LookupTimeout time.Duration
	// MaxInboxRelays caps how many of the recipient's listed relays are used
	// (NIP-17 asks users to keep the list to 1-3). Default 3.
	MaxInboxRelays int
}

func (o Options) withDefaults() Options {
	if o.Protocol == "" {
		o.Protocol = NIP17
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = 3 * time.Second
	}
	if o.MaxInboxRelays <= 0 {
		o.MaxInboxRelays = 3
	}
	return o
}

// Robot sends DMs signed by the engine's robot key. It is safe for
// concurrent use; each Send opens and closes its own connections.
type Robot struct {
	key    robotKey
	relays []string
	opts   Options
}

// NewRobot returns a Robot for the hex secret key, publishing to and looking
// recipients up on fallbackRelays (ws:// or wss:// URLs). Errors never echo
// the key.
func NewRobot(secretKeyHex string, fallbackRelays []string, opts Options) (*Robot, error) {
	key, err := parseSecretKey(secretKeyHex)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if opts.Protocol != NIP17 && opts.Protocol != NIP04 {
		return nil, fmt.Errorf("dm: unknown protocol %q", opts.Protocol)
	}
	var relays []string
	seen := map[string]bool{}
	for _, raw := range fallbackRelays {
		u, ok := relayURL(raw)
		if !ok {
			return nil, fmt.Errorf("dm: fallback relay %q is not a ws:// or wss:// URL", raw)
		}
		if !seen[u] {
			seen[u] = true
			relays = append(relays, u)
		}
	}
	if len(relays) == 0 {
		return nil, errors.New("dm: at least one fallback relay is required")
	}
	return &Robot{key: key, relays: relays, opts: opts}, nil
}

// PublicKey is the robot's hex public key, the sender recipients see.
func (r *Robot) PublicKey() string { return r.key.pk }

// String identifies the robot by public key only, so printing it (even with
// %+v) cannot leak the secret.
func (r *Robot) String() string { return "dm.Robot(" + r.key.pk + ")" }

// GoString is String, for %#v.
func (r *Robot) GoString() string { return r.String() }

// Send implements Sender.
func (r *Robot) Send(ctx context.Context, recipientPubkey string, message string) (Sent, error) {
	pk, err := parseRecipient(recipientPubkey)
	if err != nil {
		return Sent{}, err
	}
	if message == "" {
		return Sent{}, ErrEmptyMessage
	}
	if err := ctx.Err(); err != nil {
		return Sent{}, fmt.Errorf("dm: %w", err)
	}

	pool := newConnPool()
	defer pool.closeAll()

	inbox := r.lookupInbox(ctx, pool, pk)
	sent := Sent{Protocol: r.opts.Protocol, ToInbox: len(inbox) > 0}
	targets := r.relays
	if sent.ToInbox {
		targets = inbox
	}

	var toThem, toUs nostr.Event
	switch r.opts.Protocol {
	case NIP04:
		toThem, err = r.nip04Event(pk, message)
	default:
		toUs, toThem, err = nip17.PrepareMessage(ctx, message, nil, r.key, pk, nil)
	}
	if err != nil {
		return Sent{}, r.key.redact(fmt.Errorf("dm: build %s message: %w", r.opts.Protocol, err))
	}
	sent.EventID = toThem.ID

	// One connection per relay carries everything that relay gets: the
	// recipient's event first, then the robot's copy.
	plan := map[string][]delivery{}
	var order []string
	add := func(u string, d delivery) {
		if _, ok := plan[u]; !ok {
			order = append(order, u)
		}
		plan[u] = append(plan[u], d)
	}
	for _, u := range targets {
		add(u, delivery{ev: &toThem})
	}
	if r.opts.Protocol == NIP17 {
		sent.CopyEventID = toUs.ID
		for _, u := range r.relays {
			add(u, delivery{ev: &toUs, copy: true})
		}
	}

	results := make([][]RelayOutcome, len(order))
	var wg sync.WaitGroup
	for i, u := range order {
		wg.Go(func() { results[i] = r.deliver(ctx, pool, u, plan[u]) })
	}
	wg.Wait()
	for i, u := range order {
		for j, d := range plan[u] {
			if d.copy {
				sent.Copy = append(sent.Copy, results[i][j])
			} else {
				sent.Recipient = append(sent.Recipient, results[i][j])
			}
		}
	}

	if !sent.Delivered() {
		var why []string
		for _, o := range sent.Recipient {
			why = append(why, o.URL+": "+o.Reason)
		}
		err := fmt.Errorf("%w (%s)", ErrNotDelivered, strings.Join(why, "; "))
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return sent, r.key.redact(err)
	}
	return sent, nil
}

// delivery is one event bound for one relay.
type delivery struct {
	ev   *nostr.Event
	copy bool
}

// deliver publishes ds to relay u over one connection, in order.
func (r *Robot) deliver(ctx context.Context, pool *connPool, u string, ds []delivery) []RelayOutcome {
	out := make([]RelayOutcome, len(ds))
	for i := range out {
		out[i].URL = u
	}
	conn, err := pool.get(ctx, u, r.opts.ConnectTimeout)
	if err != nil {
		for i := range out {
			out[i].Reason = r.key.redactString(err.Error())
		}
		return out
	}
	for i, d := range ds {
		pctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
		accepted, reason, err := conn.publish(pctx, d.ev)
		cancel()
		if err != nil {
			reason = err.Error()
		}
		out[i].Accepted, out[i].Reason = accepted, r.key.redactString(reason)
	}
	return out
}

// lookupInbox returns the relays from the recipient's newest kind 10050
// event found on the robot's relays, or nil. Lookup failures only mean
// falling back, so they are not errors.
func (r *Robot) lookupInbox(ctx context.Context, pool *connPool, pk string) []string {
	lctx, cancel := context.WithTimeout(ctx, r.opts.LookupTimeout)
	defer cancel()
	filter := nostr.Filter{Kinds: []int{nostr.KindDMRelayList}, Authors: []string{pk}, Limit: 1}

	found := make([][]nostr.Event, len(r.relays))
	var wg sync.WaitGroup
	for i, u := range r.relays {
		wg.Go(func() {
			conn, err := pool.get(lctx, u, r.opts.ConnectTimeout)
			if err != nil {
				return
			}
			evs, err := conn.query(lctx, filter, 5)
			if err != nil {
				return // the pool redials a broken connection for delivery
			}
			found[i] = evs
		})
	}
	wg.Wait()

	var newest *nostr.Event
	for _, evs := range found {
		for i := range evs {
			ev := &evs[i]
			if newest == nil || ev.CreatedAt > newest.CreatedAt || (ev.CreatedAt == newest.CreatedAt && ev.ID < newest.ID) {
				newest = ev
			}
		}
	}
	if newest == nil {
		return nil
	}
	var inbox []string
	seen := map[string]bool{}
	for _, tag := range newest.Tags {
		if len(tag) < 2 || tag[0] != "relay" {
			continue
		}
		u, ok := relayURL(tag[1])
		if !ok || seen[u] {
			continue
		}
		seen[u] = true
		inbox = append(inbox, u)
		if len(inbox) == r.opts.MaxInboxRelays {
			break
		}
	}
	return inbox
}

func (r *Robot) nip04Event(pk, message string) (nostr.Event, error) {
	shared, err := nip04.ComputeSharedSecret(pk, r.key.reveal())
	if err != nil {
		return nostr.Event{}, err
	}
	content, err := nip04.Encrypt(message, shared)
	if err != nil {
		return nostr.Event{}, err
	}
	ev := nostr.Event{
		Kind:      nostr.KindEncryptedDirectMessage,
		CreatedAt: nostr.Now(),
		Tags:      nostr.Tags{{"p", pk}},
		Content:   content,
	}
	return ev, ev.Sign(r.key.reveal())
}

// parseRecipient accepts a hex or npub public key and returns it as hex.
func parseRecipient(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "npub1") {
		prefix, v, err := nip19.Decode(s)
		if err != nil || prefix != "npub" {
			return "", ErrInvalidRecipient
		}
		s, _ = v.(string)
	}
	s = strings.ToLower(s)
	if !nostr.IsValid32ByteHex(s) || !nostr.IsValidPublicKey(s) {
		return "", ErrInvalidRecipient
	}
	return s, nil
}

// relayURL normalises a relay URL, accepting only ws:// and wss:// with a
// host.
func relayURL(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil {
		return "", false
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.Fragment = ""
	return u.String(), true
}

// connPool shares one connection per relay between the inbox lookup and the
// deliveries of a single Send. Each phase uses a relay from one goroutine
// only, and the phases do not overlap.
type connPool struct {
	mu    sync.Mutex
	conns map[string]*relayConn
}

func newConnPool() *connPool {
	return &connPool{conns: map[string]*relayConn{}}
}

// get returns the pooled connection to u, or dials one within timeout when
// there is none or the pooled one is broken.
func (p *connPool) get(ctx context.Context, u string, timeout time.Duration) (*relayConn, error) {
	p.mu.Lock()
	c := p.conns[u]
	p.mu.Unlock()
	if c != nil && !c.broken.Load() {
		return c, nil
	}
	if c != nil {
		p.discard(u)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dialRelay(dctx, u)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.conns[u] = c
	p.mu.Unlock()
	return c, nil
}

// discard closes and forgets the connection to u.
func (p *connPool) discard(u string) {
	p.mu.Lock()
	c := p.conns[u]
	delete(p.conns, u)
	p.mu.Unlock()
	if c != nil {
		c.close()
	}
}

func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for u, c := range p.conns {
		c.close()
		delete(p.conns, u)
	}
}
