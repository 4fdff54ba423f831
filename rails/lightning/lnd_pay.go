package lightning

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PayInvoice implements Payer with routerrpc.SendPaymentV2: first
// TrackPaymentV2 (so a hash the node already knows is never paid again,
// not even after a failure, which lnd itself would retry), then
// SendPaymentV2, following its updates to the end. A send that lnd
// refuses as a duplicate (in transition, already paid) becomes a lookup.
func (l *LND) PayInvoice(ctx context.Context, req PayRequest) (Payment, error) {
	if l.router == nil {
		return Payment{}, ErrPayoutsNotConfigured
	}
	bolt11 := strings.TrimSpace(req.BOLT11)
	switch {
	case bolt11 == "":
		return Payment{}, fmt.Errorf("%w: no BOLT11 invoice to pay", ErrInvalidRequest)
	case req.MaxFeeMsat < 0:
		return Payment{}, fmt.Errorf("%w: max fee %d msat is negative", ErrInvalidRequest, req.MaxFeeMsat)
	case req.Timeout < 0:
		return Payment{}, fmt.Errorf("%w: payment timeout %s is negative", ErrInvalidRequest, req.Timeout)
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = DefaultPayTimeout
	}
	// lnd counts whole seconds; round up so the node never gives up early.
	secs := (timeout + time.Second - 1) / time.Second
	if secs > math.MaxInt32 {
		return Payment{}, fmt.Errorf("%w: payment timeout %s is too long", ErrInvalidRequest, timeout)
	}
	hash, err := l.invoiceHash(bolt11)
	if err != nil {
		return Payment{}, err
	}

	// A payment the node already has, in any state, is the answer.
	p, err := l.track(ctx, hash, true)
	if !errors.Is(err, ErrPaymentNotFound) {
		return p, err
	}

	stream, err := l.router.SendPaymentV2(ctx, &routerrpc.SendPaymentRequest{
		PaymentRequest: bolt11,
		TimeoutSeconds: int32(secs),
		FeeLimitMsat:   req.MaxFeeMsat,
	})
	if err != nil {
		return Payment{}, rpcError(ctx, "SendPaymentV2", err)
	}
	var last *Payment
	for {
		update, err := stream.Recv()
		if err != nil {
			return l.sendEnded(ctx, hash, last, err)
		}
		p, err := fromRPCPayment(update)
		if err != nil {
			return Payment{}, err
		}
		if p.Status.Terminal() {
			return p, nil
		}
		last = &p
	}
}

// sendEnded decides what a SendPaymentV2 stream that ended with err means.
// last is the latest update received, nil if none.
func (l *LND) sendEnded(ctx context.Context, hash string, last *Payment, err error) (Payment, error) {
	if last != nil && ctx.Err() != nil {
		// The node took the payment and keeps going without us.
		return *last, nil
	}
	if errors.Is(err, io.EOF) {
		// lnd ends the stream after the terminal update; an early end is
		// answered by the node's record.
		return l.track(ctx, hash, true)
	}
	if st, _ := status.FromError(err); last == nil && ctx.Err() == nil && !authRefused(st) {
		switch st.Code() {
		case codes.AlreadyExists:
			// lnd's ErrPaymentInFlight ("payment is in transition"),
			// ErrAlreadyPaid ("invoice is already paid") or ErrPaymentExists:
			// a concurrent or earlier send of the same hash.
			p, terr := l.track(ctx, hash, true)
			if errors.Is(terr, ErrPaymentNotFound) {
				return Payment{}, &PaymentRefusedError{Reason: RefusedAlreadyPaid, PaymentHash: hash, Message: st.Message()}
			}
			return p, terr
		case codes.Unknown, codes.InvalidArgument:
			// lnd checks the request before it records anything and
			// answers a refusal as a plain error (codes.Unknown). Its
			// rarer internal failures look the same, and one of them
			// (after recording the payment) must not pass for "nothing
			// was sent": a refusal is only reported for a hash the node
			// has no payment for.
			p, terr := l.track(ctx, hash, true)
			if errors.Is(terr, ErrPaymentNotFound) {
				return Payment{}, &PaymentRefusedError{Reason: refusalReason(st.Message()), PaymentHash: hash, Message: st.Message()}
			}
			return p, terr
		}
	}
	return Payment{}, rpcError(ctx, "SendPaymentV2", err)
}

// refusalReason classifies lnd's refusal texts (routerrpc's
// extractIntentFromSendRequest).
func refusalReason(msg string) RefusalReason {
	switch {
	case strings.Contains(msg, "invoice expired"):
		return RefusedExpired
	case strings.Contains(msg, "self-payments not allowed"):
		return RefusedSelfPayment
	case strings.Contains(msg, "zero amount invoice"):
		return RefusedNoAmount
	case strings.Contains(msg, "invoice is already paid"):
		return RefusedAlreadyPaid
	default:
		return RefusedInvalidInvoice
	}
}

