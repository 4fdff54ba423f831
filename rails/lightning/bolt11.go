package lightning

import (
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"
)

// Expectation is what a BOLT11 invoice must satisfy to be accepted.
type Expectation struct {
	// Network the invoice must be for (e.g. &chaincfg.RegressionNetParams).
	Network *chaincfg.Params
	// AmountMsat the invoice must ask for, exactly. Must be positive:
	// billflow never hands out or pays amount-less invoices.
	AmountMsat int64
	// Now is the instant the invoice must still be payable at; the zero
	// value means time.Now(). Pass it explicitly where determinism matters.
	Now time.Time
	// Payee optionally pins the node that must have signed the invoice (hex
	// compressed public key). Without it any valid signature is accepted,
	// because BOLT11 recovers the payee from the signature.
	Payee string
}

// Decoded is the part of a validated BOLT11 invoice billflow relies on.
type Decoded struct {
	// PaymentHash is hex encoded, as in Invoice.
	PaymentHash string
	AmountMsat  int64
	// Network is the chaincfg name of the invoice's network ("regtest").
	Network string
	// Payee is the hex compressed public key of the signing node.
	Payee string
	// Description is the invoice's description; empty when the invoice
	// commits to a description hash instead.
	Description string
	// DescriptionHash is the hex SHA-256 of a description, when the invoice
	// carries one instead of a description.
	DescriptionHash string
	CreatedAt       time.Time
	Expiry          time.Duration
	// ExpiresAt is CreatedAt + Expiry: from this instant on the invoice is
	// no longer payable.
	ExpiresAt time.Time
}

// InvalidReason says why a BOLT11 invoice was rejected.
type InvalidReason int

// Reasons a BOLT11 invoice is rejected.
const (
	// ReasonMalformed: not decodable as BOLT11 (encoding, checksum, fields
	// or signature).
	ReasonMalformed InvalidReason = iota + 1
	// ReasonWrongNetwork: a valid invoice for another network.
	ReasonWrongNetwork
	// ReasonWrongPayee: signed by a node other than Expectation.Payee.
	ReasonWrongPayee
	// ReasonMissingAmount: the invoice lets the payer choose the amount.
	ReasonMissingAmount
	// ReasonAmountMismatch: the invoice asks for another amount.
	ReasonAmountMismatch
	// ReasonExpired: the invoice's expiry has passed.
	ReasonExpired
)

// String names the reason as it appears in error messages.
func (r InvalidReason) String() string {
	switch r {
	case ReasonMalformed:
		return "malformed"
	case ReasonWrongNetwork:
		return "wrong network"
	case ReasonWrongPayee:
		return "wrong payee"
	case ReasonMissingAmount:
		return "missing amount"
	case ReasonAmountMismatch:
		return "amount mismatch"
	case ReasonExpired:
		return "expired"
	default:
		return fmt.Sprintf("InvalidReason(%d)", int(r))
	}
}

// InvalidInvoiceError is returned by ValidateBOLT11 for an invoice that must
// not be paid or handed out. The invoice string itself is not repeated.
type InvalidInvoiceError struct {
	Reason InvalidReason
	// Detail explains the rejection (decoder message, amounts, instants).
	Detail string
}

// Error implements error.
func (e *InvalidInvoiceError) Error() string {
	return fmt.Sprintf("lightning: invalid BOLT11 invoice (%s): %s", e.Reason, e.Detail)
}

func invalid(reason InvalidReason, format string, args ...any) error {
	return &InvalidInvoiceError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// knownNetworks are tried, after a failed decode, to tell an invoice for
// another network from a malformed one. zpay32 alone cannot: it compares HRP
// prefixes, and mainnet's "bc" is a prefix of regtest's "bcrt".
var knownNetworks = []*chaincfg.Params{
	&chaincfg.MainNetParams,
	&chaincfg.TestNet3Params,
	&chaincfg.SigNetParams,
	&chaincfg.RegressionNetParams,
	&chaincfg.SimNetParams,
}

// ValidateBOLT11 decodes a BOLT11 invoice and checks it against want:
// signature and encoding, network, payee (if pinned), an amount equal to
// want.AmountMsat, and expiry (rejected once CreatedAt+Expiry <= Now).
// Rejections are *InvalidInvoiceError; a malformed expectation is an error
// wrapping ErrInvalidRequest.
func ValidateBOLT11(bolt11 string, want Expectation) (Decoded, error) {
	if want.Network == nil {
		return Decoded{}, fmt.Errorf("%w: expectation has no network", ErrInvalidRequest)
	}
	if want.AmountMsat <= 0 {
		return Decoded{}, fmt.Errorf("%w: expected amount %d msat is not positive", ErrInvalidRequest, want.AmountMsat)
	}
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}

	inv, err := decode(bolt11, want.Network)
	if err != nil {
		for _, net := range knownNetworks {
			if net.Name == want.Network.Name {
				continue
			}
			if _, otherErr := decode(bolt11, net); otherErr == nil {
				return Decoded{}, invalid(ReasonWrongNetwork, "invoice is for %s, expected %s", net.Name, want.Network.Name)
			}
		}
		return Decoded{}, invalid(ReasonMalformed, "%v", err)
	}
	if inv.PaymentHash == nil || inv.Destination == nil {
		// zpay32 guarantees both on success; checked so a future change
		// there cannot turn into a nil dereference here.
		return Decoded{}, invalid(ReasonMalformed, "no payment hash or payee")
	}

	d := Decoded{
		PaymentHash: hex.EncodeToString(inv.PaymentHash[:]),
		Network:     want.Network.Name,
		Payee:       hex.EncodeToString(inv.Destination.SerializeCompressed()),
		CreatedAt:   inv.Timestamp.UTC(),
		Expiry:      inv.Expiry(),
	}
	if inv.Description != nil {
		d.Description = *inv.Description
	}
	if inv.DescriptionHash != nil {
		d.DescriptionHash = hex.EncodeToString(inv.DescriptionHash[:])
	}

	if want.Payee != "" && !strings.EqualFold(want.Payee, d.Payee) {
		return Decoded{}, invalid(ReasonWrongPayee, "invoice is signed by %s, expected %s", d.Payee, want.Payee)
	}

	if inv.MilliSat == nil {
		return Decoded{}, invalid(ReasonMissingAmount, "invoice has no amount, expected %d msat", want.AmountMsat)
	}
	// Compared as uint64: a decoded amount above MaxInt64 can never equal a
	// positive int64, and must not wrap into one.
	got := uint64(*inv.MilliSat)
	if got > math.MaxInt64 || got != uint64(want.AmountMsat) {
		return Decoded{}, invalid(ReasonAmountMismatch, "invoice asks %d msat, expected %d msat", got, want.AmountMsat)
	}
	d.AmountMsat = int64(got)

	// zpay32 multiplies the encoded seconds into a Duration, which wraps
	// for absurd values; a non-positive expiry is treated as already over.
	if d.Expiry <= 0 {
		return Decoded{}, invalid(ReasonExpired, "invoice has a non-positive expiry %v", d.Expiry)
	}
	d.ExpiresAt = d.CreatedAt.Add(d.Expiry)
	if !d.ExpiresAt.After(now) {
		return Decoded{}, invalid(ReasonExpired, "invoice expired at %s (created %s, expiry %s), now %s",
			d.ExpiresAt.Format(time.RFC3339), d.CreatedAt.Format(time.RFC3339), d.Expiry, now.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// decode is zpay32.Decode made total: invoices come from outside, and a
// decoder panic on a crafted string must become a rejection, not a crash.
func decode(bolt11 string, net *chaincfg.Params) (inv *zpay32.Invoice, err error) {
	defer func() {
		if r := recover(); r != nil {
			inv, err = nil, fmt.Errorf("decoder panicked: %v", r)
		}
	}()
	return zpay32.Decode(bolt11, net)
}
