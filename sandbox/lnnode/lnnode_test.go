package lnnode_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// guard bounds every wait so that a bug hangs one test, not the run. It is
// not a performance assertion: nothing here checks how fast anything is.
const guard = 30 * time.Second

// clock is a settable clock for expiring invoices without sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func startNode(t *testing.T, opts lnnode.Options) *lnnode.Node {
	t.Helper()
	n, err := lnnode.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func newClient(t *testing.T, cfg lightning.Config) *lightning.LND {
	t.Helper()
	c, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// subscription runs SubscribeSettled in the background.
type subscription struct {
	ch     chan lightning.Invoice
	done   chan error
	cancel context.CancelFunc
}

func subscribe(t *testing.T, c *lightning.LND, after uint64) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &subscription{ch: make(chan lightning.Invoice, 64), done: make(chan error, 1), cancel: cancel}
	go func() {
		s.done <- c.SubscribeSettled(ctx, after, func(inv lightning.Invoice) error {
			s.ch <- inv
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func (s *subscription) next(t *testing.T) lightning.Invoice {
	t.Helper()
	select {
	case inv := <-s.ch:
		return inv
	case err := <-s.done:
		t.Fatalf("subscription ended: %v", err)
	case <-time.After(guard):
		t.Fatal("no settlement delivered (hang guard)")
	}
	return lightning.Invoice{}
}

func create(t *testing.T, c *lightning.LND, msat int64) lightning.Invoice {
	t.Helper()
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "test", Expiry: time.Hour})
	require.NoError(t, err)
	return inv
}

func pay(t *testing.T, n *lnnode.Node, inv lightning.Invoice) string {
	t.Helper()
	pre, err := n.Pay(t.Context(), inv.PaymentRequest)
	require.NoError(t, err)
	return pre
}

func TestCreateLookupPaySubscribe(t *testing.T) {
	clk := newClock()
	node := startNode(t, lnnode.Options{Now: clk.Now})
	c := newClient(t, node.ClientConfig())
	ctx := t.Context()

	inv, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1_234_567, Memo: "invoice 42", Expiry: 15 * time.Minute})
	require.NoError(t, err)
	assert.Len(t, inv.PaymentHash, 64)
	assert.Equal(t, int64(1_234_567), inv.AmountMsat)
	assert.Equal(t, "invoice 42", inv.Memo)
	assert.Equal(t, clk.Now(), inv.CreatedAt)
	assert.Equal(t, clk.Now().Add(15*time.Minute), inv.ExpiresAt)
	assert.Equal(t, time.UTC, inv.CreatedAt.Location())
	assert.False(t, inv.Settled)
	assert.Equal(t, uint64(1), inv.AddIndex)
	assert.Zero(t, inv.SettleIndex)

	// The BOLT11 string is real: it decodes, is signed by the node and
	// commits to the same hash and amount.
	dec, err := lightning.ValidateBOLT11(inv.PaymentRequest, lightning.Expectation{
		Network: &chaincfg.RegressionNetParams, AmountMsat: 1_234_567, Now: clk.Now(), Payee: node.PubKey(),
	})
	require.NoError(t, err)
	assert.Equal(t, inv.PaymentHash, dec.PaymentHash)
	assert.Equal(t, "invoice 42", dec.Description)
	assert.True(t, strings.HasPrefix(inv.PaymentRequest, "lnbcrt"))

	got, err := c.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, inv, got)

	sub := subscribe(t, c, 0)
	clk.Advance(time.Minute)
	preimage := pay(t, node, inv)

	raw, err := hex.DecodeString(preimage)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	assert.Equal(t, inv.PaymentHash, hex.EncodeToString(sum[:]), "payment hash = sha256(preimage)")

	settled := sub.next(t)
	assert.Equal(t, inv.PaymentHash, settled.PaymentHash)
	assert.True(t, settled.Settled)
	assert.Equal(t, int64(1_234_567), settled.AmtPaidMsat)
	assert.Equal(t, uint64(1), settled.SettleIndex)
	assert.Equal(t, clk.Now(), settled.SettledAt)

	after, err := c.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, settled, after)
}

func TestPreimagesAreRandom(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	seen := map[string]bool{}
	for range 5 {
		inv := create(t, c, 1000)
		assert.False(t, seen[inv.PaymentHash], "payment hash repeated")
		seen[inv.PaymentHash] = true
		pre := pay(t, node, inv)
		assert.False(t, seen[pre], "preimage repeated")
		seen[pre] = true
	}
}

func TestResumeFromStoredSettleIndex(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	a, b, d := create(t, c, 1000), create(t, c, 2000), create(t, c, 3000)
	pay(t, node, a) // settle index 1
	pay(t, node, b) // settle index 2

	// The engine persisted settle index 1: it must see b, then d, never a.
	sub := subscribe(t, c, 1)
	got := sub.next(t)
	assert.Equal(t, b.PaymentHash, got.PaymentHash)
	assert.Equal(t, uint64(2), got.SettleIndex)
	assert.Equal(t, int64(2000), got.AmtPaidMsat)

	pay(t, node, d)
	got = sub.next(t)
	assert.Equal(t, d.PaymentHash, got.PaymentHash)
	assert.Equal(t, uint64(3), got.SettleIndex)

	// Resuming at the latest index replays nothing; the next one arrives.
	tail := subscribe(t, c, 3)
	e := create(t, c, 4000)
	pay(t, node, e)
	got = tail.next(t)
	assert.Equal(t, e.PaymentHash, got.PaymentHash)
	assert.Equal(t, uint64(4), got.SettleIndex)
}

func TestSubscribeFromZeroReplaysEverySettlement(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	open := create(t, c, 500)
	a, b := create(t, c, 1000), create(t, c, 2000)
	pay(t, node, b) // settle index 1, although added later
	pay(t, node, a) // settle index 2

	sub := subscribe(t, c, 0)
	first, second := sub.next(t), sub.next(t)
	assert.Equal(t, []string{b.PaymentHash, a.PaymentHash}, []string{first.PaymentHash, second.PaymentHash})
	assert.Equal(t, []uint64{1, 2}, []uint64{first.SettleIndex, second.SettleIndex})

	pay(t, node, open)
	third := sub.next(t)
	assert.Equal(t, open.PaymentHash, third.PaymentHash)
	assert.Equal(t, uint64(3), third.SettleIndex)
}

func TestPayTwiceIsRefused(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	inv := create(t, c, 5000)

	// Concurrent payers: exactly one settles.
	const payers = 8
	errs := make(chan error, payers)
	var wg sync.WaitGroup
	for range payers {
		wg.Go(func() {
			_, err := node.Pay(t.Context(), inv.PaymentRequest)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
			continue
		}
		assert.ErrorIs(t, err, lnnode.ErrAlreadyPaid)
	}
	assert.Equal(t, 1, ok)

	_, err := node.Pay(t.Context(), inv.PaymentRequest)
	assert.ErrorIs(t, err, lnnode.ErrAlreadyPaid)

	got, err := c.LookupInvoice(t.Context(), inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), got.SettleIndex)
	assert.Equal(t, int64(5000), got.AmtPaidMsat)
}

func TestPayExpiredIsRefused(t *testing.T) {
	clk := newClock()
	node := startNode(t, lnnode.Options{Now: clk.Now})
	c := newClient(t, node.ClientConfig())
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 1000, Expiry: time.Minute})
	require.NoError(t, err)

	clk.Advance(time.Minute) // expiry is exclusive: at created+expiry it is over
	_, err = node.Pay(t.Context(), inv.PaymentRequest)
	require.ErrorIs(t, err, lnnode.ErrInvoiceExpired)

	got, err := c.LookupInvoice(t.Context(), inv.PaymentHash)
	require.NoError(t, err)
	assert.False(t, got.Settled)
}

func TestPayRefusesWhatItDidNotIssue(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	other := startNode(t, lnnode.Options{})
	foreign := create(t, newClient(t, other.ClientConfig()), 1000)

	_, err := node.Pay(t.Context(), foreign.PaymentRequest)
	assert.ErrorIs(t, err, lnnode.ErrUnknownInvoice)

	_, err = node.Pay(t.Context(), "lnbcrt1garbage")
	assert.ErrorIs(t, err, lnnode.ErrInvalidInvoice)

	simnet := startNode(t, lnnode.Options{Network: &chaincfg.SimNetParams})
	wrongNet := create(t, newClient(t, simnet.ClientConfig()), 1000)
	assert.True(t, strings.HasPrefix(wrongNet.PaymentRequest, "lnsb"))
	_, err = node.Pay(t.Context(), wrongNet.PaymentRequest)
	assert.ErrorIs(t, err, lnnode.ErrInvalidInvoice)

	// An amount-less invoice (lnd allows them) cannot be paid by Pay.
	raw := rawClient(t, node, node.MacaroonHex())
	resp, err := raw.AddInvoice(t.Context(), &lnrpc.Invoice{Memo: "any amount"})
	require.NoError(t, err)
	_, err = node.Pay(t.Context(), resp.GetPaymentRequest())
	assert.ErrorIs(t, err, lnnode.ErrInvalidInvoice)
}

