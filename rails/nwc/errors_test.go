package nwc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRetryable(t *testing.T) {
	wallet := func(code ErrorCode) error {
		return fmt.Errorf("activity: %w", &WalletError{Method: MethodPayInvoice, Code: code, Message: "m"})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"rate limited", wallet(CodeRateLimited), true},
		{"internal", wallet(CodeInternal), true},
		{"insufficient balance", wallet(CodeInsufficientBalance), false},
		{"quota exceeded", wallet(CodeQuotaExceeded), false},
		{"restricted", wallet(CodeRestricted), false},
		{"unauthorized", wallet(CodeUnauthorized), false},
		{"payment failed", wallet(CodePaymentFailed), false},
		{"not implemented", wallet(CodeNotImplemented), false},
		{"not found", wallet(CodeNotFound), false},
		{"other", wallet(CodeOther), false},
		{"unsupported encryption", wallet(CodeUnsupportedEncryption), false},
		{"unknown code", wallet("SOMETHING_NEW"), false},
		{"transport", &TransportError{Op: "connect", Err: errors.New("refused")}, true},
		{"transport after caller cancelled", &TransportError{Op: "connect", Err: context.Canceled}, false},
		{"unknown pay outcome", &UnknownOutcomeError{Method: MethodPayInvoice, Reason: "timeout"}, false},
		{"unknown make_invoice outcome", &UnknownOutcomeError{Method: MethodMakeInvoice, Reason: "timeout"}, false},
		{"unknown balance outcome", &UnknownOutcomeError{Method: MethodGetBalance, Reason: "timeout"}, true},
		{"unknown lookup outcome", &UnknownOutcomeError{Method: MethodLookupInvoice, Reason: "timeout"}, true},
		{"unknown lookup, caller cancelled", &UnknownOutcomeError{Method: MethodLookupInvoice, Err: context.Canceled}, false},
		{"closed", ErrClosed, false},
		{"parse", &ParseError{Field: "secret", Reason: "missing"}, false},
		{"invalid request", fmt.Errorf("%w: x", ErrInvalidRequest), false},
		{"plain", errors.New("boom"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Retryable(tc.err))
		})
	}
}

func TestWalletErrorMatchesCodeSentinels(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &WalletError{Method: MethodPayInvoice, Code: CodeInsufficientBalance, Message: "low"})
	assert.ErrorIs(t, err, ErrInsufficientBalance)
	assert.NotErrorIs(t, err, ErrRateLimited)
	assert.NotErrorIs(t, err, ErrUnknownOutcome)
	assert.Equal(t, "nwc: pay_invoice: wallet error INSUFFICIENT_BALANCE: low", errors.Unwrap(err).Error())

	uo := &UnknownOutcomeError{Method: MethodPayInvoice, RequestID: "abc", Reason: "no answer", Err: context.DeadlineExceeded}
	assert.ErrorIs(t, uo, ErrUnknownOutcome)
	assert.ErrorIs(t, uo, context.DeadlineExceeded)
	assert.NotErrorIs(t, uo, ErrPaymentFailed, "unknown is not failed")
	assert.ErrorIs(t, &TransportError{Op: "publish"}, ErrTransport)
}

func TestSanitizeMessage(t *testing.T) {
	assert.Equal(t, "a b", sanitizeMessage(" a\nb\x00"))
	long := strings.Repeat("é", 500)
	got := sanitizeMessage(long)
	assert.LessOrEqual(t, len(got), maxWalletMessage+len("…"))
	assert.True(t, strings.HasSuffix(got, "…"))
	assert.NotContains(t, got, "\uFFFD", "cut on a rune boundary")
}

func TestSanitizeCode(t *testing.T) {
	assert.Equal(t, CodeRateLimited, sanitizeCode("RATE_LIMITED"))
	assert.Equal(t, ErrorCode("SOMETHING_NEW"), sanitizeCode("SOMETHING_NEW"))
	assert.Equal(t, CodeOther, sanitizeCode(""))
	assert.Equal(t, CodeOther, sanitizeCode("rate limited\nINJECTED"))
	assert.Equal(t, CodeOther, sanitizeCode(ErrorCode(strings.Repeat("A", 65))))
}
