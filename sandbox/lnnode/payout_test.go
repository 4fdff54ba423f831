package lnnode_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// rawRouter is a routerrpc client with the given macaroon, to check the
// sandbox's answers as lnd gives them.
func rawRouter(t *testing.T, node *lnnode.Node, macHex string) routerrpc.RouterClient {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(node.TLSCertPEM()))
	conn, err := grpc.NewClient(node.Addr(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})),
		grpc.WithPerRPCCredentials(macaroonCreds(macHex)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return routerrpc.NewRouterClient(conn)
}

// send calls SendPaymentV2 and returns every update, or the stream's error.
func send(t *testing.T, r routerrpc.RouterClient, req *routerrpc.SendPaymentRequest) ([]*lnrpc.Payment, error) {
	t.Helper()
	stream, err := r.SendPaymentV2(t.Context(), req)
	require.NoError(t, err)
	var updates []*lnrpc.Payment
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			return updates, nil
		}
		if err != nil {
			return updates, err
		}
		updates = append(updates, p)
	}
}

func track(t *testing.T, r routerrpc.RouterClient, hash []byte) (*lnrpc.Payment, error) {
	t.Helper()
	stream, err := r.TrackPaymentV2(t.Context(), &routerrpc.TrackPaymentRequest{PaymentHash: hash})
	require.NoError(t, err)
	return stream.Recv()
}

func TestRouterFollowsLND(t *testing.T) {
	clk := newClock()
	node := startNode(t, lnnode.Options{Now: clk.Now})
	r := rawRouter(t, node, node.PayoutMacaroonHex())
	bolt11, hashHex, err := node.PayeeInvoice(t.Context(), 9_000, "payout", time.Hour)
	require.NoError(t, err)
	hash, _ := hex.DecodeString(hashHex)

	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: bolt11})
	assert.Equal(t, codes.Unknown, status.Code(err))
	assert.Contains(t, err.Error(), "timeout_seconds must be specified")
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10, AmtMsat: 9_000})
	assert.Contains(t, err.Error(), "amount must not be specified")

	_, err = track(t, r, hash)
	assert.Equal(t, codes.NotFound, status.Code(err))
	assert.Contains(t, err.Error(), "payment isn't initiated")

	updates, err := send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10, FeeLimitMsat: 10})
	require.NoError(t, err)
	require.Len(t, updates, 2)
	assert.Equal(t, lnrpc.Payment_IN_FLIGHT, updates[0].GetStatus())
	final := updates[1]
	assert.Equal(t, lnrpc.Payment_SUCCEEDED, final.GetStatus())
	assert.Equal(t, hashHex, final.GetPaymentHash())
	assert.Equal(t, int64(9_000), final.GetValueMsat())
	assert.Equal(t, int64(0), final.GetFeeMsat())
	assert.Equal(t, lnrpc.PaymentFailureReason_FAILURE_REASON_NONE, final.GetFailureReason())
	assert.Equal(t, uint64(1), final.GetPaymentIndex())

	// Paying a paid hash again is lnd's ErrAlreadyPaid.
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10, NoInflightUpdates: true})
	assert.Equal(t, codes.AlreadyExists, status.Code(err))
	assert.Contains(t, err.Error(), "invoice is already paid")
	tracked, err := track(t, r, hash)
	require.NoError(t, err)
	assert.Equal(t, final.GetPaymentPreimage(), tracked.GetPaymentPreimage())

	// Expired by the node's clock; the payee's invoice stays open.
	expiring, expiringHash, err := node.PayeeInvoice(t.Context(), 1_000, "", time.Minute)
	require.NoError(t, err)
	clk.Advance(time.Minute + time.Second)
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: expiring, TimeoutSeconds: 10})
	assert.Equal(t, codes.Unknown, status.Code(err))
	assert.Contains(t, err.Error(), "invoice expired")
	settled, _, err := node.PayeeInvoiceState(expiringHash)
	require.NoError(t, err)
	assert.False(t, settled)

	// The engine's own invoice: no self-payments.
	own := create(t, newClient(t, node.ClientConfig()), 2_000)
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: own.PaymentRequest, TimeoutSeconds: 10})
	assert.Contains(t, err.Error(), "self-payments not allowed")

	// Amount-less: refused.
	noAmount, _, err := node.PayeeInvoice(t.Context(), 0, "", time.Hour)
	require.NoError(t, err)
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: noAmount, TimeoutSeconds: 10})
	assert.Contains(t, err.Error(), "amount must be specified when paying a zero amount invoice")

	// Another node's invoice: no route, recorded as failed; lnd lets a
	// failed hash be tried again.
	foreign := create(t, newClient(t, startNode(t, lnnode.Options{Now: clk.Now}).ClientConfig()), 3_000)
	for range 2 {
		updates, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: foreign.PaymentRequest, TimeoutSeconds: 10, NoInflightUpdates: true})
		require.NoError(t, err)
		require.Len(t, updates, 1)
		assert.Equal(t, lnrpc.Payment_FAILED, updates[0].GetStatus())
		assert.Equal(t, lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE, updates[0].GetFailureReason())
		assert.Equal(t, strings.Repeat("0", 64), updates[0].GetPaymentPreimage())
	}
}

func TestRouterPermissions(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	bolt11, hashHex, err := node.PayeeInvoice(t.Context(), 1_000, "", time.Hour)
	require.NoError(t, err)
	hash, _ := hex.DecodeString(hashHex)
	req := &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10}

	// The invoice macaroon cannot spend or see payments.
	inv := rawRouter(t, node, node.MacaroonHex())
	_, err = send(t, inv, req)
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = track(t, inv, hash)
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	// The read-only macaroon can look, not pay (offchain:read, as on lnd).
	ro := rawRouter(t, node, node.ReadonlyMacaroonHex())
	_, err = send(t, ro, req)
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = track(t, ro, hash)
	assert.Equal(t, codes.NotFound, status.Code(err))

	settled, _, err := node.PayeeInvoiceState(hashHex)
	require.NoError(t, err)
	assert.False(t, settled)

	// The payout macaroon cannot create invoices.
	_, err = rawClient(t, node, node.PayoutMacaroonHex()).AddInvoice(t.Context(), &lnrpc.Invoice{ValueMsat: 1000})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	info, err := rawClient(t, node, node.PayoutMacaroonHex()).GetInfo(t.Context(), &lnrpc.GetInfoRequest{})
	require.NoError(t, err)
	assert.Equal(t, node.PubKey(), info.GetIdentityPubkey())
	assert.NotEqual(t, node.PubKey(), node.PayeePubKey())
}

func TestPayeeHTTP(t *testing.T) {
	node := startNode(t, lnnode.Options{})
	srv := httptest.NewServer(node.PayHandler())
	t.Cleanup(srv.Close)
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}

	code, body := do(http.MethodPost, "/payee/invoices", `{"amount_msat":12000,"memo":"withdrawal 7","expiry_seconds":600}`)
	require.Equal(t, http.StatusOK, code, string(body))
	var created lnnode.PayeeInvoiceResponse
	require.NoError(t, json.Unmarshal(body, &created))
	assert.Len(t, created.PaymentHash, 64)
	d, err := lightning.ValidateBOLT11(created.PaymentRequest, lightning.Expectation{Network: node.Network(), AmountMsat: 12000, Payee: node.PayeePubKey()})
	require.NoError(t, err)
	assert.Equal(t, created.PaymentHash, d.PaymentHash)
	assert.Equal(t, "withdrawal 7", d.Description)
	assert.Equal(t, 10*time.Minute, d.Expiry)

	var st lnnode.PayeeInvoiceStatus
	code, body = do(http.MethodGet, "/payee/invoices/"+created.PaymentHash, "")
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &st))
	assert.False(t, st.Settled)
	assert.Equal(t, int64(12000), st.AmountMsat)

	p, err := newClient(t, node.ClientConfig()).PayInvoice(t.Context(), lightning.PayRequest{BOLT11: created.PaymentRequest})
	require.NoError(t, err)
	require.Equal(t, lightning.StatusSucceeded, p.Status)

	code, body = do(http.MethodGet, "/payee/invoices/"+created.PaymentHash, "")
	require.Equal(t, http.StatusOK, code, string(body))
	st = lnnode.PayeeInvoiceStatus{}
	require.NoError(t, json.Unmarshal(body, &st))
	assert.True(t, st.Settled)
	assert.Equal(t, int64(12000), st.AmtPaidMsat)
	assert.False(t, st.SettledAt.IsZero())

	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, "/payee/invoices", `{"amount_msat":-1}`, http.StatusBadRequest},
		{http.MethodPost, "/payee/invoices", `{"amount_msat":1000,"expiry_seconds":-5}`, http.StatusBadRequest},
		{http.MethodPost, "/payee/invoices", `{"amount":1000}`, http.StatusBadRequest},
		{http.MethodPost, "/payee/invoices", `not json`, http.StatusBadRequest},
		{http.MethodGet, "/payee/invoices/" + strings.Repeat("ab", 32), "", http.StatusNotFound},
		{http.MethodGet, "/payee/invoices/xyz", "", http.StatusBadRequest},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		assert.Equal(t, tc.want, code, "%s %s %s: %s", tc.method, tc.path, tc.body, body)
		assert.True(t, bytes.Contains(body, []byte(`"error"`)), string(body))
	}
}

func TestRestartKeepsPayeeAndPayments(t *testing.T) {
	dir := t.TempDir()
	first, err := lnnode.Start(t.Context(), lnnode.Options{DataDir: dir})
	require.NoError(t, err)
	payee, payoutMac := first.PayeePubKey(), first.PayoutMacaroonHex()
	paid, paidHash, err := first.PayeeInvoice(t.Context(), 15_000, "paid", time.Hour)
	require.NoError(t, err)
	open, openHash, err := first.PayeeInvoice(t.Context(), 16_000, "open", time.Hour)
	require.NoError(t, err)
	c1, err := lightning.New(first.ClientConfig())
	require.NoError(t, err)
	before, err := c1.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: paid})
	require.NoError(t, err)
	require.Equal(t, lightning.StatusSucceeded, before.Status)
	require.NoError(t, c1.Close())
	require.NoError(t, first.Close())

	second := startNode(t, lnnode.Options{DataDir: dir})
	assert.Equal(t, payee, second.PayeePubKey())
	assert.Equal(t, payoutMac, second.PayoutMacaroonHex())
	c2 := newClient(t, second.ClientConfig())

	settled, amt, err := second.PayeeInvoiceState(paidHash)
	require.NoError(t, err)
	assert.True(t, settled)
	assert.Equal(t, int64(15_000), amt)
	settled, _, err = second.PayeeInvoiceState(openHash)
	require.NoError(t, err)
	assert.False(t, settled)

	after, err := c2.LookupPayment(t.Context(), paidHash)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	_, err = send(t, rawRouter(t, second, payoutMac), &routerrpc.SendPaymentRequest{PaymentRequest: paid, TimeoutSeconds: 10})
	assert.Equal(t, codes.AlreadyExists, status.Code(err), "the paid hash is remembered")

	p, err := c2.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: open})
	require.NoError(t, err)
	assert.Equal(t, lightning.StatusSucceeded, p.Status)

	// The client files: the payout macaroon sits next to the others.
	fromFiles := newClient(t, lightning.Config{Address: second.Addr(), TLSCertPath: second.TLSCertPath(),
		MacaroonPath: second.MacaroonPath(), PayoutMacaroonPath: second.PayoutMacaroonPath()})
	got, err := fromFiles.LookupPayment(t.Context(), openHash)
	require.NoError(t, err)
	assert.Equal(t, p, got)
}

// Held payouts follow lnd's in-flight semantics: a second send of the hash
// is "payment is in transition", TrackPaymentV2 streams IN_FLIGHT then the
// outcome, and a restart keeps the payment in flight.
func TestHeldPayoutsStayInFlight(t *testing.T) {
	dir := t.TempDir()
	node, err := lnnode.Start(t.Context(), lnnode.Options{DataDir: dir})
	require.NoError(t, err)
	bolt11, hashHex, err := node.PayeeInvoice(t.Context(), 4_000, "", time.Hour)
	require.NoError(t, err)
	hash, _ := hex.DecodeString(hashHex)
	node.HoldPayouts()
	r := rawRouter(t, node, node.PayoutMacaroonHex())

	stream, err := r.SendPaymentV2(t.Context(), &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10})
	require.NoError(t, err)
	first, err := stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, lnrpc.Payment_IN_FLIGHT, first.GetStatus())
	_, err = send(t, r, &routerrpc.SendPaymentRequest{PaymentRequest: bolt11, TimeoutSeconds: 10})
	assert.Equal(t, codes.AlreadyExists, status.Code(err))
	assert.Contains(t, err.Error(), "payment is in transition")
	tracked, err := track(t, r, hash)
	require.NoError(t, err)
	assert.Equal(t, lnrpc.Payment_IN_FLIGHT, tracked.GetStatus())
	require.NoError(t, node.Close())

	// After a restart the payment is still in flight, until released.
	node = startNode(t, lnnode.Options{DataDir: dir})
	r = rawRouter(t, node, node.PayoutMacaroonHex())
	follow, err := r.TrackPaymentV2(t.Context(), &routerrpc.TrackPaymentRequest{PaymentHash: hash})
	require.NoError(t, err)
	update, err := follow.Recv()
	require.NoError(t, err)
	assert.Equal(t, lnrpc.Payment_IN_FLIGHT, update.GetStatus())
	settled, _, err := node.PayeeInvoiceState(hashHex)
	require.NoError(t, err)
	assert.False(t, settled)

	n, err := node.ReleasePayouts()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	update, err = follow.Recv()
	require.NoError(t, err)
	assert.Equal(t, lnrpc.Payment_SUCCEEDED, update.GetStatus())
	_, err = follow.Recv()
	assert.ErrorIs(t, err, io.EOF, "the stream ends after the terminal state")
	settled, paid, err := node.PayeeInvoiceState(hashHex)
	require.NoError(t, err)
	assert.True(t, settled)
	assert.Equal(t, int64(4_000), paid)
	n, err = node.ReleasePayouts()
	require.NoError(t, err)
	assert.Zero(t, n)
}
