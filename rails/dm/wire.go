package dm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// relayConn is a minimal, synchronous NIP-01 client: one request at a time,
// its reply read on the caller's goroutine. The rail uses it instead of
// go-nostr's *nostr.Relay, whose v0.38.2 Close races with its own cleanup
// goroutine and whose QuerySync leaks a spinning goroutine; here a connection
// owns no goroutine at all, so nothing can outlive Send.
type relayConn struct {
	url string
	ws  *websocket.Conn
	// broken is set once an exchange failed or was cancelled: gorilla's
	// read errors are permanent, so the connection must not be reused.
	broken atomic.Bool
}

// maxRelayMessage bounds what one relay message may make us buffer.
const maxRelayMessage = 1 << 20

var subCounter atomic.Uint64

// dialRelay opens a websocket to url within ctx's deadline.
func dialRelay(ctx context.Context, url string) (*relayConn, error) {
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	ws.SetReadLimit(maxRelayMessage)
	return &relayConn{url: url, ws: ws}, nil
}

func (c *relayConn) close() { _ = c.ws.Close() }

// bind applies ctx to the socket for one exchange: its deadline becomes the
// socket's, and cancellation closes the connection, which unblocks any read
// or write at once. The returned release must be called when the exchange
// ends; afterwards the connection is either intact or marked broken.
func (c *relayConn) bind(ctx context.Context) (release func()) {
	dl, _ := ctx.Deadline() // every caller's ctx carries a deadline
	_ = c.ws.SetReadDeadline(dl)
	_ = c.ws.SetWriteDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.broken.Store(true)
		_ = c.ws.Close() // only the net.Conn's Close is safe concurrently
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // so the caller never reuses a connection being closed
		}
	}
}

// exchangeErr marks c broken and prefers the context's reason over the
// socket error it caused.
func (c *relayConn) exchangeErr(ctx context.Context, what string, err error) error {
	c.broken.Store(true)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *relayConn) send(parts ...any) error {
	b, err := json.Marshal(parts)
	if err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// next reads one relay message as its label and remaining elements; messages
// that are not NIP-01 arrays come back with an empty label.
func (c *relayConn) next() (string, []json.RawMessage, error) {
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return "", nil, err
	}
	var arr []json.RawMessage
	var label string
	if json.Unmarshal(data, &arr) != nil || len(arr) == 0 || json.Unmarshal(arr[0], &label) != nil {
		return "", nil, nil
	}
	return label, arr[1:], nil
}

// publish sends ev and waits for the relay's OK for it.
func (c *relayConn) publish(ctx context.Context, ev *nostr.Event) (accepted bool, reason string, err error) {
	defer c.bind(ctx)()
	if err := c.send("EVENT", ev); err != nil {
		return false, "", c.exchangeErr(ctx, "publish", err)
	}
	for {
		label, rest, err := c.next()
		if err != nil {
			return false, "", c.exchangeErr(ctx, "waiting for OK", err)
		}
		if label != "OK" || len(rest) < 2 {
			continue // NOTICEs and stray messages do not answer us
		}
		var id string
		if json.Unmarshal(rest[0], &id) != nil || id != ev.ID {
			continue
		}
		if json.Unmarshal(rest[1], &accepted) != nil {
			c.broken.Store(true)
			return false, "", errors.New("malformed OK from relay")
		}
		if len(rest) > 2 {
			_ = json.Unmarshal(rest[2], &reason)
		}
		return accepted, reason, nil
	}
}

// query sends a REQ for f and returns the events delivered before EOSE, at
// most limit of them, each with a verified id and signature and matching f
// (a relay cannot forge another user's event). It then closes the
// subscription.
func (c *relayConn) query(ctx context.Context, f nostr.Filter, limit int) ([]nostr.Event, error) {
	defer c.bind(ctx)()
	subID := "dm-" + strconv.FormatUint(subCounter.Add(1), 10)
	if err := c.send("REQ", subID, f); err != nil {
		return nil, c.exchangeErr(ctx, "query", err)
	}
	var out []nostr.Event
	for {
		label, rest, err := c.next()
		if err != nil {
			return nil, c.exchangeErr(ctx, "query", err)
		}
		if len(rest) == 0 {
			continue
		}
		var sid string
		if json.Unmarshal(rest[0], &sid) != nil || sid != subID {
			continue
		}
		switch label {
		case "EVENT":
			if len(rest) < 2 || len(out) >= limit {
				continue
			}
			var ev nostr.Event
			if json.Unmarshal(rest[1], &ev) != nil || !verified(&ev) || !f.Matches(&ev) {
				continue
			}
			out = append(out, ev)
		case "EOSE":
			_ = c.send("CLOSE", subID) // best effort: we hang up next anyway
			return out, nil
		case "CLOSED":
			var reason string
			if len(rest) > 1 {
				_ = json.Unmarshal(rest[1], &reason)
			}
			return nil, fmt.Errorf("query refused: %s", reason)
		}
	}
}

// verified checks an event's id and signature.
func verified(ev *nostr.Event) bool {
	if len(ev.ID) != 64 || len(ev.PubKey) != 64 || len(ev.Sig) != 128 {
		return false
	}
	if !ev.CheckID() {
		return false
	}
	ok, _ := ev.CheckSignature()
	return ok
}
