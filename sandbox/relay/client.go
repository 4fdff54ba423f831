package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nbd-wtf/go-nostr"
)

// Client is go-nostr's own relay client (*nostr.Relay, used unchanged for
// Publish and Subscribe) with a Close and a Fetch that are safe under the
// race detector. Tests across billflow use it against this relay; close every
// Client before the relay it talks to, since a server-side hang-up makes
// go-nostr run its racy Close itself.
//
// Why it exists, measured on go-nostr v0.38.2:
//   - (*nostr.Relay).Close reads r.Connection after cancelling the
//     connection context while the connection's cleanup goroutine writes it
//     (relay.go:516 vs :172), so `go test -race` fails on every Close of a
//     connected relay, including the implicit one when the server hangs up.
//   - (*nostr.Relay).QuerySync/QueryEvents leave a goroutine looping forever
//     at 100% CPU once the query ends (its select has no exit).
//
// Close orders that cleanup before anything reads the field, and Fetch
// replaces QuerySync. Do not call the embedded Relay's Close, QuerySync,
// QueryEvents or Count on a Client, and end subscriptions early only with
// Client.Unsub: each of those may write from a background goroutine that
// nothing orders before Close.
type Client struct {
	*nostr.Relay
	conn     *nostr.Connection
	cancel   context.CancelFunc
	sentinel *nostr.Subscription
}

// Dial connects go-nostr's client to url, bounded by ctx (go-nostr applies 7s
// when ctx has no deadline).
func Dial(ctx context.Context, url string, opts ...nostr.RelayOption) (*Client, error) {
	// The parent context, not Relay.Close, is what ends the connection: see
	// Client.Close.
	parent, cancel := context.WithCancel(context.Background())
	r := nostr.NewRelay(parent, url, opts...)
	if err := r.Connect(ctx); err != nil {
		cancel()
		return nil, err
	}
	// The cleanup goroutine cancels every registered subscription after it
	// has cleared r.Connection; waiting for this never-fired one tells Close
	// that the cleanup write has happened.
	sentinel := r.PrepareSubscription(context.Background(), nostr.Filters{{}})
	return &Client{Relay: r, conn: r.Connection, cancel: cancel, sentinel: sentinel}, nil
}

// Close ends the connection and waits until go-nostr's cleanup goroutine has
// run. Subscriptions still open are ended without sending CLOSE. Idempotent.
func (c *Client) Close() {
	c.cancel()
	<-c.sentinel.Context.Done()
	// Only marks the relay closed now: r.Connection is already nil, so it
	// neither races nor closes the socket.
	_ = c.Relay.Close()
	_ = c.conn.Close()
}

// Fetch returns the stored events matching filters, in the order the relay
// sent them, stopping at EOSE. It is QuerySync without the leaked goroutine:
// the subscription is closed and fully drained before Fetch returns.
func (c *Client) Fetch(ctx context.Context, filters ...nostr.Filter) ([]nostr.Event, error) {
	sub, err := c.Subscribe(ctx, filters)
	if err != nil {
		return nil, err
	}
	var (
		out  []nostr.Event
		ferr error
	)
collect:
	for {
		select {
		case ev, ok := <-sub.Events:
			if !ok {
				ferr = errors.New("relay: subscription ended before EOSE")
				break collect
			}
			out = append(out, *ev)
		case <-sub.EndOfStoredEvents:
			break collect
		case reason := <-sub.ClosedReason:
			ferr = fmt.Errorf("relay: subscription closed by relay: %s", reason)
			break collect
		case <-ctx.Done():
			ferr = ctx.Err()
			break collect
		}
	}
	c.Unsub(sub)
	return out, ferr
}

// Unsub ends sub (sending CLOSE) and waits until its goroutine is done,
// discarding undelivered events, so the CLOSE write is ordered before a later
// Close.
func (c *Client) Unsub(sub *nostr.Subscription) {
	sub.Unsub()
	// Events is closed by the subscription goroutine as its last step.
	for range sub.Events {
	}
}
