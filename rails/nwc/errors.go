package nwc

import (
	"context"
	"errors"
	"strings"
	"unicode"
)

// ErrorCode is a NIP-47 error code as a wallet service returns it.
type ErrorCode string

// The NIP-47 error codes.
const (
	CodeRateLimited           ErrorCode = "RATE_LIMITED"
	CodeNotImplemented        ErrorCode = "NOT_IMPLEMENTED"
	CodeInsufficientBalance   ErrorCode = "INSUFFICIENT_BALANCE"
	CodeQuotaExceeded         ErrorCode = "QUOTA_EXCEEDED"
	CodeRestricted            ErrorCode = "RESTRICTED"
	CodeUnauthorized          ErrorCode = "UNAUTHORIZED"
	CodeInternal              ErrorCode = "INTERNAL"
	CodeOther                 ErrorCode = "OTHER"
	CodePaymentFailed         ErrorCode = "PAYMENT_FAILED"
	CodeNotFound              ErrorCode = "NOT_FOUND"
	CodeUnsupportedEncryption ErrorCode = "UNSUPPORTED_ENCRYPTION"
)

// Sentinels for errors.Is: a *WalletError matches the sentinel of its code,
// e.g. errors.Is(err, ErrInsufficientBalance).
var (
	ErrRateLimited           = &WalletError{Code: CodeRateLimited}
	ErrNotImplemented        = &WalletError{Code: CodeNotImplemented}
	ErrInsufficientBalance   = &WalletError{Code: CodeInsufficientBalance}
	ErrQuotaExceeded         = &WalletError{Code: CodeQuotaExceeded}
	ErrRestricted            = &WalletError{Code: CodeRestricted}
	ErrUnauthorized          = &WalletError{Code: CodeUnauthorized}
	ErrInternal              = &WalletError{Code: CodeInternal}
	ErrOther                 = &WalletError{Code: CodeOther}
	ErrPaymentFailed         = &WalletError{Code: CodePaymentFailed}
	ErrNotFound              = &WalletError{Code: CodeNotFound}
	ErrUnsupportedEncryption = &WalletError{Code: CodeUnsupportedEncryption}
)

var (
	// ErrInvalidConnection matches every *ParseError.
	ErrInvalidConnection = errors.New("nwc: invalid connection")
	// ErrUnknownOutcome matches every *UnknownOutcomeError.
	ErrUnknownOutcome = errors.New("nwc: outcome unknown")
	// ErrTransport matches every *TransportError.
	ErrTransport = errors.New("nwc: relay transport failed")
	// ErrClosed is returned by a Client after Close.
	ErrClosed = errors.New("nwc: client closed")
	// ErrRelayClosed is why a relay connection or subscription ended when
	// it was closed on purpose.
	ErrRelayClosed = errors.New("nwc: relay connection closed")
)

// maxWalletMessage bounds how much of a wallet's free-text message we keep.
const maxWalletMessage = 256

// WalletError is an error the wallet service answered with (or, when Local
// is set, one the client concluded from the wallet's info event without
// sending anything).
type WalletError struct {
	// Method is the NIP-47 method that failed.
	Method string
	// Code is the wallet's error code.
	Code ErrorCode
	// Message is the wallet's human-readable message, sanitised.
	Message string
	// Local reports that the request was never sent.
	Local bool
}

// Error implements error.
func (e *WalletError) Error() string {
	var b strings.Builder
	b.WriteString("nwc: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	b.WriteString("wallet error ")
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches the code sentinels (ErrRateLimited, ...) by code.
func (e *WalletError) Is(target error) bool {
	t, ok := target.(*WalletError)
	if !ok || t.Method != "" || t.Message != "" {
		return false
	}
	return t.Code == e.Code
}

// sanitizeMessage keeps a wallet's message printable and short: it ends up
// in logs and workflow histories.
func sanitizeMessage(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxWalletMessage {
		cut := maxWalletMessage
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// sanitizeCode keeps a wallet's code to the NIP-47 shape (A-Z and _); any
// other string becomes OTHER rather than flow into logs verbatim.
func sanitizeCode(c ErrorCode) ErrorCode {
	if len(c) == 0 || len(c) > 64 {
		return CodeOther
	}
	for _, r := range c {
		if (r < 'A' || r > 'Z') && r != '_' {
			return CodeOther
		}
	}
	return c
}

// UnknownOutcomeError means the request may have reached the wallet but no
// usable answer came back: a timeout, a lost relay, a cancelled context, an
// undecodable reply, or a preimage that does not prove payment. For
// pay_invoice the payment may or may not have happened: check settlement
// before retrying or failing over to another rail.
type UnknownOutcomeError struct {
	// Method is the NIP-47 method whose outcome is unknown.
	Method string
	// RequestID is the id of the request event, for correlating with the wallet.
	RequestID string
	// Reason says why the outcome is unknown.
	Reason string
	// Err is the underlying cause, if any (e.g. context.DeadlineExceeded).
	Err error
}

// Error implements error.
func (e *UnknownOutcomeError) Error() string {
	s := "nwc: " + e.Method + ": outcome unknown (request " + e.RequestID + "): " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrUnknownOutcome) true.
func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrUnknownOutcome }

// Unwrap exposes the cause (e.g. context.DeadlineExceeded).
func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// TransportError means the request certainly did not reach the wallet: no
// relay could be reached, subscribed to, or would accept the event.
type TransportError struct {
	// Op is what failed: connect, subscribe, publish, info.
	Op string
	// Err is the cause; relay URLs may appear in it, secrets never do.
	Err error
}

// Error implements error.
func (e *TransportError) Error() string {
	if e.Err == nil {
		return "nwc: " + e.Op + " failed"
	}
	return "nwc: " + e.Op + ": " + e.Err.Error()
}

// Is makes errors.Is(err, ErrTransport) true.
func (e *TransportError) Is(target error) bool { return target == ErrTransport }

// Unwrap exposes the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// readOnly methods can be repeated without side effects, so an unknown
// outcome for them is just a failed read.
var readOnly = map[string]bool{
	MethodGetBalance:    true,
	MethodGetInfo:       true,
	MethodLookupInvoice: true,
}

// Retryable reports whether simply sending the same request again is
// sensible: true for RATE_LIMITED, INTERNAL, transport failures and unknown
// outcomes of read-only methods; false for everything else, notably
// INSUFFICIENT_BALANCE, QUOTA_EXCEEDED, RESTRICTED, UNAUTHORIZED,
// PAYMENT_FAILED and NOT_IMPLEMENTED, for invalid connections, for a
// cancelled context, and for an unknown outcome of pay_invoice or
// make_invoice (check settlement first).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var we *WalletError
	if errors.As(err, &we) {
		return we.Code == CodeRateLimited || we.Code == CodeInternal
	}
	var uo *UnknownOutcomeError
	if errors.As(err, &uo) {
		return readOnly[uo.Method] && !errors.Is(err, context.Canceled)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		return false
	}
	return errors.Is(err, ErrTransport)
}
