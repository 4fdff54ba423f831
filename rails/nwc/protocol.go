package nwc

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// NIP-47 event kinds.
const (
	// KindInfo is the wallet service's replaceable capabilities event.
	KindInfo = 13194
	// KindRequest is a client's encrypted request.
	KindRequest = 23194
	// KindResponse is the wallet service's encrypted response.
	KindResponse = 23195
)

// NIP-47 methods this package speaks.
const (
	MethodPayInvoice    = "pay_invoice"
	MethodMakeInvoice   = "make_invoice"
	MethodLookupInvoice = "lookup_invoice"
	MethodGetBalance    = "get_balance"
	MethodGetInfo       = "get_info"
)

// Encryption is a payload encryption scheme as named in NIP-47 tags.
type Encryption string

// The schemes NIP-47 allows. NIP-04 is the legacy default: a request or info
// event without an "encryption" tag means NIP-04.
const (
	EncryptionNIP44v2 Encryption = "nip44_v2"
	EncryptionNIP04   Encryption = "nip04"
)

// Tag names NIP-47 and NIP-40 use.
const (
	tagEncryption    = "encryption"
	tagExpiration    = "expiration"
	tagNotifications = "notifications"
)

// Request is the decrypted content of a kind 23194 event.
type Request struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// Response is the decrypted content of a kind 23195 event.
type Response struct {
	ResultType string          `json:"result_type"`
	Error      *ResponseError  `json:"error,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// ResponseError is the error object of a Response.
type ResponseError struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

// PayInvoiceRequest asks the wallet to pay a BOLT11 invoice.
type PayInvoiceRequest struct {
	// Invoice is the BOLT11 payment request.
	Invoice string `json:"invoice"`
	// AmountMsat is only for invoices without an amount; 0 omits it.
	AmountMsat int64 `json:"amount,omitempty"`
}

// PayInvoiceResult proves a payment.
type PayInvoiceResult struct {
	// Preimage is the hex payment preimage; sha256 of it is the payment hash.
	Preimage string `json:"preimage"`
	// FeesPaidMsat is what routing cost, when the wallet says.
	FeesPaidMsat int64 `json:"fees_paid,omitempty"`
}

// MakeInvoiceRequest asks the wallet to create an invoice paying it.
type MakeInvoiceRequest struct {
	AmountMsat      int64
	Description     string
	DescriptionHash string
	// Expiry is rounded down to whole seconds on the wire; 0 omits it.
	Expiry time.Duration
}

type makeInvoiceWire struct {
	Amount          int64  `json:"amount"`
	Description     string `json:"description,omitempty"`
	DescriptionHash string `json:"description_hash,omitempty"`
	Expiry          int64  `json:"expiry,omitempty"`
}

// MarshalJSON writes NIP-47's wire form (expiry in seconds).
func (r MakeInvoiceRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(makeInvoiceWire{
		Amount: r.AmountMsat, Description: r.Description,
		DescriptionHash: r.DescriptionHash, Expiry: int64(r.Expiry / time.Second),
	})
}

// UnmarshalJSON reads NIP-47's wire form.
func (r *MakeInvoiceRequest) UnmarshalJSON(b []byte) error {
	var w makeInvoiceWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = MakeInvoiceRequest{
		AmountMsat: w.Amount, Description: w.Description,
		DescriptionHash: w.DescriptionHash, Expiry: time.Duration(w.Expiry) * time.Second,
	}
	return nil
}

// LookupInvoiceRequest finds an invoice or payment by hash or by invoice.
type LookupInvoiceRequest struct {
	PaymentHash string `json:"payment_hash,omitempty"`
	Invoice     string `json:"invoice,omitempty"`
}

// Transaction types in Transaction.Type.
const (
	TransactionIncoming = "incoming"
	TransactionOutgoing = "outgoing"
)

// Transaction is an invoice (incoming) or a payment (outgoing) as
// make_invoice and lookup_invoice return it. Times are whole seconds on the
// wire; zero times are absent.
type Transaction struct {
	Type            string
	Invoice         string
	Description     string
	DescriptionHash string
	Preimage        string
	PaymentHash     string
	AmountMsat      int64
	FeesPaidMsat    int64
	CreatedAt       time.Time
	ExpiresAt       time.Time
	SettledAt       time.Time
	Metadata        json.RawMessage
}

// Settled reports whether the wallet says the transaction settled.
func (t Transaction) Settled() bool { return !t.SettledAt.IsZero() }

type transactionWire struct {
	Type            string          `json:"type"`
	Invoice         string          `json:"invoice,omitempty"`
	Description     string          `json:"description,omitempty"`
	DescriptionHash string          `json:"description_hash,omitempty"`
	Preimage        string          `json:"preimage,omitempty"`
	PaymentHash     string          `json:"payment_hash"`
	Amount          int64           `json:"amount"`
	FeesPaid        int64           `json:"fees_paid"`
	CreatedAt       int64           `json:"created_at"`
	ExpiresAt       int64           `json:"expires_at,omitempty"`
	SettledAt       int64           `json:"settled_at,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// MarshalJSON writes NIP-47's wire form.
func (t Transaction) MarshalJSON() ([]byte, error) {
	return json.Marshal(transactionWire{
		Type: t.Type, Invoice: t.Invoice, Description: t.Description,
		DescriptionHash: t.DescriptionHash, Preimage: t.Preimage, PaymentHash: t.PaymentHash,
		Amount: t.AmountMsat, FeesPaid: t.FeesPaidMsat, CreatedAt: unixOrZero(t.CreatedAt),
		ExpiresAt: unixOrZero(t.ExpiresAt), SettledAt: unixOrZero(t.SettledAt), Metadata: t.Metadata,
	})
}

// UnmarshalJSON reads NIP-47's wire form.
func (t *Transaction) UnmarshalJSON(b []byte) error {
	var w transactionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Transaction{
		Type: w.Type, Invoice: w.Invoice, Description: w.Description,
		DescriptionHash: w.DescriptionHash, Preimage: w.Preimage, PaymentHash: w.PaymentHash,
		AmountMsat: w.Amount, FeesPaidMsat: w.FeesPaid, CreatedAt: timeOrZero(w.CreatedAt),
		ExpiresAt: timeOrZero(w.ExpiresAt), SettledAt: timeOrZero(w.SettledAt), Metadata: w.Metadata,
	}
	return nil
}

// BalanceResult is get_balance's answer.
type BalanceResult struct {
	// BalanceMsat is the spendable balance in millisatoshis.
	BalanceMsat int64 `json:"balance"`
}

// InfoResult is get_info's answer.
type InfoResult struct {
	Alias         string   `json:"alias,omitempty"`
	Color         string   `json:"color,omitempty"`
	Pubkey        string   `json:"pubkey,omitempty"`
	Network       string   `json:"network,omitempty"`
	BlockHeight   uint32   `json:"block_height,omitempty"`
	BlockHash     string   `json:"block_hash,omitempty"`
	Methods       []string `json:"methods"`
	Notifications []string `json:"notifications,omitempty"`
}

// WalletInfo is what a wallet service's info event (kind 13194) advertises.
type WalletInfo struct {
	// Methods are the supported NIP-47 methods.
	Methods []string
	// Encryptions are the supported schemes; NIP-04 alone when the event has
	// no encryption tag.
	Encryptions []Encryption
	// Notifications are the supported notification types.
	Notifications []string
	// CreatedAt is when the wallet published the event.
	CreatedAt time.Time
}

// Supports reports whether the wallet advertises method.
func (i WalletInfo) Supports(method string) bool { return slices.Contains(i.Methods, method) }

// Preferred picks NIP-44 v2 when advertised, else NIP-04.
func (i WalletInfo) Preferred() Encryption {
	if slices.Contains(i.Encryptions, EncryptionNIP44v2) {
		return EncryptionNIP44v2
	}
	return EncryptionNIP04
}

// ParseInfoEvent reads a kind 13194 event. It does not check the signature;
// the relay layer does.
func ParseInfoEvent(ev *nostr.Event) (WalletInfo, error) {
	if ev == nil || ev.Kind != KindInfo {
		return WalletInfo{}, errors.New("nwc: not a NIP-47 info event")
	}
	info := WalletInfo{Methods: strings.Fields(ev.Content), CreatedAt: ev.CreatedAt.Time()}
	for _, t := range ev.Tags {
		if len(t) < 2 {
			continue
		}
		// Values are space-separated in one element by the spec; some
		// wallets put one per element, so read both shapes.
		vals := strings.Fields(strings.Join(t[1:], " "))
		switch t[0] {
		case tagEncryption:
			for _, v := range vals {
				if e := Encryption(v); !slices.Contains(info.Encryptions, e) {
					info.Encryptions = append(info.Encryptions, e)
				}
			}
		case tagNotifications:
			info.Notifications = append(info.Notifications, vals...)
		}
	}
	if len(info.Encryptions) == 0 {
		info.Encryptions = []Encryption{EncryptionNIP04}
	}
	return info, nil
}

// InfoEvent builds the unsigned kind 13194 event advertising info.
func InfoEvent(info WalletInfo) nostr.Event {
	ev := nostr.Event{Kind: KindInfo, CreatedAt: nostr.Now(), Content: strings.Join(info.Methods, " "), Tags: nostr.Tags{}}
	if len(info.Encryptions) > 0 {
		encs := make([]string, len(info.Encryptions))
		for i, e := range info.Encryptions {
			encs[i] = string(e)
		}
		ev.Tags = append(ev.Tags, nostr.Tag{tagEncryption, strings.Join(encs, " ")})
	}
	if len(info.Notifications) > 0 {
		ev.Tags = append(ev.Tags, nostr.Tag{tagNotifications, strings.Join(info.Notifications, " ")})
	}
	return ev
}

// RequestEncryption is the scheme a request event declares (NIP-04 when it
// has no encryption tag).
func RequestEncryption(ev *nostr.Event) Encryption {
	if t := ev.Tags.GetFirst([]string{tagEncryption}); t != nil && len(*t) >= 2 {
		return Encryption(strings.TrimSpace((*t)[1]))
	}
	return EncryptionNIP04
}

// Expiration is the NIP-40 expiration of ev, and whether it has one.
func Expiration(ev *nostr.Event) (time.Time, bool) {
	t := ev.Tags.GetFirst([]string{tagExpiration})
	if t == nil || len(*t) < 2 {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt((*t)[1], 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}
