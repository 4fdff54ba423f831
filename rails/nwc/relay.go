package nwc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// RelayConn is one live connection to a Nostr relay: the transport the
// client and the sandbox wallet service share.
type RelayConn interface {
	// URL is the relay's address.
	URL() string
	// Publish sends ev and waits for the relay's OK (or ctx). Failures are
	// *PublishError values telling whether the relay may have the event.
	Publish(ctx context.Context, ev nostr.Event) error
	// Subscribe sends a REQ. The subscription lives until it is closed, ctx
	// ends, the relay sends CLOSED, or the connection ends.
	Subscribe(ctx context.Context, filters nostr.Filters) (RelaySubscription, error)
	// Done is closed once the connection has ended.
	Done() <-chan struct{}
	// Err is why the connection ended (nil while it is live).
	Err() error
	// Close ends the connection and waits for its goroutines.
	Close() error
}

// RelaySubscription is one REQ on a RelayConn.
type RelaySubscription interface {
	// Events delivers matching events with valid ids and signatures. It is
	// never closed: select on Done as well.
	Events() <-chan *nostr.Event
	// EOSE is closed when the relay has sent all stored events. Those may
	// still be buffered in Events then: drain Events before concluding
	// that no stored event matched.
	EOSE() <-chan struct{}
	// Done is closed when the subscription has ended.
	Done() <-chan struct{}
	// Err is why the subscription ended (nil while it is live).
	Err() error
	// Close ends the subscription and tells the relay (best effort).
	Close()
}

// RelayConnector opens a RelayConn; DialRelay is the default. Tests and
// deployments with special transports plug in their own.
type RelayConnector func(ctx context.Context, url string) (RelayConn, error)

var _ RelayConnector = DialRelay

// PublishError reports a publish the relay did not acknowledge.
type PublishError struct {
	// Relay is the relay's URL.
	Relay string
	// Rejected means the relay answered OK=false: it did not take the event.
	Rejected bool
	// Sent means the event was (at least partly) written to the socket, so
	// without an OK the relay may still have taken it.
	Sent bool
	// Reason is the relay's OK message, when it sent one.
	Reason string
	// Err is the transport cause, if any.
	Err error
}

// Error implements error.
func (e *PublishError) Error() string {
	switch {
	case e.Rejected:
		return "nwc: relay " + e.Relay + " rejected the event: " + sanitizeMessage(e.Reason)
	case e.Err != nil:
		return "nwc: publish to " + e.Relay + ": " + e.Err.Error()
	default:
		return "nwc: publish to " + e.Relay + " was not acknowledged"
	}
}

// Unwrap exposes the transport cause.
func (e *PublishError) Unwrap() error { return e.Err }

// MayHaveReachedRelay reports whether an event whose publish failed with err
// might be on the relay anyway. Unknown error types count as "maybe".
func MayHaveReachedRelay(err error) bool {
	if err == nil {
		return true
	}
	var pe *PublishError
	if errors.As(err, &pe) {
		return pe.Sent && !pe.Rejected
	}
	return true
}

// ClosedError is why a relay ended a subscription with CLOSED.
type ClosedError struct {
	// Reason is the relay's message.
	Reason string
}

// Error implements error.
func (e *ClosedError) Error() string {
	return "nwc: relay closed the subscription: " + sanitizeMessage(e.Reason)
}

const (
	// defaultWriteTimeout caps one websocket write; a peer that stops
	// reading would otherwise block a writer forever, because go-nostr's
	// Connection exposes no write deadline.
	defaultWriteTimeout = 10 * time.Second
	// closeWriteTimeout bounds the courtesy CLOSE sent when a subscription ends.
	closeWriteTimeout = 2 * time.Second
	// maxMessageBytes bounds one inbound relay message.
	maxMessageBytes = 1 << 20
	// subscriptionBuffer absorbs bursts without stalling the read loop.
	subscriptionBuffer = 16
	// defaultDialTimeout applies when the caller's ctx has no deadline.
	defaultDialTimeout = 10 * time.Second
)

var (
	errWriteTimeout    = errors.New("nwc: relay write timed out")
	errMessageTooLarge = errors.New("nwc: relay message too large")
	errSubClosed       = errors.New("nwc: subscription closed")
	errWriteAbandoned  = errors.New("nwc: write abandoned before it started")
)

