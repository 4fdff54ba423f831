package lnnode

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/zpay32"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// routerServer serves the part of routerrpc.Router billflow's payouts use:
// SendPaymentV2 and TrackPaymentV2, with lnd's checks, refusal texts and
// status codes. It pays only the sandbox's payee (see payee.go); any other
// destination fails with FAILURE_REASON_NO_ROUTE, as an lnd node without a
// route to it would.
type routerServer struct {
	routerrpc.UnimplementedRouterServer
	n *Node
}

// refuse is lnd's answer to a request it will not attempt: a plain error,
// which gRPC sends as codes.Unknown.
func refuse(format string, args ...any) error {
	return status.Error(codes.Unknown, fmt.Sprintf(format, args...))
}

// SendPaymentV2 implements routerrpc.RouterServer. The checks follow lnd's
// extractIntentFromSendRequest in order; a hash already in flight or paid
// is codes.AlreadyExists with lnd's text; then the stream carries an
// IN_FLIGHT update (unless no_inflight_updates) and the terminal one.
func (r *routerServer) SendPaymentV2(req *routerrpc.SendPaymentRequest, stream routerrpc.Router_SendPaymentV2Server) error {
	n := r.n
	if err := stream.Context().Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	switch {
	case req.GetMaxParts() > 1 || req.GetAmp() || len(req.GetOutgoingChanIds()) > 0 || len(req.GetLastHopPubkey()) > 0 || len(req.GetRouteHints()) > 0 || len(req.GetDestCustomRecords()) > 0:
		return status.Error(codes.Unimplemented, "MPP, AMP, channel and hop restrictions, route hints and custom records are not served by the sandbox")
	case req.GetPaymentRequest() == "":
		return status.Error(codes.Unimplemented, "the sandbox pays only payment requests (BOLT11); keysend and raw hashes are not served")
	}
	if _, err := lnrpc.UnmarshallAmt(req.GetFeeLimitSat(), req.GetFeeLimitMsat()); err != nil {
		return refuse("%v", err)
	}
	if req.GetTimeoutSeconds() == 0 {
		return refuse("timeout_seconds must be specified")
	}
	reqAmt, err := lnrpc.UnmarshallAmt(req.GetAmt(), req.GetAmtMsat())
	if err != nil {
		return refuse("%v", err)
	}
	switch {
	case len(req.GetDest()) > 0:
		return refuse("dest and payment_request cannot appear together")
	case len(req.GetPaymentHash()) > 0:
		return refuse("payment_hash and payment_request cannot appear together")
	case req.GetFinalCltvDelta() != 0:
		return refuse("final_cltv_delta and payment_request cannot appear together")
	}
	z, err := zpay32.Decode(req.GetPaymentRequest(), n.net)
	if err != nil {
		return refuse("%v", err)
	}
	if validUntil := z.Timestamp.Add(z.Expiry()); n.now().After(validUntil) {
		return refuse("invoice expired. Valid until %v", validUntil)
	}
	if z.MilliSat == nil {
		if reqAmt == 0 {
			return refuse("amount must be specified when paying a zero amount invoice")
		}
		return status.Error(codes.Unimplemented, "the sandbox pays only invoices that state their amount")
	}
	if reqAmt != 0 {
		return refuse("amount must not be specified when paying a non-zero  amount invoice")
	}
	dest := hex.EncodeToString(z.Destination.SerializeCompressed())
	if dest == n.pubKey {
		if req.GetAllowSelfPayment() {
			return status.Error(codes.Unimplemented, "self-payments (circular routes) are not served by the sandbox")
		}
		return refuse("self-payments not allowed")
	}

	pay, err := n.payouts.send(*z.PaymentHash, req.GetPaymentRequest(), int64(*z.MilliSat), dest == n.payeePub, n.now())
	switch {
	case errors.Is(err, errAlreadyPaid), errors.Is(err, errPaymentInFlight):
		return status.Error(codes.AlreadyExists, err.Error())
	case err != nil:
		return status.Error(codes.Internal, err.Error())
	}
	n.log.InfoContext(stream.Context(), "payment sent", "payment_hash", hex.EncodeToString(pay.Hash[:]), "value_msat", pay.ValueMsat,
		"status", pay.Status.String(), "failure_reason", pay.FailureReason.String())
	if !req.GetNoInflightUpdates() && pay.Status != lnrpc.Payment_IN_FLIGHT {
		// lnd reports the attempt in flight before its outcome.
		inflight := pay
		inflight.Status, inflight.FailureReason, inflight.Preimage = lnrpc.Payment_IN_FLIGHT, lnrpc.PaymentFailureReason_FAILURE_REASON_NONE, [32]byte{}
		if err := stream.Send(paymentToRPC(&inflight)); err != nil {
			return err
		}
	}
	return r.follow(*z.PaymentHash, req.GetNoInflightUpdates(), stream)
}