func TestValidateBOLT11OnSandboxInvoices(t *testing.T) {
	clk := newClock()
	node := startNode(t, lnnode.Options{Now: clk.Now})
	c := newClient(t, node.ClientConfig())
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 2_000_000, Expiry: 10 * time.Minute})
	require.NoError(t, err)
	want := lightning.Expectation{Network: &chaincfg.RegressionNetParams, AmountMsat: 2_000_000, Now: clk.Now(), Payee: node.PubKey()}

	reason := func(t *testing.T, e lightning.Expectation) lightning.InvalidReason {
		t.Helper()
		_, err := lightning.ValidateBOLT11(inv.PaymentRequest, e)
		var bad *lightning.InvalidInvoiceError
		require.ErrorAs(t, err, &bad)
		return bad.Reason
	}

	_, err = lightning.ValidateBOLT11(inv.PaymentRequest, want)
	require.NoError(t, err)

	mismatch := want
	mismatch.AmountMsat = 2_000_001
	assert.Equal(t, lightning.ReasonAmountMismatch, reason(t, mismatch))
	mismatch.AmountMsat = 1_999_999
	assert.Equal(t, lightning.ReasonAmountMismatch, reason(t, mismatch))

	lastSecond := want
	lastSecond.Now = inv.ExpiresAt.Add(-time.Second)
	_, err = lightning.ValidateBOLT11(inv.PaymentRequest, lastSecond)
	require.NoError(t, err)
	expired := want
	expired.Now = inv.ExpiresAt
	assert.Equal(t, lightning.ReasonExpired, reason(t, expired))

	wrongNet := want
	wrongNet.Network = &chaincfg.MainNetParams
	assert.Equal(t, lightning.ReasonWrongNetwork, reason(t, wrongNet))

	otherPayee := want
	otherPayee.Payee = startNode(t, lnnode.Options{}).PubKey()
	assert.Equal(t, lightning.ReasonWrongPayee, reason(t, otherPayee))
}

// rawClient is an lnrpc client with the given macaroon, to call what the
// LND client does not expose.
func rawClient(t *testing.T, node *lnnode.Node, macHex string) lnrpc.LightningClient {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(node.TLSCertPEM()))
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))}
	if macHex != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(macaroonCreds(macHex)))
	}
	conn, err := grpc.NewClient(node.Addr(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return lnrpc.NewLightningClient(conn)
}

type macaroonCreds string

func (m macaroonCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"macaroon": string(m)}, nil
}
func (macaroonCreds) RequireTransportSecurity() bool { return true }

// secretsIn lists what must never show up in an error: macaroons in hex and
// the certificate, whole or any of its base64 lines.
func assertNoSecrets(t *testing.T, err error, macaroons []string, certPEM []byte) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	for _, m := range macaroons {
		assert.NotContains(t, msg, m)
		assert.NotContains(t, msg, m[:32], "a macaroon prefix leaked")
	}
	for line := range strings.SplitSeq(string(certPEM), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			assert.NotContains(t, msg, line, "a certificate line leaked")
		}
	}
}

func TestWrongMacaroonIsRefused(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	other := startNode(t, lnnode.Options{})
	ctx := t.Context()

	// A well-formed macaroon minted by another node's root key.
	cfg := node.ClientConfig()
	cfg.MacaroonHex = other.MacaroonHex()
	c := newClient(t, cfg)
	_, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1000})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, codes.PermissionDenied, rpcErr.Code)
	assert.False(t, rpcErr.Retryable())
	secrets := []string{node.MacaroonHex(), other.MacaroonHex(), node.ReadonlyMacaroonHex()}
	assertNoSecrets(t, err, secrets, node.TLSCertPEM())
	_, err = c.LookupInvoice(ctx, strings.Repeat("00", 32))
	assertNoSecrets(t, err, secrets, node.TLSCertPEM())
	err = c.SubscribeSettled(ctx, 5, func(lightning.Invoice) error { return nil })
	require.ErrorAs(t, err, &rpcErr)
	assertNoSecrets(t, err, secrets, node.TLSCertPEM())

	// The right node's read-only macaroon may look but not create.
	cfg.MacaroonHex = node.ReadonlyMacaroonHex()
	ro := newClient(t, cfg)
	_, err = ro.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1000})
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, codes.PermissionDenied, rpcErr.Code)
	assertNoSecrets(t, err, secrets, node.TLSCertPEM())
	_, err = ro.LookupInvoice(ctx, strings.Repeat("00", 32))
	assert.ErrorIs(t, err, lightning.ErrInvoiceNotFound)

	// The invoice macaroon cannot read node info, as on lnd.
	_, err = rawClient(t, node, node.MacaroonHex()).GetInfo(ctx, &lnrpc.GetInfoRequest{})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	info, err := rawClient(t, node, node.ReadonlyMacaroonHex()).GetInfo(ctx, &lnrpc.GetInfoRequest{})
	require.NoError(t, err)
	assert.Equal(t, node.PubKey(), info.GetIdentityPubkey())
	assert.Equal(t, "regtest", info.GetChains()[0].GetNetwork())

	// No macaroon at all.
	_, err = rawClient(t, node, "").AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: 1000})
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestWrongCertificateIsRefused(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	other := startNode(t, lnnode.Options{})
	cfg := node.ClientConfig()
	cfg.TLSCertPEM = other.TLSCertPEM()
	c := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	_, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1000})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, codes.Unavailable, rpcErr.Code)
	assertNoSecrets(t, err, []string{node.MacaroonHex()}, node.TLSCertPEM())
	assertNoSecrets(t, err, []string{node.MacaroonHex()}, other.TLSCertPEM())
}