// DialRelay connects to a relay over WebSocket with go-nostr's Connection
// and runs its own small read loop. (go-nostr's Relay type has races
// between Close and its connection goroutines that the race detector
// reports, and QueryEvents spins after its context ends.)
func DialRelay(ctx context.Context, url string) (RelayConn, error) {
	if !nostr.IsValidRelayURL(url) {
		return nil, fmt.Errorf("nwc: %q is not a ws:// or wss:// relay URL", url)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDialTimeout)
		defer cancel()
	}
	h := http.Header{}
	h.Set("User-Agent", "billflow-nwc")
	ws, err := nostr.NewConnection(ctx, url, h, nil)
	if err != nil {
		return nil, fmt.Errorf("nwc: connect to %s: %w", url, err)
	}
	r := &wsRelay{
		url:          url,
		ws:           ws,
		writeTimeout: defaultWriteTimeout,
		subs:         map[string]*wsSub{},
		oks:          map[string]chan okReply{},
		done:         make(chan struct{}),
	}
	r.wg.Add(1)
	go r.readLoop()
	return r, nil
}

type okReply struct {
	ok     bool
	reason string
}

type wsRelay struct {
	url          string
	ws           *nostr.Connection
	writeTimeout time.Duration

	// writeMu serialises frames: gobwas' writer is not safe for concurrent use.
	writeMu sync.Mutex

	mu   sync.Mutex
	subs map[string]*wsSub
	oks  map[string]chan okReply
	err  error

	nextSub  atomic.Uint64
	done     chan struct{}
	shutOnce sync.Once
	// wg counts the read loop and in-flight writers; Add happens only
	// under mu while done is open, so Close's Wait never races an Add.
	wg sync.WaitGroup
}

var _ RelayConn = (*wsRelay)(nil)

func (r *wsRelay) URL() string           { return r.url }
func (r *wsRelay) Done() <-chan struct{} { return r.done }

func (r *wsRelay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *wsRelay) Close() error {
	r.shutdown(ErrRelayClosed)
	r.wg.Wait()
	return nil
}

func (r *wsRelay) shutdown(cause error) {
	r.shutOnce.Do(func() {
		r.mu.Lock()
		r.err = cause
		close(r.done)
		subs := r.subs
		r.subs = map[string]*wsSub{}
		r.mu.Unlock()
		_ = r.ws.Close()
		for _, s := range subs {
			s.end(cause)
		}
	})
}

func (r *wsRelay) isDone() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *wsRelay) readLoop() {
	defer r.wg.Done()
	for {
		buf := &limitedBuffer{max: maxMessageBytes}
		if err := r.ws.ReadMessage(context.Background(), buf); err != nil {
			if buf.over {
				err = errMessageTooLarge
			}
			r.shutdown(fmt.Errorf("nwc: read from %s: %w", r.url, err))
			return
		}
		r.dispatch(buf.Bytes())
	}
}

func (r *wsRelay) dispatch(msg []byte) {
	switch env := nostr.ParseMessage(msg).(type) {
	case *nostr.EventEnvelope:
		if env.SubscriptionID == nil {
			return
		}
		s := r.sub(*env.SubscriptionID)
		if s == nil {
			return // late event for a subscription we closed: drop it
		}
		ev := env.Event
		// go-nostr's CheckID indexes the id without checking its length: an
		// event with a short id from a relay panicked this read loop, and the
		// worker with it (found by FuzzRelayDispatch).
		if !s.filters.Match(&ev) || !nostr.IsValid32ByteHex(ev.ID) || !ev.CheckID() {
			return
		}
		if ok, _ := ev.CheckSignature(); !ok {
			return
		}
		select {
		case s.events <- &ev:
		case <-s.done:
		case <-r.done:
		}
	case *nostr.EOSEEnvelope:
		if s := r.sub(string(*env)); s != nil {
			s.eoseOnce.Do(func() { close(s.eose) })
		}
	case *nostr.ClosedEnvelope:
		if s := r.sub(env.SubscriptionID); s != nil {
			r.removeSub(s.id)
			s.end(&ClosedError{Reason: env.Reason})
		}
	case *nostr.OKEnvelope:
		r.mu.Lock()
		ch := r.oks[env.EventID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- okReply{ok: env.OK, reason: env.Reason}:
			default:
			}
		}
	}
}

func (r *wsRelay) sub(id string) *wsSub {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subs[id]
}

func (r *wsRelay) removeSub(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, id)
}

