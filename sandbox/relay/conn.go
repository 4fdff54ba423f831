package relay

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// maxSubIDLength is NIP-01's bound on subscription ids.
const maxSubIDLength = 64

// outItem is one entry of a connection's send queue: a ready message, or
// events for a subscription (optionally followed by EOSE). Events are shared
// records, so a queued stored-events batch costs pointers, not copies.
type outItem struct {
	msg    []byte
	subID  string
	events []*record
	eose   bool
}

// conn is one websocket client. Its ServeHTTP goroutine reads and handles
// messages; a writer goroutine owns all writes, so a slow client never blocks
// the relay, only fills its own bounded queue.
type conn struct {
	r      *Relay
	ws     *websocket.Conn
	remote string
	out    chan outItem

	done     chan struct{}
	killOnce sync.Once
	why      string // set once, before done closes

	mu   sync.Mutex
	subs map[string]nostr.Filters
}

func newConn(r *Relay, ws *websocket.Conn, remote string) *conn {
	return &conn{
		r:      r,
		ws:     ws,
		remote: remote,
		out:    make(chan outItem, r.opts.SendQueue),
		done:   make(chan struct{}),
		subs:   make(map[string]nostr.Filters),
	}
}

// kill ends the connection without blocking: closing the socket unblocks the
// reader and the writer, which then return.
func (c *conn) kill(why string) {
	c.killOnce.Do(func() {
		c.why = why
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *conn) reason() string {
	<-c.done
	return c.why
}

// run serves the connection until it ends and its writer has stopped.
func (c *conn) run() {
	var writer sync.WaitGroup
	writer.Go(c.writeLoop)
	defer writer.Wait()

	idle := 2 * c.r.opts.PingInterval
	c.ws.SetReadLimit(c.r.opts.MaxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(idle))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(idle))
	})
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.kill("read: " + err.Error())
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		c.handle(data)
	}
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(c.r.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			if err := c.write(websocket.PingMessage, nil); err != nil {
				c.kill("ping: " + err.Error())
				return
			}
		case it := <-c.out:
			if err := c.writeItem(it); err != nil {
				c.kill("write: " + err.Error())
				return
			}
		}
	}
}

func (c *conn) write(kind int, msg []byte) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.r.opts.WriteTimeout)); err != nil {
		return err
	}
	return c.ws.WriteMessage(kind, msg)
}

func (c *conn) writeItem(it outItem) error {
	if it.msg != nil {
		return c.write(websocket.TextMessage, it.msg)
	}
	prefix := append([]byte(`["EVENT",`), jsonString(it.subID)...)
	prefix = append(prefix, ',')
	buf := make([]byte, 0, 1024)
	for _, rec := range it.events {
		select {
		case <-c.done:
			return nil
		default:
		}
		buf = append(append(append(buf[:0], prefix...), rec.raw...), ']')
		if err := c.write(websocket.TextMessage, buf); err != nil {
			return err
		}
	}
	if it.eose {
		return c.write(websocket.TextMessage, marshal("EOSE", it.subID))
	}
	return nil
}

// send queues it without blocking; a full queue means the client is not
// keeping up, and it is dropped rather than allowed to grow memory.
func (c *conn) send(it outItem) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.out <- it:
	default:
		c.r.opts.Logger.Info("dropping slow client", "remote", c.remote, "queue", cap(c.out))
		c.kill("send queue full")
	}
}

// deliver queues rec for each of this connection's subscriptions it matches.
func (c *conn) deliver(rec *record) {
	c.mu.Lock()
	var matched []string
	for id, filters := range c.subs {
		if filters.Match(&rec.ev) {
			matched = append(matched, id)
		}
	}
	c.mu.Unlock()
	for _, id := range matched {
		c.send(outItem{subID: id, events: []*record{rec}})
	}
}

// handle dispatches one client message.
func (c *conn) handle(data []byte) {
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) == 0 {
		c.notice("error: could not parse message: expected a JSON array")
		return
	}
	var label string
	if err := json.Unmarshal(arr[0], &label); err != nil {
		c.notice("error: could not parse message: first element must be a string")
		return
	}
	switch label {
	case "EVENT":
		c.handleEvent(arr)
	case "REQ":
		c.handleReq(arr, false)
	case "COUNT":
		c.handleReq(arr, true)
	case "CLOSE":
		c.handleClose(arr)
	case "AUTH":
		c.handleAuth(arr)
	default:
		c.notice("error: unknown message type " + quoteTrunc(label))
	}
}

