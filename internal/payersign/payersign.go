// Package payersign is the payer's side of a usage receipt: the Nostr
// event a payer signs over the receipt the engine sent it (a
// usage.sign_request), as `starter usage sign --key` and the sandbox
// metered client make it, and the check of its shape.
//
// The event is package receipts' payer event: kind receipts.Kind, the
// receipt id in a "receipt" tag, the version in a "v" tag and the
// canonical receipt as content, signed with the payer's key (BIP-340,
// NIP-01); the engine's validator (receipts.Verify) checks it.
package payersign

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/receipts"
)

// EventKind is the Nostr kind of a payer's signature over a usage receipt
// (a regular event kind: 1000-9999).
const EventKind = receipts.Kind

// ParseSecretKey reads a payer's secret key, 64 hex digits or nsec1..., and
// returns it as hex. The error never repeats the key.
func ParseSecretKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "nsec1") {
		prefix, v, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "nsec" {
			return "", errors.New("the key is not a valid nsec")
		}
		h, ok := v.(string)
		if !ok {
			return "", errors.New("the key is not a valid nsec")
		}
		s = h
	}
	s = strings.ToLower(s)
	if len(s) != 64 || !isHex(s) {
		return "", errors.New("the key is not 64 hex digits or an nsec")
	}
	raw, _ := hex.DecodeString(s)
	var scalar btcec.ModNScalar
	if overflow := scalar.SetByteSlice(raw); overflow || scalar.IsZero() {
		return "", errors.New("the key is not a valid secp256k1 secret key (zero or not below the group order)")
	}
	return s, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// PublicKey is the hex public key of a hex secret key.
func PublicKey(sk string) (string, error) { return nostr.GetPublicKey(sk) }

// Sign makes the payer's signed event over the receipt req carries, at now:
// the receipts package's payer event (kind receipts.Kind, the receipt id in
// its "receipt" tag, the canonical receipt as content), which the engine's
// validator checks.
func Sign(sk string, req contract.SignRequest, now time.Time) (contract.NostrEvent, error) {
	if req.ReceiptID == "" || req.Event.ID == "" {
		return contract.NostrEvent{}, errors.New("the sign request has no receipt id or no engine event")
	}
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return contract.NostrEvent{}, errors.New("the key is not a valid secret key")
	}
	// The receipt id the engine asked about is what the payer signs for
	// (the engine computed it from the receipt: receipts.ID).
	ev := receipts.Event(req.Receipt, pk, now)
	for i, t := range ev.Tags {
		if len(t) >= 2 && t[0] == receipts.TagReceipt {
			ev.Tags[i] = nostr.Tag{receipts.TagReceipt, req.ReceiptID}
		}
	}
	// "e" names the engine's event it answers, for relays and clients.
	ev.Tags = append(ev.Tags, nostr.Tag{"e", req.Event.ID})
	if err := ev.Sign(sk); err != nil {
		return contract.NostrEvent{}, fmt.Errorf("sign the receipt: %w", err)
	}
	return receipts.FromNostr(ev), nil
}

// FromNostr converts a go-nostr event to the contract's.
func FromNostr(ev nostr.Event) contract.NostrEvent { return receipts.FromNostr(ev) }

// ToNostr converts the contract's event to go-nostr's.
func ToNostr(ev contract.NostrEvent) nostr.Event { return receipts.ToNostr(ev) }

// ReceiptID is the receipt an event signs (its "receipt" tag), or "".
func ReceiptID(ev contract.NostrEvent) string { return receipts.ReceiptIDOf(ev) }

// Verify checks that ev is a payer's event of EventKind whose id and
// BIP-340 signature verify (it says nothing of whose key or which receipt:
// compare PubKey and ReceiptID with what is expected).
func Verify(ev contract.NostrEvent) error {
	if ev.Kind != EventKind {
		return fmt.Errorf("event kind %d is not %d", ev.Kind, EventKind)
	}
	n := ToNostr(ev)
	if n.GetID() != ev.ID {
		return errors.New("the event id is not the hash of its content")
	}
	ok, err := n.CheckSignature()
	if err != nil || !ok {
		return errors.New("the signature does not verify")
	}
	return nil
}