// write sends one frame. sent reports whether the frame may have left:
// false only when it certainly did not.
func (r *wsRelay) write(ctx context.Context, msg []byte) (sent bool, err error) {
	r.mu.Lock()
	if r.isDone() {
		err := r.err
		r.mu.Unlock()
		return false, err
	}
	r.wg.Add(1)
	r.mu.Unlock()

	// state arbitrates between the writer starting and the caller giving
	// up, so "not sent" is only reported when it is true.
	const (
		pending = iota
		writing
		abandoned
	)
	var stateMu sync.Mutex
	state := pending
	result := make(chan error, 1)
	go func() {
		defer r.wg.Done()
		r.writeMu.Lock()
		defer r.writeMu.Unlock()
		stateMu.Lock()
		if state == abandoned || r.isDone() {
			stateMu.Unlock()
			result <- errWriteAbandoned
			return
		}
		state = writing
		stateMu.Unlock()
		t := time.AfterFunc(r.writeTimeout, func() { r.shutdown(errWriteTimeout) })
		err := r.ws.WriteMessage(context.Background(), msg)
		t.Stop()
		if err != nil {
			r.shutdown(fmt.Errorf("nwc: write to %s: %w", r.url, err))
		}
		result <- err
	}()

	select {
	case err := <-result:
		if errors.Is(err, errWriteAbandoned) {
			if e := r.Err(); e != nil {
				err = e
			}
			return false, err
		}
		return true, err
	case <-ctx.Done():
		stateMu.Lock()
		defer stateMu.Unlock()
		if state == pending {
			state = abandoned
			return false, ctx.Err()
		}
		return true, ctx.Err()
	}
}

func (r *wsRelay) Publish(ctx context.Context, ev nostr.Event) error {
	ch := make(chan okReply, 1)
	r.mu.Lock()
	if _, busy := r.oks[ev.ID]; busy {
		r.mu.Unlock()
		return &PublishError{Relay: r.url, Err: errors.New("the same event is already being published")}
	}
	r.oks[ev.ID] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.oks, ev.ID)
		r.mu.Unlock()
	}()

	msg, err := nostr.EventEnvelope{Event: ev}.MarshalJSON()
	if err != nil {
		return &PublishError{Relay: r.url, Err: err}
	}
	sent, err := r.write(ctx, msg)
	if err != nil {
		return &PublishError{Relay: r.url, Sent: sent, Err: err}
	}
	select {
	case rep := <-ch:
		// "duplicate:" means the relay already holds this very event.
		if rep.ok || strings.HasPrefix(rep.reason, "duplicate:") {
			return nil
		}
		return &PublishError{Relay: r.url, Rejected: true, Reason: rep.reason}
	case <-ctx.Done():
		return &PublishError{Relay: r.url, Sent: true, Err: ctx.Err()}
	case <-r.done:
		return &PublishError{Relay: r.url, Sent: true, Err: r.Err()}
	}
}

func (r *wsRelay) Subscribe(ctx context.Context, filters nostr.Filters) (RelaySubscription, error) {
	s := &wsSub{
		id:      "nwc:" + strconv.FormatUint(r.nextSub.Add(1), 10),
		relay:   r,
		filters: filters,
		events:  make(chan *nostr.Event, subscriptionBuffer),
		eose:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.mu.Lock()
	if r.isDone() {
		err := r.err
		r.mu.Unlock()
		return nil, err
	}
	r.subs[s.id] = s
	r.mu.Unlock()

	msg, err := nostr.ReqEnvelope{SubscriptionID: s.id, Filters: filters}.MarshalJSON()
	if err == nil {
		_, err = r.write(ctx, msg)
	}
	if err != nil {
		r.removeSub(s.id)
		s.end(err)
		return nil, err
	}
	s.stopMu.Lock()
	s.stopAfter = context.AfterFunc(ctx, s.Close)
	s.stopMu.Unlock()
	return s, nil
}

type wsSub struct {
	id      string
	relay   *wsRelay
	filters nostr.Filters
	events  chan *nostr.Event

	eose     chan struct{}
	eoseOnce sync.Once

	done    chan struct{}
	endOnce sync.Once
	err     error // written once, before done is closed

	stopMu    sync.Mutex
	stopAfter func() bool
}

var _ RelaySubscription = (*wsSub)(nil)

func (s *wsSub) Events() <-chan *nostr.Event { return s.events }
func (s *wsSub) EOSE() <-chan struct{}       { return s.eose }
func (s *wsSub) Done() <-chan struct{}       { return s.done }

func (s *wsSub) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *wsSub) end(err error) bool {
	first := false
	s.endOnce.Do(func() {
		s.err = err
		close(s.done)
		first = true
	})
	return first
}

func (s *wsSub) Close() {
	if !s.end(errSubClosed) {
		return
	}
	s.stopMu.Lock()
	stop := s.stopAfter
	s.stopMu.Unlock()
	if stop != nil {
		stop()
	}
	s.relay.removeSub(s.id)
	ctx, cancel := context.WithTimeout(context.Background(), closeWriteTimeout)
	defer cancel()
	msg, err := nostr.CloseEnvelope(s.id).MarshalJSON()
	if err == nil {
		_, _ = s.relay.write(ctx, msg)
	}
}

// limitedBuffer refuses to grow past max, so a hostile relay cannot make a
// client buffer an arbitrarily large frame. It deliberately does not embed
// bytes.Buffer: io.Copy would use the promoted ReadFrom and skip the limit.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		b.over = true
		return 0, errMessageTooLarge
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }
