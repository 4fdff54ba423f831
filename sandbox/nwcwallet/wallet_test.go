package nwcwallet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/sandbox/relay"
)

const waitTimeout = 45 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func startRelay(t *testing.T) string {
	t.Helper()
	r := relay.New(relay.Options{})
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return url
}

type node struct {
	*lnnode.Node
	lnd *lightning.LND
}

func startNode(t *testing.T) node {
	t.Helper()
	n, err := lnnode.Start(testCtx(t), lnnode.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	l, err := lightning.New(n.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return node{Node: n, lnd: l}
}

func (n node) invoice(t *testing.T, msat int64) lightning.Invoice {
	t.Helper()
	inv, err := n.lnd.CreateInvoice(testCtx(t), lightning.CreateInvoiceRequest{AmountMsat: msat, Expiry: time.Hour})
	require.NoError(t, err)
	return inv
}

func startWallet(t *testing.T, opts Options) *Wallet {
	t.Helper()
	w, err := Start(testCtx(t), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func newClient(t *testing.T, w *Wallet, opts ...nwc.Option) *nwc.Client {
	t.Helper()
	conn, err := w.NewConnection()
	require.NoError(t, err)
	c, err := nwc.NewClient(conn, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// failingPayer stands in for the node where a payment must fail; only this
// package's unit tests use it (the end-to-end tests pay through lnnode).
type failingPayer struct{ preimage string }

func (f failingPayer) Pay(context.Context, string) (string, error) {
	if f.preimage != "" {
		return f.preimage, nil
	}
	return "", errors.New("no route to the payee")
}

var _ Payer = failingPayer{}
var _ Payer = (*lnnode.Node)(nil)

func TestConnectionURLsAreFreshAndAuthorised(t *testing.T) {
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}, LUD16: "shop@example.com"})
	a, err := w.ConnectionURL()
	require.NoError(t, err)
	b, err := w.ConnectionURL()
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "each connection gets its own secret")
	ca, err := nwc.ParseURL(a)
	require.NoError(t, err)
	assert.Equal(t, w.PubKey(), ca.WalletPubKey)
	assert.Equal(t, []string{url}, ca.Relays)
	assert.Equal(t, "shop@example.com", ca.LUD16)

	c, err := nwc.NewClient(ca)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	info, err := c.WalletInfo(testCtx(t))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{nwc.MethodLookupInvoice, nwc.MethodGetBalance, nwc.MethodGetInfo}, info.Methods,
		"without a payer or an invoice node only the read methods are offered")
	assert.Equal(t, []nwc.Encryption{nwc.EncryptionNIP44v2, nwc.EncryptionNIP04}, info.Encryptions)
}

func TestPaymentFailureRefunds(t *testing.T) {
	url := startRelay(t)
	n := startNode(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 10_000, Payer: failingPayer{}})
	c := newClient(t, w)
	inv := n.invoice(t, 4_000)
	_, err := c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrPaymentFailed)
	assert.False(t, nwc.Retryable(err))
	assert.Contains(t, err.Error(), "no route")
	assert.Equal(t, int64(10_000), w.Balance(), "the reserved amount is returned")
	assert.Empty(t, w.Payments())
}

func TestPayerWithBadProofKeepsDebitAndIsNotRetryable(t *testing.T) {
	url := startRelay(t)
	n := startNode(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 10_000, Payer: failingPayer{preimage: strings.Repeat("00", 32)}})
	c := newClient(t, w)
	_, err := c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: n.invoice(t, 4_000).PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrOther)
	assert.False(t, nwc.Retryable(err), "money may have left: never invite a blind retry")
	assert.Equal(t, int64(6_000), w.Balance())
}

func TestSameInvoicePaidConcurrentlyPaysOnce(t *testing.T) {
	url := startRelay(t)
	n := startNode(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 100_000, Payer: n.Node, Network: n.Network()})
	inv := n.invoice(t, 7_000)
	const clients = 5
	pre := make([]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		c := newClient(t, w)
		wg.Go(func() {
			var res nwc.PayInvoiceResult
			res, errs[i] = c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
			pre[i] = res.Preimage
		})
	}
	wg.Wait()
	for i := range clients {
		require.NoError(t, errs[i])
		assert.Equal(t, pre[0], pre[i])
	}
	assert.Equal(t, int64(93_000), w.Balance())
	assert.Len(t, w.Payments(), 1)
}

func TestAmountMustMatchInvoice(t *testing.T) {
	url := startRelay(t)
	n := startNode(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 100_000, Payer: n.Node})
	c := newClient(t, w)
	_, err := c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: n.invoice(t, 7_000).PaymentRequest, AmountMsat: 6_999})
	require.ErrorIs(t, err, nwc.ErrOther)
	_, err = c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: "lnbcrt1notaninvoice"})
	require.ErrorIs(t, err, nwc.ErrOther)
	assert.Equal(t, int64(100_000), w.Balance())
}

func TestRevokedClientIsUnauthorized(t *testing.T) {
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 1})
	conn, err := w.NewConnection()
	require.NoError(t, err)
	c, err := nwc.NewClient(conn)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	_, err = c.GetBalance(testCtx(t))
	require.NoError(t, err)
	w.Revoke(conn.ClientPubKey())
	_, err = c.GetBalance(testCtx(t))
	require.ErrorIs(t, err, nwc.ErrUnauthorized)
	assert.False(t, nwc.Retryable(err))
}

// rawRequest publishes a hand-made request and returns the wallet's
// decrypted answer, decrypting with answerEnc.
func rawRequest(t *testing.T, relayURL, walletPub string, tags nostr.Tags, content func(sk string) string, answerEnc nwc.Encryption) nwc.Response {
	t.Helper()
	ctx := testCtx(t)
	sk := nostr.GeneratePrivateKey()
	rc, err := nwc.DialRelay(ctx, relayURL)
	require.NoError(t, err)
	defer func() { _ = rc.Close() }()
	ev := nostr.Event{Kind: nwc.KindRequest, CreatedAt: nostr.Now(), Content: content(sk),
		Tags: append(nostr.Tags{{"p", walletPub}}, tags...)}
	require.NoError(t, ev.Sign(sk))
	sub, err := rc.Subscribe(ctx, nostr.Filters{{Kinds: []int{nwc.KindResponse}, Authors: []string{walletPub}, Tags: nostr.TagMap{"e": {ev.ID}}}})
	require.NoError(t, err)
	<-sub.EOSE()
	require.NoError(t, rc.Publish(ctx, ev))
	select {
	case ans := <-sub.Events():
		plain, err := nwc.DecryptContent(answerEnc, sk, walletPub, ans.Content)
		require.NoError(t, err)
		var resp nwc.Response
		require.NoError(t, json.Unmarshal([]byte(plain), &resp))
		return resp
	case <-ctx.Done():
		t.Fatal("no answer")
		return nwc.Response{}
	}
}

func TestNIP04OnlyWalletRefusesNIP44Requests(t *testing.T) {
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}, Encryptions: []nwc.Encryption{nwc.EncryptionNIP04}})
	resp := rawRequest(t, url, w.PubKey(), nostr.Tags{{"encryption", "nip44_v2"}}, func(sk string) string {
		ct, err := nwc.EncryptContent(nwc.EncryptionNIP44v2, sk, w.PubKey(), `{"method":"get_balance","params":{}}`)
		require.NoError(t, err)
		return ct
	}, nwc.EncryptionNIP04)
	require.NotNil(t, resp.Error)
	assert.Equal(t, nwc.CodeUnsupportedEncryption, resp.Error.Code)

	c := newClient(t, w)
	info, err := c.WalletInfo(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, nwc.EncryptionNIP04, info.Preferred())
	_, err = c.GetBalance(testCtx(t))
	require.NoError(t, err, "a client following the info event speaks NIP-04 to it")
}

func TestHostileRequestsDoNotStopTheWallet(t *testing.T) {
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 5})
	garbage := []struct {
		tags    nostr.Tags
		content func(sk string) string
		enc     nwc.Encryption
	}{
		{nil, func(sk string) string {
			ct, _ := nwc.EncryptContent(nwc.EncryptionNIP04, sk, w.PubKey(), "not json")
			return ct
		}, nwc.EncryptionNIP04},
		{nostr.Tags{{"encryption", "nip44_v2"}}, func(sk string) string {
			ct, _ := nwc.EncryptContent(nwc.EncryptionNIP44v2, sk, w.PubKey(), `{"params":{}}`)
			return ct
		}, nwc.EncryptionNIP44v2},
		{nil, func(string) string { return "AAAAAAAAAAAAAAAAAAAA?iv=AAAA" }, nwc.EncryptionNIP04},
		{nostr.Tags{{"encryption", "nip44_v2"}}, func(string) string { return strings.Repeat("A", 200) }, nwc.EncryptionNIP44v2},
	}
	for _, g := range garbage {
		resp := rawRequest(t, url, w.PubKey(), g.tags, g.content, g.enc)
		require.NotNil(t, resp.Error)
		assert.Equal(t, nwc.CodeOther, resp.Error.Code)
	}
	// Unauthorised strangers are told so, in their own scheme.
	resp := rawRequest(t, url, w.PubKey(), nil, func(sk string) string {
		ct, _ := nwc.EncryptContent(nwc.EncryptionNIP04, sk, w.PubKey(), `{"method":"pay_invoice","params":{"invoice":"x"}}`)
		return ct
	}, nwc.EncryptionNIP04)
	require.NotNil(t, resp.Error)
	assert.Equal(t, nwc.CodeUnauthorized, resp.Error.Code)

	bal, err := newClient(t, w).GetBalance(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, int64(5), bal.BalanceMsat)
}

func TestExpiredRequestIsIgnored(t *testing.T) {
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}})
	// The relay refuses expired events, so hand one to the wallet directly,
	// as if the relay had delivered it late.
	clientSK := nostr.GeneratePrivateKey()
	content, err := nwc.EncryptContent(nwc.EncryptionNIP04, clientSK, w.PubKey(), `{"method":"get_balance","params":{}}`)
	require.NoError(t, err)
	ev := nostr.Event{Kind: nwc.KindRequest, CreatedAt: nostr.Now() - 100, Content: content,
		Tags: nostr.Tags{{"p", w.PubKey()}, {"expiration", strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)}}}
	require.NoError(t, ev.Sign(clientSK))
	w.handle(&ev)
	reqs := w.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, OutcomeExpired, reqs[0].Outcome)
	assert.Empty(t, reqs[0].Method, "an expired request is not even decrypted")
}

func TestStartFailsWhenRelayUnreachable(t *testing.T) {
	r := relay.New(relay.Options{})
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	r.Close()
	_, err = Start(testCtx(t), Options{Relays: []string{url}, StartTimeout: 300 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "relays not ready")
}

func TestWalletReconnectsAfterRelayRestart(t *testing.T) {
	r := relay.New(relay.Options{})
	url, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 42})
	r.Close()

	// Same address, fresh (empty) relay: the wallet must come back, announce
	// itself again and answer.
	r2 := relay.New(relay.Options{})
	_, err = r2.Start(context.Background(), strings.TrimPrefix(url, "ws://"))
	require.NoError(t, err)
	t.Cleanup(r2.Close)
	ctx := testCtx(t)
	for {
		if len(r2.Query(nostr.Filter{Kinds: []int{nwc.KindInfo}, Authors: []string{w.PubKey()}})) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the wallet never re-announced itself")
		case <-time.After(10 * time.Millisecond):
		}
	}
	bal, err := newClient(t, w).GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(42), bal.BalanceMsat)
}

func TestOptionsValidation(t *testing.T) {
	_, err := Start(testCtx(t), Options{})
	require.Error(t, err)
	_, err = Start(testCtx(t), Options{Relays: []string{"ws://127.0.0.1:1"}, SecretKey: "nothex"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "nothex", "key material is never echoed")
	_, err = Start(testCtx(t), Options{Relays: []string{"ws://127.0.0.1:1"}, Encryptions: []nwc.Encryption{"rot13"}})
	require.Error(t, err)
	_, err = Start(testCtx(t), Options{Relays: []string{"https://127.0.0.1:1"}})
	require.Error(t, err)
}

func TestHTTPPayerAgainstNodePayEndpoint(t *testing.T) {
	n := startNode(t)
	srv := httptest.NewServer(n.PayHandler())
	t.Cleanup(srv.Close)
	p := HTTPPayer{URL: srv.URL + "/pay"}
	inv := n.invoice(t, 2_500)
	pre, err := p.Pay(testCtx(t), inv.PaymentRequest)
	require.NoError(t, err)
	raw, err := hex.DecodeString(pre)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	assert.Equal(t, inv.PaymentHash, hex.EncodeToString(sum[:]))

	_, err = p.Pay(testCtx(t), inv.PaymentRequest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "409", "paying twice is refused by the node")

	// Through a wallet, end to end.
	url := startRelay(t)
	w := startWallet(t, Options{Relays: []string{url}, BalanceMsat: 10_000, Payer: p, AuthorizedClients: nil})
	res, err := newClient(t, w).PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: n.invoice(t, 1_000).PaymentRequest})
	require.NoError(t, err)
	assert.Len(t, res.Preimage, 64)
	assert.Equal(t, int64(9_000), w.Balance())
}

func TestAuthorizedClientsSurviveARestart(t *testing.T) {
	url := startRelay(t)
	sk := nostr.GeneratePrivateKey()
	w1, err := Start(testCtx(t), Options{Relays: []string{url}, SecretKey: sk, BalanceMsat: 7})
	require.NoError(t, err)
	connURL, err := w1.ConnectionURL()
	require.NoError(t, err)
	clients := w1.AuthorizedClients()
	require.NoError(t, w1.Close())

	w2 := startWallet(t, Options{Relays: []string{url}, SecretKey: sk, BalanceMsat: 7, AuthorizedClients: clients})
	assert.Equal(t, clients, w2.AuthorizedClients())
	conn, err := nwc.ParseURL(connURL)
	require.NoError(t, err)
	c, err := nwc.NewClient(conn)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	bal, err := c.GetBalance(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, int64(7), bal.BalanceMsat)
}
