package nwc_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/nwcwallet"
	"github.com/billflow/billflow/sandbox/relay"
)

func TestPayInvoiceOverRelay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		encs    []nwc.Encryption
		wantEnc nwc.Encryption
	}{
		{"nip44 wallet", []nwc.Encryption{nwc.EncryptionNIP44v2, nwc.EncryptionNIP04}, nwc.EncryptionNIP44v2},
		{"nip04 wallet", []nwc.Encryption{nwc.EncryptionNIP04}, nwc.EncryptionNIP04},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStack(t, func(o *nwcwallet.Options) { o.Encryptions = tc.encs })
			c, _ := s.client(t)
			ctx := testCtx(t)

			info, err := c.WalletInfo(ctx)
			require.NoError(t, err)
			assert.Equal(t, tc.wantEnc, info.Preferred())
			assert.True(t, info.Supports(nwc.MethodPayInvoice))

			const amount = 21_000
			inv := s.invoice(t, amount)
			res, err := c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
			require.NoError(t, err)

			pre, err := hex.DecodeString(res.Preimage)
			require.NoError(t, err)
			sum := sha256.Sum256(pre)
			assert.Equal(t, inv.PaymentHash, hex.EncodeToString(sum[:]), "sha256(preimage) is the payment hash")
			assert.Equal(t, int64(startBalance-amount), s.wallet.Balance())

			settled, err := s.lnd.LookupInvoice(ctx, inv.PaymentHash)
			require.NoError(t, err)
			assert.True(t, settled.Settled, "the engine's node sees the invoice settled")
			assert.Equal(t, int64(amount), settled.AmtPaidMsat)

			bal, err := c.GetBalance(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(startBalance-amount), bal.BalanceMsat)

			reqs := s.wallet.Requests()
			i := slices.IndexFunc(reqs, func(r nwcwallet.Received) bool { return r.Method == nwc.MethodPayInvoice })
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, tc.wantEnc, reqs[i].Encryption, "the request used the preferred scheme")
			assert.False(t, reqs[i].Expiration.IsZero(), "the request carried an expiration")
			assert.Equal(t, nwcwallet.OutcomeAnswered, reqs[i].Outcome)

			// Paying the same invoice again (a retry after an unknown
			// outcome) returns the proof without paying twice.
			again, err := c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
			require.NoError(t, err)
			assert.Equal(t, res.Preimage, again.Preimage)
			assert.Equal(t, int64(startBalance-amount), s.wallet.Balance())
		})
	}
}

func TestMakeLookupBalanceAndInfo(t *testing.T) {
	s := startStack(t, nil)
	c, _ := s.client(t)
	ctx := testCtx(t)

	gi, err := c.GetInfo(ctx)
	require.NoError(t, err)
	assert.Equal(t, s.wallet.PubKey(), gi.Pubkey)
	assert.Equal(t, "regtest", gi.Network)
	for _, m := range []string{nwc.MethodPayInvoice, nwc.MethodMakeInvoice, nwc.MethodLookupInvoice, nwc.MethodGetBalance, nwc.MethodGetInfo} {
		assert.Contains(t, gi.Methods, m)
	}

	made, err := c.MakeInvoice(ctx, nwc.MakeInvoiceRequest{AmountMsat: 5_000, Description: "top-up", Expiry: 10 * time.Minute})
	require.NoError(t, err)
	assert.Equal(t, nwc.TransactionIncoming, made.Type)
	assert.Equal(t, int64(5_000), made.AmountMsat)
	assert.Equal(t, "top-up", made.Description)
	assert.NotEmpty(t, made.Invoice)
	assert.Len(t, made.PaymentHash, 64)
	assert.False(t, made.ExpiresAt.IsZero())

	looked, err := c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{PaymentHash: made.PaymentHash})
	require.NoError(t, err)
	assert.Equal(t, made.Invoice, looked.Invoice)
	assert.False(t, looked.Settled())

	// Someone pays the wallet's invoice: lookup sees it and the wallet is credited.
	_, err = s.node.Pay(ctx, made.Invoice)
	require.NoError(t, err)
	looked, err = c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{Invoice: made.Invoice})
	require.NoError(t, err)
	assert.True(t, looked.Settled())
	bal, err := c.GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(startBalance+5_000), bal.BalanceMsat)

	// Outgoing payments are found too, with their preimage.
	inv := s.invoice(t, 1_000)
	paid, err := c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.NoError(t, err)
	out, err := c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{PaymentHash: inv.PaymentHash})
	require.NoError(t, err)
	assert.Equal(t, nwc.TransactionOutgoing, out.Type)
	assert.Equal(t, paid.Preimage, out.Preimage)
	assert.True(t, out.Settled())

	_, err = c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{PaymentHash: strings.Repeat("ab", 32)})
	require.ErrorIs(t, err, nwc.ErrNotFound)
	assert.False(t, nwc.Retryable(err))
}

func TestWalletErrorsAreTyped(t *testing.T) {
	s := startStack(t, nil)
	c, _ := s.client(t)
	ctx := testCtx(t)

	// Naturally insufficient: the invoice is above the balance.
	big := s.invoice(t, startBalance+1)
	_, err := c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: big.PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrInsufficientBalance)
	var we *nwc.WalletError
	require.ErrorAs(t, err, &we)
	assert.Equal(t, nwc.MethodPayInvoice, we.Method)
	assert.False(t, we.Local)
	assert.False(t, nwc.Retryable(err))
	assert.NotErrorIs(t, err, nwc.ErrUnknownOutcome)

	// Forced.
	s.wallet.SetForceInsufficientBalance(true)
	small := s.invoice(t, 1_000)
	_, err = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: small.PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrInsufficientBalance)
	assert.False(t, nwc.Retryable(err))

	// Rate limited is retryable.
	s.wallet.Reset()
	s.wallet.SetRateLimited(true)
	_, err = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: small.PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrRateLimited)
	assert.True(t, nwc.Retryable(err))
	_, err = c.GetBalance(ctx)
	require.ErrorIs(t, err, nwc.ErrRateLimited)

	for _, inv := range []string{big.PaymentHash, small.PaymentHash} {
		got, err := s.lnd.LookupInvoice(ctx, inv)
		require.NoError(t, err)
		assert.False(t, got.Settled, "refused payments settle nothing")
	}
	assert.Equal(t, int64(startBalance), s.wallet.Balance())

	s.wallet.Reset()
	_, err = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: small.PaymentRequest})
	require.NoError(t, err, "the retry after the rate limit succeeds")
}

func TestUnadvertisedMethodFailsLocally(t *testing.T) {
	s := startStack(t, func(o *nwcwallet.Options) { o.Invoices = nil })
	c, _ := s.client(t)
	_, err := c.MakeInvoice(testCtx(t), nwc.MakeInvoiceRequest{AmountMsat: 1})
	require.ErrorIs(t, err, nwc.ErrNotImplemented)
	var we *nwc.WalletError
	require.ErrorAs(t, err, &we)
	assert.True(t, we.Local, "nothing was sent")
	assert.False(t, nwc.Retryable(err))
	assert.Empty(t, s.wallet.Requests())
}

func TestSilentWalletIsUnknownOutcome(t *testing.T) {
	s := startStack(t, nil)
	// The impatient client's reply timeout is what ends its calls; the
	// patient one checks that the wallet works again.
	impatient, _ := s.client(t, nwc.WithReplyTimeout(300*time.Millisecond))
	patient, _ := s.client(t)
	ctx := testCtx(t)
	for _, c := range []*nwc.Client{impatient, patient} {
		_, err := c.WalletInfo(ctx) // warm up: connect and read the info event
		require.NoError(t, err)
	}

	s.wallet.SetSilent(true)
	inv := s.invoice(t, 2_000)
	_, err := impatient.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.ErrorIs(t, err, nwc.ErrUnknownOutcome)
	var uo *nwc.UnknownOutcomeError
	require.ErrorAs(t, err, &uo)
	assert.Equal(t, nwc.MethodPayInvoice, uo.Method)
	assert.Len(t, uo.RequestID, 64)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, nwc.ErrPaymentFailed, "unknown is not failed")
	assert.NotErrorIs(t, err, nwc.ErrTransport)
	assert.False(t, nwc.Retryable(err), "check settlement before paying again")

	// The wallet did get it and stayed silent: the outcome really was unknown.
	got, err := s.wallet.WaitRequest(ctx, func(r nwcwallet.Received) bool {
		return r.EventID == uo.RequestID && r.Outcome == nwcwallet.OutcomeDropped
	})
	require.NoError(t, err)
	assert.Equal(t, nwc.MethodPayInvoice, got.Method)

	// Reads with unknown outcomes are safe to retry.
	_, err = impatient.GetBalance(ctx)
	require.ErrorIs(t, err, nwc.ErrUnknownOutcome)
	assert.True(t, nwc.Retryable(err))
	require.ErrorAs(t, err, &uo)
	_, err = s.wallet.WaitRequest(ctx, func(r nwcwallet.Received) bool {
		return r.EventID == uo.RequestID && r.Outcome == nwcwallet.OutcomeDropped
	})
	require.NoError(t, err)

	// A caller's own deadline ends a call the same way.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = patient.GetInfo(short)
	require.ErrorIs(t, err, nwc.ErrUnknownOutcome)
	// Let the wallet see it while still silent, or it would eat the drop below.
	require.ErrorAs(t, err, &uo)
	_, err = s.wallet.WaitRequest(ctx, func(r nwcwallet.Received) bool {
		return r.EventID == uo.RequestID && r.Outcome == nwcwallet.OutcomeDropped
	})
	require.NoError(t, err)

	// Silence for N requests, then answers again.
	s.wallet.SetSilent(false)
	s.wallet.DropNext(1)
	_, err = impatient.GetBalance(ctx)
	require.ErrorIs(t, err, nwc.ErrUnknownOutcome)
	bal, err := patient.GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(startBalance), bal.BalanceMsat)
}

func TestLateAnswerAfterCallerGaveUp(t *testing.T) {
	// No invoice node: its settlement stream would start goroutines of its
	// own while this test counts the client's.
	s := startStack(t, func(o *nwcwallet.Options) { o.Invoices = nil })
	ctx := testCtx(t)
	// Created first so the node's gRPC connection is up before counting.
	inv := s.invoice(t, 3_000)
	base := runtime.NumGoroutine()
	c, _ := s.client(t)
	_, err := c.WalletInfo(ctx)
	require.NoError(t, err)

	// The wallet pays, then holds its answer until we release it: the
	// caller's deadline is certain to pass first.
	s.wallet.SetReplyDelay(time.Hour)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.PayInvoice(short, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	var uo *nwc.UnknownOutcomeError
	require.ErrorAs(t, err, &uo)
	assert.False(t, nwc.Retryable(err))

	_, err = s.wallet.WaitRequest(ctx, func(r nwcwallet.Received) bool {
		return r.EventID == uo.RequestID && r.Outcome == nwcwallet.OutcomeHeld
	})
	require.NoError(t, err)
	// Release: the answer goes out to a client that closed its subscription.
	s.wallet.SetReplyDelay(0)
	_, err = s.wallet.WaitRequest(ctx, func(r nwcwallet.Received) bool {
		return r.EventID == uo.RequestID && r.Outcome == nwcwallet.OutcomeAnswered
	})
	require.NoError(t, err)

	// Settlement is what tells the caller the payment happened.
	settled, err := s.lnd.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.True(t, settled.Settled)

	// The client is unharmed: the next request works, and the retry of the
	// payment returns the same proof without paying twice.
	bal, err := c.GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(startBalance-3_000), bal.BalanceMsat)
	res, err := c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.NoError(t, err)
	pre, _ := hex.DecodeString(res.Preimage)
	sum := sha256.Sum256(pre)
	assert.Equal(t, inv.PaymentHash, hex.EncodeToString(sum[:]))
	assert.Equal(t, int64(startBalance-3_000), s.wallet.Balance())

	require.NoError(t, c.Close())
	waitGoroutines(t, base)
	_, err = c.GetBalance(ctx)
	require.ErrorIs(t, err, nwc.ErrClosed)
}