func TestUnservedMethodIsUnimplemented(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	_, err := rawClient(t, node, node.MacaroonHex()).WalletBalance(t.Context(), &lnrpc.WalletBalanceRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestAddInvoiceFollowsLND(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	raw := rawClient(t, node, node.MacaroonHex())
	ctx := t.Context()

	_, err := raw.AddInvoice(ctx, &lnrpc.Invoice{Value: 1, ValueMsat: 1000})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "value and value_msat are exclusive")
	_, err = raw.AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: -1})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = raw.AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: 1, Memo: strings.Repeat("x", 1025)})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))

	// A caller-chosen preimage; reusing it is a duplicate payment hash.
	pre := make([]byte, 32)
	pre[0] = 7
	resp, err := raw.AddInvoice(ctx, &lnrpc.Invoice{Value: 21, RPreimage: pre})
	require.NoError(t, err)
	sum := sha256.Sum256(pre)
	assert.Equal(t, sum[:], resp.GetRHash())
	_, err = raw.AddInvoice(ctx, &lnrpc.Invoice{Value: 21, RPreimage: pre})
	assert.Equal(t, codes.AlreadyExists, status.Code(err))

	got, err := raw.LookupInvoice(ctx, &lnrpc.PaymentHash{RHash: resp.GetRHash()})
	require.NoError(t, err)
	assert.Equal(t, int64(21_000), got.GetValueMsat())
	assert.Equal(t, int64(86400), got.GetExpiry(), "lnd's default expiry")
	assert.Equal(t, lnrpc.Invoice_OPEN, got.GetState())

	_, err = raw.LookupInvoice(ctx, &lnrpc.PaymentHash{RHash: []byte{1, 2}})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = raw.LookupInvoice(ctx, &lnrpc.PaymentHash{RHash: make([]byte, 32)})
	assert.Equal(t, codes.NotFound, status.Code(err))
}

func TestListInvoicesPages(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	for range 5 {
		create(t, c, 1000)
	}
	raw := rawClient(t, node, node.MacaroonHex())
	addIndexes := func(req *lnrpc.ListInvoiceRequest) []uint64 {
		t.Helper()
		resp, err := raw.ListInvoices(t.Context(), req)
		require.NoError(t, err)
		var out []uint64
		for _, inv := range resp.GetInvoices() {
			out = append(out, inv.GetAddIndex())
		}
		if len(out) > 0 {
			assert.Equal(t, out[0], resp.GetFirstIndexOffset())
			assert.Equal(t, out[len(out)-1], resp.GetLastIndexOffset())
		}
		return out
	}
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, addIndexes(&lnrpc.ListInvoiceRequest{}))
	assert.Equal(t, []uint64{3, 4}, addIndexes(&lnrpc.ListInvoiceRequest{IndexOffset: 2, NumMaxInvoices: 2}))
	assert.Equal(t, []uint64{4, 5}, addIndexes(&lnrpc.ListInvoiceRequest{Reversed: true, NumMaxInvoices: 2}))
	assert.Equal(t, []uint64{2, 3}, addIndexes(&lnrpc.ListInvoiceRequest{Reversed: true, IndexOffset: 4, NumMaxInvoices: 2}))
	assert.Empty(t, addIndexes(&lnrpc.ListInvoiceRequest{IndexOffset: 5}))
}

