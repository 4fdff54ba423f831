package dm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/sandbox/relay"
	"github.com/gorilla/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/keyer"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/nbd-wtf/go-nostr/nip59"
	"github.com/stretchr/testify/require"
)

// waitTimeout is the outer bound on anything a test waits for. Tests wait
// for conditions; none asserts how long something took.
const waitTimeout = 20 * time.Second

// message exercises escaping and multi-byte text end to end.
const message = "Invoice INV-42 is due: 12.50 EUR.\nPay: lightning:lnbc125u1p... \"quoted\" \\ ünïcödé ⚡"

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func startRelay(t *testing.T, opts relay.Options) (*relay.Relay, string) {
	t.Helper()
	r := relay.New(opts)
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r, url
}

// user is an independent Nostr user with go-nostr's client and key handling.
type user struct {
	sk, pk string
	kr     keyer.KeySigner
}

func newUser(t *testing.T) user {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	kr, err := keyer.NewPlainKeySigner(sk)
	require.NoError(t, err)
	pk, err := kr.GetPublicKey(context.Background())
	require.NoError(t, err)
	return user{sk: sk, pk: pk, kr: kr}
}

// connect opens go-nostr's client as this user would.
func (u user) connect(t *testing.T, url string) *relay.Client {
	t.Helper()
	c, err := relay.Dial(testCtx(t), url, nostr.WithNoticeHandler(func(string) {}))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// inbox fetches the gift wraps addressed to u and unwraps them.
func (u user) inbox(t *testing.T, url string) (wraps []nostr.Event, rumors []nostr.Event) {
	t.Helper()
	c := u.connect(t, url)
	// No "since": NIP-59 backdates wraps by up to days on purpose.
	wraps, err := c.Fetch(testCtx(t), nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {u.pk}}})
	require.NoError(t, err)
	for _, w := range wraps {
		ok, err := w.CheckSignature()
		require.NoError(t, err)
		require.True(t, ok)
		rumor, err := nip59.GiftUnwrap(w, func(otherPub, ciphertext string) (string, error) {
			return u.kr.Decrypt(context.Background(), ciphertext, otherPub)
		})
		require.NoError(t, err)
		rumors = append(rumors, rumor)
	}
	return wraps, rumors
}

// publishInbox publishes u's kind 10050 DM relay list on url.
func (u user) publishInbox(t *testing.T, url string, createdAt nostr.Timestamp, relays ...string) {
	t.Helper()
	ev := nostr.Event{Kind: nostr.KindDMRelayList, CreatedAt: createdAt, Tags: nostr.Tags{}}
	for _, r := range relays {
		ev.Tags = append(ev.Tags, nostr.Tag{"relay", r})
	}
	require.NoError(t, ev.Sign(u.sk))
	require.NoError(t, u.connect(t, url).Publish(testCtx(t), ev))
}

func newRobot(t *testing.T, sk string, relays []string, opts Options) *Robot {
	t.Helper()
	r, err := NewRobot(sk, relays, opts)
	require.NoError(t, err)
	return r
}

func TestSendNIP17RecipientReadsExactText(t *testing.T) {
	_, url := startRelay(t, relay.Options{})
	robotSK := nostr.GeneratePrivateKey()
	robot := newRobot(t, robotSK, []string{url}, Options{})
	alice := newUser(t)

	sent, err := robot.Send(testCtx(t), alice.pk, message)
	require.NoError(t, err)
	require.True(t, sent.Delivered())
	require.Equal(t, NIP17, sent.Protocol)
	require.False(t, sent.ToInbox)
	require.Equal(t, []RelayOutcome{{URL: url, Accepted: true}}, sent.Recipient)
	require.Equal(t, []RelayOutcome{{URL: url, Accepted: true}}, sent.Copy)

	wraps, rumors := alice.inbox(t, url)
	require.Len(t, wraps, 1)
	require.Equal(t, sent.EventID, wraps[0].ID)
	require.NotEqual(t, robot.PublicKey(), wraps[0].PubKey, "the wrap is signed by a throwaway key")
	rumor := rumors[0]
	require.Equal(t, message, rumor.Content)
	require.Equal(t, nostr.KindDirectMessage, rumor.Kind)
	require.Equal(t, robot.PublicKey(), rumor.PubKey, "the seal is signed by the robot")
	require.Empty(t, rumor.Sig, "kind 14 rumors must never be signed")
	require.Equal(t, alice.pk, rumor.Tags.GetFirst([]string{"p", ""}).Value())

	// The robot keeps its own copy, readable with its own key.
	robotUser := user{sk: robotSK, pk: robot.PublicKey()}
	robotUser.kr, err = keyer.NewPlainKeySigner(robotSK)
	require.NoError(t, err)
	copies, copyRumors := robotUser.inbox(t, url)
	require.Len(t, copies, 1)
	require.Equal(t, sent.CopyEventID, copies[0].ID)
	require.Equal(t, message, copyRumors[0].Content)
	require.Equal(t, rumor.ID, copyRumors[0].ID, "both wraps carry the same rumor")
}

