package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
)

func TestEventValidation(t *testing.T) {
	_, url := startRelay(t, Options{})
	c := dialRaw(t, url)
	sk := nostr.GeneratePrivateKey()
	good := signed(t, sk, nostr.KindTextNote, nostr.Now(), nil, "hello")

	c.send("EVENT", good)
	ok, reason := c.ok(good.ID)
	require.True(t, ok)
	require.Empty(t, reason)

	c.send("EVENT", good)
	ok, reason = c.ok(good.ID)
	require.True(t, ok, "duplicates are accepted per NIP-01")
	hasPrefix(t, reason, "duplicate:")

	tampered := good
	tampered.Content = "changed"
	c.send("EVENT", tampered)
	ok, reason = c.ok(tampered.ID)
	require.False(t, ok)
	hasPrefix(t, reason, "invalid:")

	other := signed(t, nostr.GeneratePrivateKey(), nostr.KindTextNote, nostr.Now(), nil, "x")
	badSig := good
	badSig.ID, badSig.Sig = other.ID, other.Sig
	badSig.Content, badSig.PubKey = other.Content, good.PubKey
	c.send("EVENT", badSig)
	ok, reason = c.ok(badSig.ID)
	require.False(t, ok)
	hasPrefix(t, reason, "invalid:")

	upper := good
	upper.PubKey = strings.ToUpper(good.PubKey)
	c.send("EVENT", upper)
	ok, reason = c.ok(upper.ID)
	require.False(t, ok)
	hasPrefix(t, reason, "invalid:")

	expired := signed(t, sk, nostr.KindTextNote, nostr.Now(), nostr.Tags{{"expiration", strconv.FormatInt(int64(nostr.Now())-1, 10)}}, "gone")
	c.send("EVENT", expired)
	ok, reason = c.ok(expired.ID)
	require.False(t, ok)
	hasPrefix(t, reason, "invalid:")

	// An id-bearing event of the wrong shape still gets an OK false.
	id := strings.Repeat("ab", 32)
	c.sendRaw(`["EVENT",{"id":"` + id + `","kind":"one"}]`)
	ok, reason = c.ok(id)
	require.False(t, ok)
	hasPrefix(t, reason, "invalid:")

	require.Equal(t, []string{good.ID}, c.stored("all", map[string]any{}))
}

func TestMalformedInputGetsNotice(t *testing.T) {
	_, url := startRelay(t, Options{MaxFilters: 2})
	c := dialRaw(t, url)
	for _, msg := range []string{
		`not json`,
		`{"an":"object"}`,
		`[]`,
		`[42]`,
		`["WHAT","x"]`,
		`["EVENT"]`,
		`["EVENT",{"no":"id"}]`,
		`["REQ","only-id"]`,
		`["REQ","",{}]`,
		`["REQ","` + strings.Repeat("s", 65) + `",{}]`,
		`["CLOSE"]`,
		`["AUTH","challenge-from-a-client?"]`,
	} {
		label, rest := c.next2(msg)
		require.Equal(t, "NOTICE", label, "input %s gave %s %s", msg, label, rest)
	}

	// REQs that parse but cannot be served are refused with CLOSED.
	c.sendRaw(`["REQ","s1",{"kinds":"nope"}]`)
	rest := c.expect("CLOSED")
	require.Equal(t, "s1", str(t, rest[0]))
	hasPrefix(t, str(t, rest[1]), "invalid:")
	c.sendRaw(`["REQ","s2",{},{},{}]`)
	rest = c.expect("CLOSED")
	hasPrefix(t, str(t, rest[1]), "rate-limited:")
	c.sendRaw(`["REQ","s3",{"search":"x"}]`)
	rest = c.expect("CLOSED")
	hasPrefix(t, str(t, rest[1]), "unsupported:")

	// The connection survives all of it.
	require.Empty(t, c.stored("ok", map[string]any{}))
}

// next2 sends msg and reads the reply.
func (c *rawClient) next2(msg string) (string, []json.RawMessage) {
	c.t.Helper()
	c.sendRaw(msg)
	return c.next()
}

