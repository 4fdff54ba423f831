package lightning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// These tests script lnd's answers where the sandbox does not answer as lnd
// does (lnd's macaroon refusals are codes.Unknown) or only under races.

// fakeRouter answers SendPaymentV2 and TrackPaymentV2 from scripts.
type fakeRouter struct {
	routerrpc.RouterClient
	send  []any // *lnrpc.Payment or error, in order
	track []any
	sends int
}

func (f *fakeRouter) SendPaymentV2(ctx context.Context, _ *routerrpc.SendPaymentRequest, _ ...grpc.CallOption) (routerrpc.Router_SendPaymentV2Client, error) {
	f.sends++
	return &scripted{ctx: ctx, items: f.send}, nil
}

func (f *fakeRouter) TrackPaymentV2(ctx context.Context, _ *routerrpc.TrackPaymentRequest, _ ...grpc.CallOption) (routerrpc.Router_TrackPaymentV2Client, error) {
	return &scripted{ctx: ctx, items: f.track}, nil
}

type scripted struct {
	grpc.ClientStream
	ctx   context.Context
	items []any
}

func (s *scripted) Recv() (*lnrpc.Payment, error) {
	if len(s.items) == 0 {
		return nil, io.EOF
	}
	item := s.items[0]
	s.items = s.items[1:]
	if err, ok := item.(error); ok {
		return nil, err
	}
	return item.(*lnrpc.Payment), nil
}

// The tests call sendEnded and track directly, with a payment hash.
var (
	testPreimage = [32]byte{1, 2, 3}
	testHash     = func() string { h := sha256.Sum256(testPreimage[:]); return hex.EncodeToString(h[:]) }()
)

func TestLNDMacaroonRefusalsArePermissionDenied(t *testing.T) {
	for _, msg := range []string{"permission denied", "verification failed: signature mismatch after caveat verification", "expected 1 macaroon, got 2"} {
		err := rpcError(t.Context(), "SendPaymentV2", status.Error(codes.Unknown, msg))
		var rpcErr *RPCError
		require.ErrorAs(t, err, &rpcErr)
		assert.Equal(t, codes.PermissionDenied, rpcErr.Code, msg)
		assert.False(t, rpcErr.Retryable())

		// Not a refusal of the invoice: the withdrawal must not fail for
		// a misconfigured macaroon (e.g. a read-only one).
		l := &LND{router: &fakeRouter{}}
		_, err = l.sendEnded(t.Context(), testHash, nil, status.Error(codes.Unknown, msg))
		assert.NotErrorIs(t, err, ErrPaymentRefused, msg)
		require.ErrorAs(t, err, &rpcErr)
		assert.Equal(t, codes.PermissionDenied, rpcErr.Code)
	}
}

func TestRefusalReasonsFromLNDTexts(t *testing.T) {
	for msg, want := range map[string]RefusalReason{
		"invoice expired. Valid until 2026-11-26 16:38:10 +0000 UTC": RefusedExpired,
		"self-payments not allowed":                                  RefusedSelfPayment,
		"amount must be specified when paying a zero amount invoice": RefusedNoAmount,
		"invoice not for current active network 'simnet'":            RefusedInvalidInvoice,
		"timeout_seconds must be specified":                          RefusedInvalidInvoice,
	} {
		assert.Equal(t, want, refusalReason(msg), msg)
	}
}

// A send that fails like a refusal, for a hash the node nevertheless
// recorded, reports the node's payment: never "refused" for money that
// may be moving.
func TestRefusalOfARecordedPaymentIsThePayment(t *testing.T) {
	inflight := &lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_IN_FLIGHT, ValueMsat: 1000}
	succeeded := &lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_SUCCEEDED, ValueMsat: 1000,
		PaymentPreimage: hex.EncodeToString(testPreimage[:])}
	l := &LND{router: &fakeRouter{track: []any{inflight, succeeded}}}
	p, err := l.sendEnded(t.Context(), testHash, nil, status.Error(codes.Unknown, "unable to subscribe to payment"))
	require.NoError(t, err)
	assert.Equal(t, StatusSucceeded, p.Status)
	assert.Equal(t, hex.EncodeToString(testPreimage[:]), p.PreimageHex)

	// Unrecorded: a refusal.
	l = &LND{router: &fakeRouter{track: []any{status.Error(codes.NotFound, "payment isn't initiated")}}}
	_, err = l.sendEnded(t.Context(), testHash, nil, status.Error(codes.Unknown, "self-payments not allowed"))
	var refused *PaymentRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, RefusedSelfPayment, refused.Reason)
	assert.Equal(t, testHash, refused.PaymentHash)
}

// A node claiming success without the preimage of the hash is an error,
// never a succeeded payout.
func TestSucceededWithoutPreimageIsAnError(t *testing.T) {
	_, err := fromRPCPayment(&lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_SUCCEEDED, PaymentPreimage: hex.EncodeToString(make([]byte, 32))})
	require.Error(t, err)
	_, err = fromRPCPayment(&lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_SUCCEEDED, PaymentPreimage: hex.EncodeToString([]byte("not the preimage of the hash...."))})
	require.Error(t, err)
	p, err := fromRPCPayment(&lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_FAILED, FailureReason: lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT,
		PaymentPreimage: hex.EncodeToString(make([]byte, 32))})
	require.NoError(t, err)
	assert.Equal(t, Payment{PaymentHash: testHash, Status: StatusFailed, FailureReason: "FAILURE_REASON_TIMEOUT"}, p)
}

// A stream that ends (EOF) before a terminal update is answered by the
// node's record.
func TestSendStreamEndingEarlyIsLookedUp(t *testing.T) {
	failed := &lnrpc.Payment{PaymentHash: testHash, Status: lnrpc.Payment_FAILED, FailureReason: lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE}
	l := &LND{router: &fakeRouter{track: []any{failed}}}
	last := &Payment{PaymentHash: testHash, Status: StatusInFlight}
	p, err := l.sendEnded(t.Context(), testHash, last, io.EOF)
	require.NoError(t, err)
	assert.Equal(t, StatusFailed, p.Status)
	assert.Equal(t, "FAILURE_REASON_NO_ROUTE", p.FailureReason)
}