func TestRequestCarriesExpirationTag(t *testing.T) {
	s := startStack(t, nil)
	const reply, publish = 30 * time.Second, 5 * time.Second
	c, _ := s.client(t, nwc.WithReplyTimeout(reply), nwc.WithPublishTimeout(publish))
	ctx := testCtx(t)

	// Watch the relay as a bystander would.
	obs, err := nwc.DialRelay(ctx, s.relayURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = obs.Close() })
	sub, err := obs.Subscribe(ctx, nostr.Filters{{Kinds: []int{nwc.KindRequest}, Tags: nostr.TagMap{"p": {s.wallet.PubKey()}}}})
	require.NoError(t, err)
	select {
	case <-sub.EOSE():
	case <-ctx.Done():
		t.Fatal("no EOSE")
	}

	_, err = c.GetBalance(ctx)
	require.NoError(t, err)
	var ev *nostr.Event
	select {
	case ev = <-sub.Events():
	case <-ctx.Done():
		t.Fatal("the request never crossed the relay")
	}
	exp := ev.Tags.GetFirst([]string{"expiration"})
	require.NotNil(t, exp, "NIP-40 expiration tag")
	secs, err := strconv.ParseInt((*exp)[1], 10, 64)
	require.NoError(t, err)
	assert.Greater(t, secs, int64(ev.CreatedAt))
	assert.LessOrEqual(t, secs, int64(ev.CreatedAt)+int64((2*publish+reply)/time.Second)+1,
		"no later than the client could still be waiting")
	assert.Equal(t, s.wallet.PubKey(), ev.Tags.GetFirst([]string{"p"}).Value())
	assert.Equal(t, "nip44_v2", ev.Tags.GetFirst([]string{"encryption"}).Value())
	assert.Equal(t, nwc.KindRequest, ev.Kind)
	assert.NotContains(t, ev.Content, "get_balance", "the payload is encrypted")
}