func TestFilters(t *testing.T) {
	r, url := startRelay(t, Options{})
	alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	alicePK, _ := nostr.GetPublicKey(alice)
	bobPK, _ := nostr.GetPublicKey(bob)
	base := nostr.Now() - 1000
	target := strings.Repeat("e", 64)

	a1 := signed(t, alice, 1, base+1, nil, "a1")
	a2 := signed(t, alice, 1, base+2, nostr.Tags{{"e", target}}, "a2")
	a3 := signed(t, alice, 7, base+3, nostr.Tags{{"p", bobPK}, {"t", "billing"}}, "a3")
	b1 := signed(t, bob, 1, base+4, nostr.Tags{{"t", "billing"}, {"t", "other"}}, "b1")
	b2 := signed(t, bob, 4, base+5, nostr.Tags{{"p", alicePK}}, "b2")
	for _, ev := range []nostr.Event{a3, b1, a1, b2, a2} { // out of order on purpose
		ok, reason := r.Publish(ev)
		require.True(t, ok, reason)
	}

	c := dialRaw(t, url)
	for i, tc := range []struct {
		filter map[string]any
		want   []nostr.Event
	}{
		{map[string]any{}, []nostr.Event{b2, b1, a3, a2, a1}},
		{map[string]any{"limit": 2}, []nostr.Event{b2, b1}},
		{map[string]any{"limit": 0}, nil},
		{map[string]any{"ids": []string{a1.ID, b1.ID}}, []nostr.Event{b1, a1}},
		{map[string]any{"ids": []string{a1.ID, b1.ID}, "limit": 1}, []nostr.Event{b1}},
		{map[string]any{"authors": []string{alicePK}}, []nostr.Event{a3, a2, a1}},
		{map[string]any{"kinds": []int{1}}, []nostr.Event{b1, a2, a1}},
		{map[string]any{"kinds": []int{1}, "authors": []string{bobPK}}, []nostr.Event{b1}},
		{map[string]any{"#e": []string{target}}, []nostr.Event{a2}},
		{map[string]any{"#p": []string{bobPK, alicePK}}, []nostr.Event{b2, a3}},
		{map[string]any{"#t": []string{"billing"}}, []nostr.Event{b1, a3}},
		{map[string]any{"#t": []string{"other"}, "kinds": []int{7}}, nil},
		{map[string]any{"since": base + 3}, []nostr.Event{b2, b1, a3}},
		{map[string]any{"until": base + 2}, []nostr.Event{a2, a1}},
		{map[string]any{"since": base + 2, "until": base + 4, "limit": 2}, []nostr.Event{b1, a3}},
		{map[string]any{"authors": []string{strings.Repeat("0", 64)}}, nil},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c.t = t
			require.Equal(t, nilIfEmpty(ids(tc.want)), nilIfEmpty(c.stored("f"+strconv.Itoa(i), tc.filter)), "filter %v", tc.filter)
			// The in-process view agrees with the wire.
			var f nostr.Filter
			b, _ := json.Marshal(tc.filter)
			require.NoError(t, json.Unmarshal(b, &f))
			require.Equal(t, nilIfEmpty(ids(tc.want)), nilIfEmpty(ids(r.Query(f))))
		})
	}

	// Several filters are OR-ed, merged newest first, without duplicates.
	c.t = t
	got := c.stored("multi", map[string]any{"kinds": []int{7}}, map[string]any{"authors": []string{bobPK}}, map[string]any{"#t": []string{"billing"}})
	require.Equal(t, ids([]nostr.Event{b2, b1, a3}), got)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestReplaceableAndAddressable(t *testing.T) {
	r, url := startRelay(t, Options{})
	c := dialRaw(t, url)
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	now := nostr.Now()
	publish := func(ev nostr.Event) (bool, string) {
		c.send("EVENT", ev)
		return c.ok(ev.ID)
	}

	for _, kind := range []int{0, 3, 10050} {
		old := signed(t, sk, kind, now-10, nil, "old")
		cur := signed(t, sk, kind, now, nil, "current")
		ok, _ := publish(old)
		require.True(t, ok)
		ok, _ = publish(cur)
		require.True(t, ok)
		require.Equal(t, []string{cur.ID}, ids(r.Query(nostr.Filter{Kinds: []int{kind}, Authors: []string{pk}})), "kind %d", kind)

		stale := signed(t, sk, kind, now-5, nil, "stale")
		ok, reason := publish(stale)
		require.False(t, ok, "kind %d: an older version must not replace a newer one", kind)
		hasPrefix(t, reason, "duplicate:")
		require.Equal(t, []string{cur.ID}, ids(r.Query(nostr.Filter{Kinds: []int{kind}, Authors: []string{pk}})))
	}

	// Same timestamp: the lowest id wins (NIP-01).
	x := signed(t, sk, 10002, now, nil, "x")
	y := signed(t, sk, 10002, now, nil, "y")
	low, high := x, y
	if high.ID < low.ID {
		low, high = high, low
	}
	ok, _ := publish(high)
	require.True(t, ok)
	ok, _ = publish(low)
	require.True(t, ok)
	require.Equal(t, []string{low.ID}, ids(r.Query(nostr.Filter{Kinds: []int{10002}})))

	// Addressable events are kept per d tag.
	a1 := signed(t, sk, 30078, now-2, nostr.Tags{{"d", "a"}}, "a1")
	a2 := signed(t, sk, 30078, now-1, nostr.Tags{{"d", "a"}}, "a2")
	b1 := signed(t, sk, 30078, now-3, nostr.Tags{{"d", "b"}}, "b1")
	for _, ev := range []nostr.Event{a1, a2, b1} {
		ok, reason := publish(ev)
		require.True(t, ok, reason)
	}
	require.Equal(t, []string{a2.ID, b1.ID}, ids(r.Query(nostr.Filter{Kinds: []int{30078}})))

	// Regular kinds keep every version.
	n1 := signed(t, sk, 1, now-1, nil, "n1")
	n2 := signed(t, sk, 1, now, nil, "n2")
	publish(n1)
	publish(n2)
	require.Len(t, r.Query(nostr.Filter{Kinds: []int{1}}), 2)
}