// follow streams the payment's state, then each change, until a terminal
// state (sent, then the stream ends), the client leaves or the node stops:
// lnd's trackPayment.
func (r *routerServer) follow(hash [32]byte, noInflight bool, stream interface {
	Send(*lnrpc.Payment) error
	Context() context.Context
}) error {
	var last *payment
	for {
		pay, changed, ok := r.n.payouts.payment(hash)
		if !ok {
			return status.Error(codes.NotFound, "payment isn't initiated")
		}
		terminal := pay.Status == lnrpc.Payment_SUCCEEDED || pay.Status == lnrpc.Payment_FAILED
		if (last == nil || *last != pay) && (terminal || !noInflight) {
			if err := stream.Send(paymentToRPC(&pay)); err != nil {
				return err
			}
		}
		if terminal {
			return nil
		}
		last = &pay
		select {
		case <-changed:
		case <-stream.Context().Done():
			if errors.Is(stream.Context().Err(), context.Canceled) {
				return nil
			}
			return status.FromContextError(stream.Context().Err()).Err()
		case <-r.n.quit:
			return status.Error(codes.Unavailable, "node shutting down")
		}
	}
}

// TrackPaymentV2 implements routerrpc.RouterServer: the payment's current
// state, then each change until it is terminal, when the stream ends (as
// on lnd); NotFound (lnd's "payment isn't initiated") for an unknown hash.
func (r *routerServer) TrackPaymentV2(req *routerrpc.TrackPaymentRequest, stream routerrpc.Router_TrackPaymentV2Server) error {
	raw := req.GetPaymentHash()
	if len(raw) != 32 {
		return refuse("invalid hash length of %v, want %v", len(raw), 32)
	}
	return r.follow([32]byte(raw), req.GetNoInflightUpdates(), stream)
}

// paymentToRPC renders a payment as lnd's MarshallPayment does (the fields
// billflow and common clients read). A payment without a settled HTLC
// carries the all-zero preimage, as in lnd.
func paymentToRPC(p *payment) *lnrpc.Payment {
	out := &lnrpc.Payment{
		PaymentHash: hex.EncodeToString(p.Hash[:]),
		//lint:ignore SA1019 deprecated, but lnd still fills it for older clients
		Value:     p.ValueMsat / 1000,
		ValueSat:  p.ValueMsat / 1000,
		ValueMsat: p.ValueMsat,
		//lint:ignore SA1019 deprecated, but lnd still fills it for older clients
		CreationDate:   p.Created.Unix(),
		CreationTimeNs: p.Created.UnixNano(),
		//lint:ignore SA1019 deprecated, but lnd still fills it for older clients
		Fee:             p.FeeMsat / 1000,
		FeeSat:          p.FeeMsat / 1000,
		FeeMsat:         p.FeeMsat,
		PaymentPreimage: hex.EncodeToString(p.Preimage[:]),
		PaymentRequest:  p.PaymentRequest,
		Status:          p.Status,
		PaymentIndex:    p.Index,
		FailureReason:   p.FailureReason,
	}
	if p.Status == lnrpc.Payment_SUCCEEDED {
		out.Htlcs = []*lnrpc.HTLCAttempt{{
			AttemptId:     p.Index,
			Status:        lnrpc.HTLCAttempt_SUCCEEDED,
			AttemptTimeNs: p.Created.UnixNano(),
			ResolveTimeNs: p.Created.Add(time.Millisecond).UnixNano(),
			Preimage:      append([]byte(nil), p.Preimage[:]...),
		}}
	}
	return out
}
