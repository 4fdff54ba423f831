package activities

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
)

func TestSummarize(t *testing.T) {
	require.Equal(t, "NWC: wallet said no", Summarize("  NWC:\n\twallet   said\r\nno  "))
	exact := strings.Repeat("x", 240)
	require.Equal(t, exact, Summarize(exact), "240 characters stay whole")
	long := strings.Repeat("é", 300)
	got := Summarize(long)
	require.Equal(t, 240, utf8.RuneCountInString(got))
	require.True(t, strings.HasSuffix(got, "..."))
	require.Equal(t, strings.Repeat("é", 237), strings.TrimSuffix(got, "..."))
	require.Empty(t, Summarize(" \n "))
}

func TestPaymentMessage(t *testing.T) {
	inv := store.Invoice{ID: "inv-1", Total: 2050, Currency: "usd"}
	msg := PaymentMessage("https://app.example/account?invoice=inv-1", inv, "card declined\n(insufficient_funds)", false)
	require.Equal(t, "Payment of 20.50 USD is due for invoice inv-1. Open the link below to review it and pay by Lightning or card:\n\n"+
		"https://app.example/account?invoice=inv-1\n\nAuto-payment failed: card declined (insufficient_funds)", msg)
	plain := PaymentMessage("https://pay.example/pay/tok", inv, "", true)
	require.True(t, strings.HasPrefix(plain, "Reminder: payment of 20.50 USD"))
	require.NotContains(t, plain, "Auto-payment failed")
	long := PaymentMessage("https://pay.example/pay/tok", inv, strings.Repeat("e ", 400), false)
	line := long[strings.Index(long, "Auto-payment failed: ")+len("Auto-payment failed: "):]
	require.Len(t, line, 240)
}

func TestPreimageMatches(t *testing.T) {
	pre := strings.Repeat("ab", 32)
	raw, _ := hex.DecodeString(pre)
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])
	require.True(t, preimageMatches(pre, hash))
	require.True(t, preimageMatches(pre, strings.ToUpper(hash)))
	require.False(t, preimageMatches(strings.Repeat("cd", 32), hash))
	require.False(t, preimageMatches("zz", hash))
	require.False(t, preimageMatches(pre[:62], hash))
}