func TestConcurrentPaymentsOnOneClient(t *testing.T) {
	s := startStack(t, nil)
	c, _ := s.client(t)
	ctx := testCtx(t)
	const n, amount = 8, 1_500
	invs := make([]string, n)
	for i := range invs {
		invs[i] = s.invoice(t, amount).PaymentRequest
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range invs {
		wg.Go(func() {
			_, errs[i] = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: invs[i]})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(startBalance-n*amount), s.wallet.Balance())
	assert.Len(t, s.wallet.Payments(), n)
}

func TestSurvivesOneDeadRelay(t *testing.T) {
	dead, deadURL, err := relay.Start(testCtx(t), "127.0.0.1:0")
	require.NoError(t, err)
	s := startStack(t, func(o *nwcwallet.Options) { o.Relays = append(o.Relays, deadURL) })
	c, _ := s.client(t, nwc.WithConnectTimeout(2*time.Second))
	ctx := testCtx(t)
	_, err = c.GetBalance(ctx)
	require.NoError(t, err)

	dead.Close()
	inv := s.invoice(t, 1_000)
	_, err = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.NoError(t, err, "the surviving relay carries request and answer")
}

func TestUnreachableRelayIsRetryableTransportError(t *testing.T) {
	r, url, err := relay.Start(testCtx(t), "127.0.0.1:0")
	require.NoError(t, err)
	r.Close() // nothing listens there any more
	sk := nostr.GeneratePrivateKey()
	walletPub, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	conn, err := nwc.NewConnection(walletPub, []string{url}, sk, "")
	require.NoError(t, err)
	c, err := nwc.NewClient(conn, nwc.WithConnectTimeout(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	_, err = c.PayInvoice(testCtx(t), nwc.PayInvoiceRequest{Invoice: "lnbcrt1"})
	require.ErrorIs(t, err, nwc.ErrTransport)
	assert.NotErrorIs(t, err, nwc.ErrUnknownOutcome, "nothing was sent")
	assert.True(t, nwc.Retryable(err))
	assert.NotContains(t, err.Error(), sk)
}

func TestWalletWithoutInfoEventIsSpokenToInNIP04(t *testing.T) {
	s := startStack(t, nil)
	sk := nostr.GeneratePrivateKey()
	ghost, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	conn, err := nwc.NewConnection(ghost, []string{s.relayURL}, sk, "")
	require.NoError(t, err)
	c, err := nwc.NewClient(conn, nwc.WithReplyTimeout(300*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := testCtx(t)

	_, err = c.WalletInfo(ctx)
	require.ErrorIs(t, err, nwc.ErrNoInfo)
	obs, err := nwc.DialRelay(ctx, s.relayURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = obs.Close() })
	sub, err := obs.Subscribe(ctx, nostr.Filters{{Kinds: []int{nwc.KindRequest}, Tags: nostr.TagMap{"p": {ghost}}}})
	require.NoError(t, err)
	<-sub.EOSE()

	_, err = c.GetBalance(ctx)
	require.ErrorIs(t, err, nwc.ErrUnknownOutcome, "nobody answers for that key")
	ev := <-sub.Events()
	assert.Nil(t, ev.Tags.GetFirst([]string{"encryption"}), "legacy requests carry no encryption tag")
	assert.Equal(t, nwc.EncryptionNIP04, nwc.SniffEncryption(ev.Content))
}

// TestSecretNeverLeaks drives every path that produces an error or a log
// line and checks that the connection secret shows up in none of them.
func TestSecretNeverLeaks(t *testing.T) {
	s := startStack(t, nil)
	c, secret := s.client(t)
	ctx := testCtx(t)
	var errs []error
	record := func(_ any, err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	inv := s.invoice(t, 1_000)
	record(c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest}))
	record(c.MakeInvoice(ctx, nwc.MakeInvoiceRequest{AmountMsat: 10}))
	record(c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{PaymentHash: strings.Repeat("cd", 32)}))
	record(c.LookupInvoice(ctx, nwc.LookupInvoiceRequest{PaymentHash: "not-hex"}))
	record(c.PayInvoice(ctx, nwc.PayInvoiceRequest{}))
	s.wallet.SetForceInsufficientBalance(true)
	record(c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: s.invoice(t, 1).PaymentRequest}))
	s.wallet.SetRateLimited(true)
	record(c.GetBalance(ctx))
	s.wallet.Reset()
	s.wallet.SetSilent(true)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	record(c.GetInfo(short))
	cancel()
	s.wallet.Reset()
	for _, bad := range []string{
		"nostr+walletconnect://" + s.wallet.PubKey() + "?secret=" + secret,
		"nostr+walletconnect://" + s.wallet.PubKey() + "?relay=" + s.relayURL + "&secret=" + secret + "&secret=" + secret,
		"nostr+walletconnect://" + s.wallet.PubKey() + "?relay=" + s.relayURL + "&secret=" + secret + "00",
		"https://" + s.wallet.PubKey() + "?relay=" + s.relayURL + "&secret=" + secret,
		"nostr+walletconnect://" + s.wallet.PubKey() + "?relay=" + s.relayURL + "&secret=" + secret + "&x=%zz",
		"nostr+walletconnect://" + s.wallet.PubKey() + "?relay=" + s.relayURL + "/" + secret + "&secret=" + secret,
	} {
		record(nwc.ParseURL(bad))
	}
	// A client whose relay is gone: transport errors.
	conn := c.Connection()
	conn2, err := nwc.ParseURL(conn.SecretURL())
	require.NoError(t, err)
	dead, err := nwc.NewClient(conn2, nwc.WithRelayConnector(func(_ context.Context, url string) (nwc.RelayConn, error) {
		return nil, fmt.Errorf("dial %s: refused", url)
	}))
	require.NoError(t, err)
	record(dead.GetBalance(ctx))
	require.NoError(t, dead.Close())

	require.GreaterOrEqual(t, len(errs), 12, "every step above failed on purpose except the payment")
	upper := strings.ToUpper(secret)
	for _, err := range errs {
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			assert.NotContains(t, text, secret)
			assert.NotContains(t, text, upper)
		}
	}
	// Printing the connection itself.
	for _, text := range []string{fmt.Sprint(conn), fmt.Sprintf("%+v %#v %s %q", conn, conn, conn, conn)} {
		assert.NotContains(t, text, secret)
	}
	logs := s.logs.String()
	assert.Contains(t, logs, "nwc request sent", "logs were captured")
	assert.NotContains(t, logs, secret)
	assert.NotContains(t, logs, upper)
	assert.True(t, errors.Is(errs[len(errs)-1], nwc.ErrTransport))
}