// LookupPayment implements Payer with routerrpc.TrackPaymentV2, taking
// the first update: the payment's current state.
func (l *LND) LookupPayment(ctx context.Context, paymentHash string) (Payment, error) {
	if l.router == nil {
		return Payment{}, ErrPayoutsNotConfigured
	}
	raw, err := hex.DecodeString(paymentHash)
	if err != nil || len(raw) != 32 {
		return Payment{}, fmt.Errorf("%w: payment hash %q is not 32 hex-encoded bytes", ErrInvalidRequest, paymentHash)
	}
	return l.track(ctx, hex.EncodeToString(raw), false)
}

// track returns the node's payment for hash (valid lowercase hex): its
// current state, or with wait its first terminal state (or, when ctx ends
// first, the in-flight state last seen, without error).
func (l *LND) track(ctx context.Context, hash string, wait bool) (Payment, error) {
	raw, _ := hex.DecodeString(hash)
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := l.router.TrackPaymentV2(streamCtx, &routerrpc.TrackPaymentRequest{PaymentHash: raw})
	if err != nil {
		return Payment{}, trackError(ctx, hash, err)
	}
	var last *Payment
	for {
		update, err := stream.Recv()
		if err != nil {
			switch {
			case last != nil && (ctx.Err() != nil || errors.Is(err, io.EOF)):
				return *last, nil
			case errors.Is(err, io.EOF):
				return Payment{}, &RPCError{Method: "TrackPaymentV2", Code: codes.Unavailable, Message: "stream ended without the payment"}
			}
			return Payment{}, trackError(ctx, hash, err)
		}
		p, err := fromRPCPayment(update)
		if err != nil {
			return Payment{}, err
		}
		if p.PaymentHash != hash {
			return Payment{}, fmt.Errorf("lightning: node answered TrackPaymentV2 for %s with payment %s", hash, p.PaymentHash)
		}
		if !wait || p.Status.Terminal() {
			return p, nil
		}
		last = &p
	}
}

func trackError(ctx context.Context, hash string, err error) error {
	if st, _ := status.FromError(err); st.Code() == codes.NotFound {
		return fmt.Errorf("%w: %s", ErrPaymentNotFound, hash)
	}
	return rpcError(ctx, "TrackPaymentV2", err)
}

// invoiceHash decodes bolt11 for its hex payment hash, on the client's
// network if configured, else on any known one (the node checks the
// network itself). An undecodable invoice is refused here.
func (l *LND) invoiceHash(bolt11 string) (string, error) {
	nets := knownNetworks
	if l.network != nil {
		nets = []*chaincfg.Params{l.network}
	}
	var firstErr error
	for _, net := range nets {
		inv, err := decode(bolt11, net)
		if err == nil && inv.PaymentHash != nil {
			return hex.EncodeToString(inv.PaymentHash[:]), nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if l.network != nil {
		return "", &PaymentRefusedError{Reason: RefusedInvalidInvoice, Message: fmt.Sprintf("not a BOLT11 invoice for %s: %v", l.network.Name, firstErr)}
	}
	return "", &PaymentRefusedError{Reason: RefusedInvalidInvoice, Message: fmt.Sprintf("not a BOLT11 invoice: %v", firstErr)}
}

var zeroPreimage = make([]byte, 32)

// fromRPCPayment maps lnd's payment; a succeeded one must carry the
// preimage of its hash.
func fromRPCPayment(p *lnrpc.Payment) (Payment, error) {
	out := Payment{
		PaymentHash: strings.ToLower(p.GetPaymentHash()),
		AmountMsat:  p.GetValueMsat(),
		FeeMsat:     p.GetFeeMsat(),
	}
	switch p.GetStatus() {
	case lnrpc.Payment_SUCCEEDED:
		out.Status = StatusSucceeded
	case lnrpc.Payment_FAILED:
		out.Status = StatusFailed
		out.FailureReason = p.GetFailureReason().String()
	case lnrpc.Payment_IN_FLIGHT, lnrpc.Payment_INITIATED:
		out.Status = StatusInFlight
	default:
		return Payment{}, fmt.Errorf("lightning: payment %s has unknown status %s", out.PaymentHash, p.GetStatus())
	}
	if pre, err := hex.DecodeString(p.GetPaymentPreimage()); err == nil && len(pre) == 32 && !bytes.Equal(pre, zeroPreimage) {
		out.PreimageHex = hex.EncodeToString(pre)
	}
	if out.Status == StatusSucceeded {
		sum := sha256.Sum256(mustHex(out.PreimageHex))
		if out.PreimageHex == "" || hex.EncodeToString(sum[:]) != out.PaymentHash {
			return Payment{}, fmt.Errorf("lightning: node reports payment %s succeeded without its preimage", out.PaymentHash)
		}
	}
	return out, nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