func TestSubscriptionEndsWithAnErrorWhenTheNodeStops(t *testing.T) {
	node, err := lnnode.Start(t.Context(), lnnode.Options{})
	require.NoError(t, err)
	c := newClient(t, node.ClientConfig())
	inv := create(t, c, 1000)
	sub := subscribe(t, c, 0)
	pay(t, node, inv)
	sub.next(t) // the stream is established and serving

	require.NoError(t, node.Close())
	select {
	case err := <-sub.done:
		require.Error(t, err, "the caller must learn that it has to resubscribe")
		assert.NotErrorIs(t, err, context.Canceled)
		sub.done <- err // for the cleanup
	case <-time.After(guard):
		t.Fatal("subscription did not end (hang guard)")
	}
}

func TestRestartKeepsIdentityCredentialsAndIndexes(t *testing.T) {
	dir := t.TempDir()
	first, err := lnnode.Start(t.Context(), lnnode.Options{DataDir: dir})
	require.NoError(t, err)
	cfg := first.ClientConfig()
	pubKey := first.PubKey()
	c1, err := lightning.New(cfg)
	require.NoError(t, err)
	a := create(t, c1, 1000)
	pay(t, first, a)
	b := create(t, c1, 2000)
	require.NoError(t, c1.Close())
	require.NoError(t, first.Close())

	second := startNode(t, lnnode.Options{DataDir: dir})
	assert.Equal(t, pubKey, second.PubKey())
	assert.Equal(t, cfg.TLSCertPEM, second.TLSCertPEM())
	assert.Equal(t, cfg.MacaroonHex, second.MacaroonHex())

	// The credentials the engine stored still work; only the port moved.
	cfg.Address = second.Addr()
	c2 := newClient(t, cfg)
	got, err := c2.LookupInvoice(t.Context(), a.PaymentHash)
	require.NoError(t, err)
	assert.True(t, got.Settled)
	assert.Equal(t, uint64(1), got.SettleIndex)

	sub := subscribe(t, c2, 1)
	pay(t, second, b)
	next := sub.next(t)
	assert.Equal(t, b.PaymentHash, next.PaymentHash)
	assert.Equal(t, uint64(2), next.SettleIndex, "settle indexes continue across restarts")

	// The files a client reads: a hex macaroon and the certificate.
	fromFiles := newClient(t, lightning.Config{Address: second.Addr(), TLSCertPath: second.TLSCertPath(), MacaroonPath: second.MacaroonPath()})
	_, err = fromFiles.LookupInvoice(t.Context(), b.PaymentHash)
	require.NoError(t, err)
}

func TestPayHandler(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	c := newClient(t, node.ClientConfig())
	srv := httptest.NewServer(node.PayHandler())
	t.Cleanup(srv.Close)
	inv := create(t, c, 7000)

	post := func(contentType, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/pay", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}

	code, body := post("text/plain", inv.PaymentRequest+"\n")
	require.Equal(t, http.StatusOK, code, string(body))
	var ok lnnode.PayResponse
	require.NoError(t, json.Unmarshal(body, &ok))
	assert.Equal(t, inv.PaymentHash, ok.PaymentHash)
	assert.Len(t, ok.Preimage, 64)

	code, _ = post("text/plain", inv.PaymentRequest)
	assert.Equal(t, http.StatusConflict, code)

	second := create(t, c, 8000)
	code, body = post("application/x-www-form-urlencoded", "invoice="+second.PaymentRequest)
	assert.Equal(t, http.StatusOK, code, string(body))

	code, _ = post("text/plain", "not an invoice")
	assert.Equal(t, http.StatusBadRequest, code)
	foreign := create(t, newClient(t, startNode(t, lnnode.Options{}).ClientConfig()), 1000)
	code, _ = post("text/plain", foreign.PaymentRequest)
	assert.Equal(t, http.StatusNotFound, code)

	got, err := c.LookupInvoice(t.Context(), second.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, int64(8000), got.AmtPaidMsat)
	assert.Equal(t, uint64(2), got.SettleIndex)
}

func TestPayHonoursContext(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	inv := create(t, newClient(t, node.ClientConfig()), 1000)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := node.Pay(ctx, inv.PaymentRequest)
	assert.True(t, errors.Is(err, context.Canceled))
	// Not settled by the cancelled attempt.
	_, err = node.Pay(t.Context(), inv.PaymentRequest)
	assert.NoError(t, err)
}

func TestNodePrintsNoSecrets(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	for _, out := range []string{fmt.Sprint(node), fmt.Sprintf("%+v", node), fmt.Sprintf("%#v", node)} {
		assert.NotContains(t, out, node.MacaroonHex()[:24])
		assert.NotContains(t, out, node.ReadonlyMacaroonHex()[:24])
		assert.Contains(t, out, node.Addr())
	}
}