func TestSendAcceptsNpub(t *testing.T) {
	_, url := startRelay(t, relay.Options{})
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{})
	alice := newUser(t)
	npub, err := nip19.EncodePublicKey(alice.pk)
	require.NoError(t, err)
	_, err = robot.Send(testCtx(t), npub, "hi")
	require.NoError(t, err)
	_, rumors := alice.inbox(t, url)
	require.Len(t, rumors, 1)
	require.Equal(t, "hi", rumors[0].Content)
}

func TestSendRoutesToInboxRelays(t *testing.T) {
	fallback, fallbackURL := startRelay(t, relay.Options{})
	inbox, inboxURL := startRelay(t, relay.Options{})
	alice := newUser(t)
	alice.publishInbox(t, fallbackURL, nostr.Now(), inboxURL)

	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{fallbackURL}, Options{})
	sent, err := robot.Send(testCtx(t), alice.pk, message)
	require.NoError(t, err)
	require.True(t, sent.ToInbox)
	require.Equal(t, []RelayOutcome{{URL: inboxURL, Accepted: true}}, sent.Recipient)
	require.Equal(t, []RelayOutcome{{URL: fallbackURL, Accepted: true}}, sent.Copy, "the robot's copy stays on its own relays")

	toAlice := nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {alice.pk}}}
	landed := inbox.Query(toAlice)
	require.Len(t, landed, 1)
	require.Equal(t, sent.EventID, landed[0].ID)
	require.Empty(t, fallback.Query(toAlice), "the wrap must not go to the fallback relay")

	_, rumors := alice.inbox(t, inboxURL)
	require.Len(t, rumors, 1)
	require.Equal(t, message, rumors[0].Content)
}

func TestSendUsesNewestInboxList(t *testing.T) {
	_, fallbackA := startRelay(t, relay.Options{})
	_, fallbackB := startRelay(t, relay.Options{})
	oldInbox, oldURL := startRelay(t, relay.Options{})
	newInbox, newURL := startRelay(t, relay.Options{})
	alice := newUser(t)
	now := nostr.Now()
	alice.publishInbox(t, fallbackA, now-100, oldURL)
	alice.publishInbox(t, fallbackB, now, newURL, "https://not-a-relay.example", newURL)

	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{fallbackA, fallbackB}, Options{})
	sent, err := robot.Send(testCtx(t), alice.pk, "newest list wins")
	require.NoError(t, err)
	require.Equal(t, []RelayOutcome{{URL: newURL, Accepted: true}}, sent.Recipient)
	toAlice := nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {alice.pk}}}
	require.Len(t, newInbox.Query(toAlice), 1)
	require.Empty(t, oldInbox.Query(toAlice))
}

func TestSendForgedInboxListIsIgnored(t *testing.T) {
	// A relay (or anyone) cannot redirect Alice's DMs by serving a kind
	// 10050 that Alice did not sign.
	fallback, fallbackURL := startRelay(t, relay.Options{})
	_, evilURL := startRelay(t, relay.Options{})
	alice, mallory := newUser(t), newUser(t)
	forged := nostr.Event{Kind: nostr.KindDMRelayList, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"relay", evilURL}}}
	require.NoError(t, forged.Sign(mallory.sk))
	forged.PubKey = alice.pk // breaks the signature; the relay refuses it
	ok, _ := fallback.Publish(forged)
	require.False(t, ok)

	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{fallbackURL}, Options{})
	sent, err := robot.Send(testCtx(t), alice.pk, "x")
	require.NoError(t, err)
	require.False(t, sent.ToInbox)
	require.Equal(t, fallbackURL, sent.Recipient[0].URL)
}

func TestSendNIP04Option(t *testing.T) {
	_, url := startRelay(t, relay.Options{})
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{Protocol: NIP04})
	alice := newUser(t)

	sent, err := robot.Send(testCtx(t), alice.pk, message)
	require.NoError(t, err)
	require.Equal(t, NIP04, sent.Protocol)
	require.Empty(t, sent.CopyEventID)
	require.Empty(t, sent.Copy)

	evs, err := alice.connect(t, url).Fetch(testCtx(t), nostr.Filter{
		Kinds:   []int{nostr.KindEncryptedDirectMessage},
		Authors: []string{robot.PublicKey()},
		Tags:    nostr.TagMap{"p": {alice.pk}},
	})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, sent.EventID, evs[0].ID)
	require.NotContains(t, evs[0].Content, "Invoice")
	shared, err := nip04.ComputeSharedSecret(robot.PublicKey(), alice.sk)
	require.NoError(t, err)
	plain, err := nip04.Decrypt(evs[0].Content, shared)
	require.NoError(t, err)
	require.Equal(t, message, plain)
}

// closedURL returns a ws:// URL on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "ws://" + addr
}

// hangingURL returns a ws:// URL whose server accepts TCP connections and
// then never answers the websocket handshake.
func hangingURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "ws://" + ln.Addr().String()
}

// silentURL returns a websocket server that accepts and reads everything but
// never answers: no OK, no EOSE.
func silentURL(t *testing.T) string {
	url, _ := silentServer(t)
	return url
}

// silentServer is silentURL that also signals each message it swallows.
func silentServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	got := make(chan struct{}, 64)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.Close() }()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), got
}

// sendBounded runs Send and fails the test if it does not return while the
// outer waitTimeout lasts; Send's own timeouts are far shorter.
func sendBounded(t *testing.T, robot *Robot, ctx context.Context, to, msg string) (Sent, error) {
	t.Helper()
	type result struct {
		sent Sent
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := robot.Send(ctx, to, msg)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.sent, r.err
	case <-time.After(waitTimeout):
		t.Fatal("Send hung")
		return Sent{}, nil
	}
}

func TestSendRelayDownIsAClearBoundedError(t *testing.T) {
	// Short enough to keep the test quick, long enough that a loaded machine
	// still connects to the silent relay within ConnectTimeout (else the
	// error names the connect step, not the missing OK).
	short := Options{ConnectTimeout: 2 * time.Second, PublishTimeout: time.Second, LookupTimeout: time.Second}
	alice := newUser(t)
	for _, tc := range []struct {
		name, url, reason string
	}{
		{"refused", closedURL(t), "connect:"},
		{"handshake never answered", hangingURL(t), "connect:"},
		{"OK never sent", silentURL(t), "waiting for OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			robot := newRobot(t, nostr.GeneratePrivateKey(), []string{tc.url}, short)
			// No deadline on ctx: the robot's own timeouts must bound Send.
			sent, err := sendBounded(t, robot, context.Background(), alice.pk, message)
			require.ErrorIs(t, err, ErrNotDelivered)
			require.NotErrorIs(t, err, context.DeadlineExceeded, "the caller's context did not end")
			require.Contains(t, err.Error(), tc.url)
			require.Contains(t, err.Error(), tc.reason)
			require.NotContains(t, err.Error(), message, "the message body is personal data")
			require.False(t, sent.Delivered())
			require.Len(t, sent.Recipient, 1)
			require.Contains(t, sent.Recipient[0].Reason, tc.reason)
		})
	}
}

func TestSendPartialFailureStillDelivers(t *testing.T) {
	_, up := startRelay(t, relay.Options{})
	down := closedURL(t)
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{down, up}, Options{ConnectTimeout: time.Second, LookupTimeout: time.Second})
	sent, err := robot.Send(testCtx(t), newUser(t).pk, "one of two")
	require.NoError(t, err)
	require.Len(t, sent.Recipient, 2)
	byURL := map[string]RelayOutcome{}
	for _, o := range sent.Recipient {
		byURL[o.URL] = o
	}
	require.True(t, byURL[up].Accepted)
	require.False(t, byURL[down].Accepted)
	require.Contains(t, byURL[down].Reason, "connect:")
}

func TestSendRejectedByRelay(t *testing.T) {
	_, url := startRelay(t, relay.Options{Reject: func(ev *nostr.Event) string {
		return "blocked: gift wraps need payment here"
	}})
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{})
	sent, err := robot.Send(testCtx(t), newUser(t).pk, message)
	require.ErrorIs(t, err, ErrNotDelivered)
	require.Contains(t, err.Error(), "blocked: gift wraps need payment here")
	require.Equal(t, []RelayOutcome{{URL: url, Accepted: false, Reason: "blocked: gift wraps need payment here"}}, sent.Recipient)
}

func TestSendHonoursCallerContext(t *testing.T) {
	url, got := silentServer(t)
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{PublishTimeout: time.Hour, LookupTimeout: time.Hour, ConnectTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := robot.Send(ctx, newUser(t).pk, message)
		done <- err
	}()
	// Cancel only once Send is blocked on the relay, with hour-long timeouts.
	select {
	case <-got:
	case <-time.After(waitTimeout):
		t.Fatal("Send never reached the relay")
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, ErrNotDelivered)
	case <-time.After(waitTimeout):
		t.Fatal("Send ignored its context")
	}
}

func TestSendValidatesInput(t *testing.T) {
	_, url := startRelay(t, relay.Options{})
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{})
	ctx := testCtx(t)
	for _, bad := range []string{
		"",
		"abc",
		strings.Repeat("z", 64),
		strings.Repeat("f", 64), // hex, but not an x coordinate on the curve
		"npub1notreallyanpub",
	} {
		_, err := robot.Send(ctx, bad, "x")
		require.ErrorIs(t, err, ErrInvalidRecipient, "recipient %q", bad)
	}
	_, err := robot.Send(ctx, newUser(t).pk, "")
	require.ErrorIs(t, err, ErrEmptyMessage)
}

func TestNewRobotValidates(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	for _, tc := range []struct {
		name   string
		sk     string
		relays []string
		opts   Options
	}{
		{"no relays", sk, nil, Options{}},
		{"http relay", sk, []string{"http://127.0.0.1:1"}, Options{}},
		{"not a url", sk, []string{"::"}, Options{}},
		{"unknown protocol", sk, []string{"ws://127.0.0.1:1"}, Options{Protocol: "nip99"}},
		{"short key", sk[:63], []string{"ws://127.0.0.1:1"}, Options{}},
		{"long key", sk + "0", []string{"ws://127.0.0.1:1"}, Options{}},
		{"non-hex key", "g" + sk[1:], []string{"ws://127.0.0.1:1"}, Options{}},
		{"zero key", strings.Repeat("0", 64), []string{"ws://127.0.0.1:1"}, Options{}},
		{"key above the curve order", strings.Repeat("f", 64), []string{"ws://127.0.0.1:1"}, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRobot(tc.sk, tc.relays, tc.opts)
			require.Error(t, err)
		})
	}
	r, err := NewRobot(strings.ToUpper(sk), []string{"wss://relay.example.com/", "wss://relay.example.com"}, Options{})
	require.NoError(t, err, "upper-case hex is accepted")
	require.Equal(t, []string{"wss://relay.example.com"}, r.relays, "duplicates collapse")
	pk, _ := nostr.GetPublicKey(sk)
	require.Equal(t, pk, r.PublicKey())
}