func TestEphemeralIsRelayedNotStored(t *testing.T) {
	r, url := startRelay(t, Options{})
	listener, publisher := dialRaw(t, url), dialRaw(t, url)
	require.Empty(t, listener.stored("eph", map[string]any{"kinds": []int{23194}}))

	ev := signed(t, nostr.GeneratePrivateKey(), 23194, nostr.Now(), nil, "request")
	publisher.send("EVENT", ev)
	ok, _ := publisher.ok(ev.ID)
	require.True(t, ok)

	rest := listener.expect("EVENT")
	require.Equal(t, "eph", str(t, rest[0]))
	var got nostr.Event
	require.NoError(t, json.Unmarshal(rest[1], &got))
	require.Equal(t, ev.ID, got.ID)

	require.Empty(t, r.Query(nostr.Filter{Kinds: []int{23194}}))
	require.Empty(t, publisher.stored("later", map[string]any{"kinds": []int{23194}}))
}

func TestCloseStopsSubscription(t *testing.T) {
	r, url := startRelay(t, Options{})
	c := dialRaw(t, url)
	sk := nostr.GeneratePrivateKey()
	require.Empty(t, c.stored("notes", map[string]any{"kinds": []int{1}}))

	// Replacing a subscription with the same id narrows it.
	require.Empty(t, c.stored("notes", map[string]any{"kinds": []int{1}, "#t": []string{"keep"}}))
	dropped := signed(t, sk, 1, nostr.Now(), nil, "not tagged")
	kept := signed(t, sk, 1, nostr.Now(), nostr.Tags{{"t", "keep"}}, "tagged")
	r.Publish(dropped)
	r.Publish(kept)
	rest := c.expect("EVENT")
	var got nostr.Event
	require.NoError(t, json.Unmarshal(rest[1], &got))
	require.Equal(t, kept.ID, got.ID)

	c.send("CLOSE", "notes")
	// A fresh REQ is a sync point: the writer sends in order, so anything
	// still addressed to "notes" would show up before this EOSE.
	require.Len(t, c.stored("sync1", map[string]any{"ids": []string{kept.ID}}), 1)
	late := signed(t, sk, 1, nostr.Now(), nostr.Tags{{"t", "keep"}}, "after close")
	r.Publish(late)
	require.Empty(t, c.stored("sync2", map[string]any{"kinds": []int{5}}))
}

