package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every wait in these tests; conditions are polled, never
// assumed to hold after a fixed sleep.
const waitTimeout = 15 * time.Second

// startRelay runs a relay with opts on a random loopback port, closed when
// the test ends.
func startRelay(t *testing.T, opts Options) (*Relay, string) {
	t.Helper()
	r := New(opts)
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r, url
}

// dial connects go-nostr's client; cleanup closes it before the relay (LIFO).
func dial(t *testing.T, url string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, nostr.WithNoticeHandler(func(string) {}))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// signed builds and signs an event.
func signed(t testing.TB, sk string, kind int, createdAt nostr.Timestamp, tags nostr.Tags, content string) nostr.Event {
	t.Helper()
	if tags == nil {
		tags = nostr.Tags{}
	}
	ev := nostr.Event{Kind: kind, CreatedAt: createdAt, Tags: tags, Content: content}
	require.NoError(t, ev.Sign(sk))
	return ev
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGoroutines waits until the goroutine count is back to at most base,
// dumping all stacks if it never is.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d > baseline %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawClient speaks the wire protocol directly, so tests can check message
// order and malformed input, which go-nostr's client hides or reorders.
type rawClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	ws, resp, err := d.DialContext(testCtx(t), url, nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	return &rawClient{t: t, ws: ws}
}

func (c *rawClient) sendRaw(s string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, []byte(s)))
}

func (c *rawClient) send(parts ...any) {
	c.t.Helper()
	b, err := json.Marshal(parts)
	require.NoError(c.t, err)
	c.sendRaw(string(b))
}

// next reads one message and returns its label and remaining elements.
func (c *rawClient) next() (string, []json.RawMessage) {
	c.t.Helper()
	require.NoError(c.t, c.ws.SetReadDeadline(time.Now().Add(waitTimeout)))
	_, data, err := c.ws.ReadMessage()
	require.NoError(c.t, err)
	var arr []json.RawMessage
	require.NoError(c.t, json.Unmarshal(data, &arr), "message %s", data)
	require.NotEmpty(c.t, arr)
	var label string
	require.NoError(c.t, json.Unmarshal(arr[0], &label))
	return label, arr[1:]
}

// expect reads one message and requires its label.
func (c *rawClient) expect(label string) []json.RawMessage {
	c.t.Helper()
	got, rest := c.next()
	require.Equal(c.t, label, got, "message %s", rest)
	return rest
}

// ok reads an OK message for id and returns its verdict.
func (c *rawClient) ok(id string) (bool, string) {
	c.t.Helper()
	rest := c.expect("OK")
	require.Len(c.t, rest, 3)
	require.Equal(c.t, id, str(c.t, rest[0]))
	var accepted bool
	require.NoError(c.t, json.Unmarshal(rest[1], &accepted))
	return accepted, str(c.t, rest[2])
}

// stored sends REQ and returns the ids delivered before EOSE, in order.
func (c *rawClient) stored(subID string, filters ...any) []string {
	c.t.Helper()
	c.send(append([]any{"REQ", subID}, filters...)...)
	var ids []string
	for {
		label, rest := c.next()
		switch label {
		case "EVENT":
			require.Equal(c.t, subID, str(c.t, rest[0]))
			var ev nostr.Event
			require.NoError(c.t, json.Unmarshal(rest[1], &ev))
			ids = append(ids, ev.ID)
		case "EOSE":
			require.Equal(c.t, subID, str(c.t, rest[0]))
			return ids
		default:
			c.t.Fatalf("unexpected %s %s before EOSE", label, rest)
		}
	}
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(raw, &s))
	return s
}

func ids(evs []nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func hasPrefix(t *testing.T, s, prefix string) {
	t.Helper()
	require.True(t, strings.HasPrefix(s, prefix), fmt.Sprintf("%q should start with %q", s, prefix))
}