// TestSecretKeyNeverInErrors drives every failure path and checks that no
// error text, outcome or printed form of the robot contains the secret key.
func TestSecretKeyNeverInErrors(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	leaks := func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, sk) || strings.Contains(s, sk[:32]) || strings.Contains(s, sk[32:])
	}
	var texts []string
	collect := func(err error) {
		for ; err != nil; err = errors.Unwrap(err) {
			texts = append(texts, err.Error())
		}
	}

	for _, bad := range []string{sk[:63], sk + "0", "g" + sk[1:], sk + " trailing", "nsec" + sk} {
		_, err := NewRobot(bad, []string{"ws://127.0.0.1:1"}, Options{})
		require.Error(t, err)
		collect(err)
	}
	_, err := NewRobot(sk, []string{"http://" + sk}, Options{})
	require.Error(t, err)
	// The relay URL is the caller's own input, echoed for diagnosis; it is
	// not the robot's key even when it happens to contain those characters.

	_, url := startRelay(t, relay.Options{Reject: func(*nostr.Event) string { return "blocked: no" }})
	// Short enough to keep the test quick, long enough that a loaded machine
	// still connects to the silent relay within ConnectTimeout (else the
	// error names the connect step, not the missing OK).
	short := Options{ConnectTimeout: 2 * time.Second, PublishTimeout: time.Second, LookupTimeout: time.Second}
	for _, opts := range []Options{short, {Protocol: NIP04, ConnectTimeout: short.ConnectTimeout, PublishTimeout: short.PublishTimeout, LookupTimeout: short.LookupTimeout}} {
		for _, relays := range [][]string{{url}, {closedURL(t)}, {silentURL(t)}} {
			robot := newRobot(t, sk, relays, opts)
			texts = append(texts, fmt.Sprintf("%v %+v %#v %s %+v", robot, robot, robot, robot, *robot))
			for _, to := range []string{newUser(t).pk, "bad", strings.Repeat("f", 64)} {
				sent, err := sendBounded(t, robot, context.Background(), to, message)
				require.Error(t, err)
				collect(err)
				for _, o := range append(sent.Recipient, sent.Copy...) {
					texts = append(texts, o.Reason)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := robot.Send(ctx, newUser(t).pk, message)
			require.Error(t, err)
			collect(err)
		}
	}

	require.NotEmpty(t, texts)
	for _, s := range texts {
		require.False(t, leaks(s), "secret key leaked in %q", s)
	}
}

func TestRedactScrubsKeyFromForeignErrors(t *testing.T) {
	key, err := parseSecretKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	inner := fmt.Errorf("invalid private key: x coordinate %s is not on the secp256k1 curve", key.reveal())
	err = key.redact(fmt.Errorf("dm: build: %w", inner))
	require.NotContains(t, err.Error(), key.reveal())
	require.Contains(t, err.Error(), "[redacted]")
	require.Nil(t, errors.Unwrap(err), "unwrapping must not reveal the original")
	require.NotContains(t, key.redactString(strings.ToUpper(key.reveal())), strings.ToUpper(key.reveal()))

	plain := errors.New("nothing secret")
	require.Same(t, plain, key.redact(plain))
}

func TestConcurrentSends(t *testing.T) {
	_, url := startRelay(t, relay.Options{})
	robot := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{})
	alice := newUser(t)
	ctx := testCtx(t)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := robot.Send(ctx, alice.pk, fmt.Sprintf("message %d", i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	_, rumors := alice.inbox(t, url)
	var got []string
	for _, r := range rumors {
		got = append(got, r.Content)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("message %d", i))
	}
	require.ElementsMatch(t, want, got)
}

// TestSendLeavesNoGoroutines checks that Send, succeeding or failing, owns
// nothing once it returns.
func TestSendLeavesNoGoroutines(t *testing.T) {
	r, url := startRelay(t, relay.Options{})
	silent := silentURL(t)
	down := closedURL(t)
	alice := newUser(t)
	base := runtime.NumGoroutine()

	ok := newRobot(t, nostr.GeneratePrivateKey(), []string{url}, Options{})
	_, err := ok.Send(testCtx(t), alice.pk, "x")
	require.NoError(t, err)
	failing := newRobot(t, nostr.GeneratePrivateKey(), []string{silent, down}, Options{ConnectTimeout: 200 * time.Millisecond, PublishTimeout: 200 * time.Millisecond, LookupTimeout: 200 * time.Millisecond})
	_, err = failing.Send(context.Background(), alice.pk, "x")
	require.Error(t, err)

	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base || r.Connections() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines %d > %d, relay connections %d\n%s", runtime.NumGoroutine(), base, r.Connections(), buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