func TestSubscriptionLimit(t *testing.T) {
	_, url := startRelay(t, Options{MaxSubscriptions: 2})
	c := dialRaw(t, url)
	c.stored("a", map[string]any{})
	c.stored("b", map[string]any{})
	c.stored("a", map[string]any{"kinds": []int{1}}) // replacing does not count
	c.send("REQ", "c", map[string]any{})
	rest := c.expect("CLOSED")
	hasPrefix(t, str(t, rest[1]), "rate-limited:")
	c.send("CLOSE", "b")
	c.stored("c", map[string]any{})
}

// TestEveryEventOnceAcrossEOSE publishes from many clients while others
// subscribe: each subscriber must see every event exactly once, stored or
// live, whatever the interleaving.
func TestEveryEventOnceAcrossEOSE(t *testing.T) {
	r, url := startRelay(t, Options{})
	const publishers, perPublisher, subscribers = 4, 25, 3

	events := make([][]nostr.Event, publishers)
	for p := range events {
		sk := nostr.GeneratePrivateKey()
		for i := range perPublisher {
			events[p] = append(events[p], signed(t, sk, 1, nostr.Now(), nostr.Tags{{"i", strconv.Itoa(i)}}, "m"))
		}
	}

	subs := make([]*rawClient, subscribers)
	for i := range subs {
		subs[i] = dialRaw(t, url)
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		c := dialRaw(t, url)
		wg.Go(func() {
			for _, ev := range events[p] {
				if err := c.ws.WriteJSON([]any{"EVENT", ev}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Subscribe while the publishers run.
	seen := make([]map[string]int, subscribers)
	for i, c := range subs {
		seen[i] = map[string]int{}
		for _, id := range c.stored("all", map[string]any{"kinds": []int{1}}) {
			seen[i][id]++
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	eventually(t, "all events stored", func() bool {
		return len(r.Query(nostr.Filter{Kinds: []int{1}, Limit: 500})) == publishers*perPublisher
	})
	for i, c := range subs {
		for len(seen[i]) < publishers*perPublisher {
			rest := c.expect("EVENT")
			var ev nostr.Event
			require.NoError(t, json.Unmarshal(rest[1], &ev))
			seen[i][ev.ID]++
		}
		for id, n := range seen[i] {
			require.Equal(t, 1, n, "subscriber %d got %s %d times", i, id, n)
		}
		// Nothing extra is pending.
		require.Empty(t, c.stored("sync", map[string]any{"kinds": []int{5}}))
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	r, url := startRelay(t, Options{SendQueue: 4})
	slow := dialRaw(t, url)
	slow.send("REQ", "flood", map[string]any{"kinds": []int{20001}})
	fast := dialRaw(t, url)
	require.Empty(t, fast.stored("ready", map[string]any{"kinds": []int{5}}))
	eventually(t, "both subscriptions registered", func() bool { return r.Connections() == 2 })

	// Large ephemeral events fill the socket buffers of a client that never
	// reads, then its queue; the relay must drop it rather than block or
	// buffer without bound.
	sk := nostr.GeneratePrivateKey()
	payload := strings.Repeat("x", 128<<10)
	for i := 0; r.Connections() == 2; i++ {
		require.Less(t, i, 5000, "slow client never dropped")
		ok, reason := r.Publish(signed(t, sk, 20001, nostr.Now(), nostr.Tags{{"n", strconv.Itoa(i)}}, payload))
		require.True(t, ok, reason)
	}
	require.Equal(t, 1, r.Connections())
	// The fast client is unaffected.
	require.Empty(t, fast.stored("still-here", map[string]any{"kinds": []int{5}}))
}

func TestOversizedMessageDisconnects(t *testing.T) {
	r, url := startRelay(t, Options{MaxMessageBytes: 1024})
	c := dialRaw(t, url)
	eventually(t, "connection registered", func() bool { return r.Connections() == 1 })
	// The relay may hang up mid-write, so the write's own error is moot.
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`["NOTICE","`+strings.Repeat("x", 4096)+`"]`))
	eventually(t, "oversized client dropped", func() bool { return r.Connections() == 0 })
}

func TestCloseEndsConnectionsWithoutLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	r := New(Options{})
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)

	clients := make([]*rawClient, 3)
	for i := range clients {
		clients[i] = dialRaw(t, url)
		clients[i].stored("s", map[string]any{})
	}
	require.Equal(t, 3, r.Connections())
	// A client leaving on its own is cleaned up too.
	require.NoError(t, clients[2].ws.Close())
	eventually(t, "departed client removed", func() bool { return r.Connections() == 2 })

	r.Close()
	require.Equal(t, 0, r.Connections())
	for _, c := range clients[:2] {
		_, _, err := c.ws.ReadMessage()
		require.Error(t, err, "clients are disconnected by Close")
		_ = c.ws.Close()
	}
	r.Close() // idempotent

	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	_, resp, err := d.DialContext(testCtx(t), url, nil)
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err, "no new connections after Close")
	waitGoroutines(t, base)
}

func TestStartStopsWhenContextEnds(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r, url, err := Start(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	c := dialRaw(t, url)
	c.stored("s", map[string]any{})
	cancel()
	eventually(t, "relay closed", func() bool { return r.Connections() == 0 })
	_, _, err = c.ws.ReadMessage()
	require.Error(t, err)
	_ = c.ws.Close()
	r.Close()
	waitGoroutines(t, base)

	_, err = r.Start(context.Background(), "127.0.0.1:0")
	require.Error(t, err, "a closed relay cannot be restarted")
}

func TestServeHTTPInOwnServer(t *testing.T) {
	r := New(Options{})
	srv := &http.Server{Handler: r}
	var lc net.ListenConfig
	ln, err := lc.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(r.Close)

	c := dial(t, "ws://"+ln.Addr().String())
	ev := signed(t, nostr.GeneratePrivateKey(), 1, nostr.Now(), nil, "via ServeHTTP")
	require.NoError(t, c.Publish(testCtx(t), ev))
	require.Len(t, r.Query(nostr.Filter{IDs: []string{ev.ID}}), 1)
}

func TestNIP11Info(t *testing.T) {
	_, url := startRelay(t, Options{Name: "test relay"})
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, httpURL, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, "application/nostr+json", resp.Header.Get("Content-Type"))
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	var info struct {
		Name          string `json:"name"`
		SupportedNIPs []int  `json:"supported_nips"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	require.Equal(t, "test relay", info.Name)
	require.Contains(t, info.SupportedNIPs, 1)

	plain, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, httpURL, nil)
	require.NoError(t, err)
	resp2, err := http.DefaultClient.Do(plain)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp2.Body)
	_ = resp2.Body.Close()
	require.Contains(t, string(body), "websocket")
}

func TestRejectHook(t *testing.T) {
	r, url := startRelay(t, Options{Reject: func(ev *nostr.Event) string {
		if ev.Kind == 1059 {
			return "no gift wraps here"
		}
		return ""
	}})
	c := dial(t, url)
	err := c.Publish(testCtx(t), signed(t, nostr.GeneratePrivateKey(), 1059, nostr.Now(), nil, "x"))
	require.ErrorContains(t, err, "blocked: no gift wraps here")
	require.Empty(t, r.Query(nostr.Filter{}))
}

func TestStoreEvictsOldest(t *testing.T) {
	r := New(Options{MaxEvents: 3})
	t.Cleanup(r.Close)
	sk := nostr.GeneratePrivateKey()
	var all []nostr.Event
	for i := range 5 {
		ev := signed(t, sk, 1, nostr.Timestamp(1000+i), nil, strconv.Itoa(i))
		ok, reason := r.Publish(ev)
		require.True(t, ok, reason)
		all = append(all, ev)
	}
	require.Equal(t, ids([]nostr.Event{all[4], all[3], all[2]}), ids(r.Query(nostr.Filter{})))
}

func TestCount(t *testing.T) {
	r, url := startRelay(t, Options{})
	sk := nostr.GeneratePrivateKey()
	for i := range 3 {
		r.Publish(signed(t, sk, 1, nostr.Now(), nostr.Tags{{"i", strconv.Itoa(i)}}, "x"))
	}
	r.Publish(signed(t, sk, 7, nostr.Now(), nil, "+"))
	c := dialRaw(t, url)
	c.send("COUNT", "n", map[string]any{"kinds": []int{1}, "limit": 1})
	rest := c.expect("COUNT")
	require.Equal(t, "n", str(t, rest[0]))
	require.JSONEq(t, `{"count":3}`, string(rest[1]))
}
