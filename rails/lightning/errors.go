package lightning

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrInvoiceNotFound is returned by LookupInvoice when the node does not know
// the payment hash.
var ErrInvoiceNotFound = errors.New("lightning: invoice not found")

// ErrInvalidRequest marks a request rejected before it reached the node
// (bad amount, expiry, memo or payment hash). Retrying it cannot succeed.
var ErrInvalidRequest = errors.New("lightning: invalid request")

// ErrSubscriptionClosed is returned by SubscribeSettled when the node ends
// the stream while the caller still wants it; the caller resubscribes from
// the last settle index it persisted.
var ErrSubscriptionClosed = errors.New("lightning: invoice subscription closed by the node")

// ErrUnknownCurrency is returned by a RateSource asked for a currency it has
// no rate for.
var ErrUnknownCurrency = errors.New("lightning: no exchange rate for currency")

// RPCError is a failed call to the node. It carries the gRPC status code so
// that callers can tell transient failures (Retryable) from permanent ones
// such as a rejected macaroon. Its message is the node's; the client never
// adds credentials to it.
type RPCError struct {
	// Method is the lnrpc method, e.g. "AddInvoice".
	Method string
	// Code is the gRPC status code of the failure.
	Code codes.Code
	// Message is the node's description of the failure.
	Message string
	// cause is the caller's context error when the call ended because the
	// context did, so errors.Is(err, context.DeadlineExceeded) works.
	cause error
}

// Error implements error.
func (e *RPCError) Error() string {
	return fmt.Sprintf("lightning: %s failed: %s: %s", e.Method, e.Code, e.Message)
}

// Unwrap exposes the caller's context error, if the call ended with it.
func (e *RPCError) Unwrap() error { return e.cause }

// Retryable reports whether the same call may succeed later: the node was
// unreachable, overloaded or slow. A timeout is ambiguous for writes (the
// node may have applied it), so callers of CreateInvoice must reconcile
// rather than assume failure.
func (e *RPCError) Retryable() bool {
	switch e.Code {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
		return true
	default:
		return false
	}
}

// authRefused recognises lnd's macaroon refusals. lnd sends them as plain
// errors (codes.Unknown: "permission denied", "verification failed: ...",
// "expected 1 macaroon, got 2"), so rpcError reports them as
// codes.PermissionDenied, as the sandbox does, and PayInvoice never takes
// one for a refusal of the invoice.
func authRefused(st *status.Status) bool {
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		return true
	case codes.Unknown:
		msg := st.Message()
		return msg == "permission denied" || strings.HasPrefix(msg, "verification failed") || strings.Contains(msg, "macaroon")
	default:
		return false
	}
}

// rpcError converts a gRPC failure of method into an *RPCError. ctx is the
// caller's context: when it has ended, its error becomes the cause.
func rpcError(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	e := &RPCError{Method: method, Code: st.Code(), Message: st.Message()}
	if authRefused(st) {
		e.Code = codes.PermissionDenied
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.cause = ctxErr
	}
	return e
}