func (c *conn) handleEvent(arr []json.RawMessage) {
	if len(arr) != 2 {
		c.notice(`invalid: EVENT must be ["EVENT", <event>]`)
		return
	}
	var ev nostr.Event
	if err := json.Unmarshal(arr[1], &ev); err != nil {
		// Without a parsable id there is nothing to address an OK to.
		if id := rawID(arr[1]); id != "" {
			c.ok(id, false, "invalid: malformed event")
			return
		}
		c.notice("invalid: malformed event")
		return
	}
	if !isLowerHex(ev.ID, 64) {
		c.notice("invalid: event id must be 64 lowercase hex characters")
		return
	}
	ok, reason := c.r.accept(&ev)
	c.ok(ev.ID, ok, reason)
}

func (c *conn) handleReq(arr []json.RawMessage, count bool) {
	label := "REQ"
	if count {
		label = "COUNT"
	}
	if len(arr) < 3 {
		c.notice("invalid: " + label + ` must be ["` + label + `", <subscription id>, <filter>...]`)
		return
	}
	var subID string
	if err := json.Unmarshal(arr[1], &subID); err != nil || subID == "" || len(subID) > maxSubIDLength {
		c.notice("invalid: subscription id must be a non-empty string of at most 64 characters")
		return
	}
	if len(arr)-2 > c.r.opts.MaxFilters {
		c.closed(subID, "rate-limited: too many filters")
		return
	}
	filters := make(nostr.Filters, len(arr)-2)
	for i, raw := range arr[2:] {
		if err := json.Unmarshal(raw, &filters[i]); err != nil {
			c.closed(subID, "invalid: malformed filter")
			return
		}
		if filters[i].Search != "" {
			c.closed(subID, "unsupported: search (NIP-50) is not supported")
			return
		}
	}

	if count {
		c.r.mu.RLock()
		n := c.r.countLocked(filters)
		c.r.mu.RUnlock()
		c.send(outItem{msg: marshal("COUNT", subID, map[string]int64{"count": n})})
		return
	}

	c.mu.Lock()
	_, replacing := c.subs[subID]
	full := !replacing && len(c.subs) >= c.r.opts.MaxSubscriptions
	c.mu.Unlock()
	if full {
		c.closed(subID, "rate-limited: too many open subscriptions")
		return
	}

	// Query, register and queue under the read lock: no event can be stored
	// and fanned out in between, so none is missed or sent twice.
	c.r.mu.RLock()
	stored := c.r.queryLocked(filters)
	c.mu.Lock()
	c.subs[subID] = filters
	c.mu.Unlock()
	c.send(outItem{subID: subID, events: stored, eose: true})
	c.r.mu.RUnlock()
}

func (c *conn) handleClose(arr []json.RawMessage) {
	var subID string
	if len(arr) != 2 || json.Unmarshal(arr[1], &subID) != nil {
		c.notice(`invalid: CLOSE must be ["CLOSE", <subscription id>]`)
		return
	}
	c.mu.Lock()
	delete(c.subs, subID)
	c.mu.Unlock()
}

func (c *conn) handleAuth(arr []json.RawMessage) {
	// A client answering a challenge waits for an OK on its auth event; give
	// it one instead of letting it time out.
	if len(arr) == 2 {
		if id := rawID(arr[1]); id != "" {
			c.ok(id, false, "error: this relay does not support AUTH (NIP-42)")
			return
		}
	}
	c.notice("error: this relay does not support AUTH (NIP-42)")
}

func (c *conn) ok(id string, ok bool, reason string) {
	c.send(outItem{msg: marshal("OK", id, ok, reason)})
}

func (c *conn) notice(msg string) {
	c.send(outItem{msg: marshal("NOTICE", msg)})
}

func (c *conn) closed(subID, reason string) {
	c.send(outItem{msg: marshal("CLOSED", subID, reason)})
}

// rawID extracts a well-formed event id from a possibly malformed event.
func rawID(raw json.RawMessage) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &probe) != nil || !isLowerHex(probe.ID, 64) {
		return ""
	}
	return probe.ID
}

func marshal(parts ...any) []byte {
	b, err := json.Marshal(parts)
	if err != nil {
		// Only strings, bools and numbers are passed in.
		panic("relay: marshal: " + err.Error())
	}
	return b
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// quoteTrunc quotes client-supplied text for a NOTICE, bounded so a client
// cannot make the relay echo arbitrarily large strings.
func quoteTrunc(s string) string {
	const limit = 32
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return string(jsonString(s))
}

// sortNewestFirst orders records as NIP-01 expects stored events: newest
// created_at first, ties by lowest id.
func sortNewestFirst(recs []*record) {
	slices.SortFunc(recs, func(a, b *record) int {
		switch {
		case before(&b.ev, &a.ev):
			return -1
		case before(&a.ev, &b.ev):
			return 1
		default:
			return 0
		}
	})
}
