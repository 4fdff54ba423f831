// Package receipts identifies, signs and verifies version-2 usage receipts
// (issue 10). A receipt's id is the hex SHA-256 of its canonical encoding;
// the engine signs a receipt as a Nostr event (BIP-340, go-nostr) with its
// robot key, and the payer co-signs it with a Nostr event of its own key.
//
// Both events are of kind Kind (a regular event, 1000-9999) and carry the
// receipt id in a "receipt" tag, the version in a "v" tag and the canonical
// receipt JSON as content, so a relay or a client can check either event
// without asking the engine.
package receipts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// Kind is the Nostr event kind of a usage receipt signature, by the engine
// or by the payer (chosen in the regular range; not a NIP-registered kind).
const Kind = 9741

// Version is the receipt version the engine issues and accepts.
const Version = 2

// Tag names on a receipt event.
const (
	TagReceipt = "receipt"
	TagVersion = "v"
)

// Canonical is the receipt's canonical encoding: a JSON array of its fields
// in a fixed order (like NIP-01's event id serialisation), so the id does
// not depend on a struct's field order or on fields added later:
// [version, session, service, payer, provider, unit, units, unit_price,
// price_units, value, currency, seq, prev].
func Canonical(r contract.Receipt) []byte {
	b, _ := json.Marshal([]any{r.Version, r.SessionID, r.ServiceID, string(r.Payer), r.Provider, string(r.Unit), r.Units,
		r.UnitPrice, r.PriceUnits, r.Value, string(r.Currency), r.Seq, r.Prev})
	return b
}

// ID is the receipt's id: the hex SHA-256 of Canonical.
func ID(r contract.Receipt) string {
	h := sha256.Sum256(Canonical(r))
	return hex.EncodeToString(h[:])
}

// keyMaterial keeps the secret behind a pointer, so fmt never prints it as
// part of a Signer value.
type keyMaterial struct{ hex string }

// Signer signs receipts with the engine's key (BILLFLOW_ROBOT_KEY). It
// lives in the worker's activities; the key never enters a workflow.
type Signer struct {
	sk *keyMaterial
	// PubKey is the engine's public key (hex), the receipt's Provider.
	PubKey string
}

// errBadKey never includes the input: a mistyped key is still mostly the key.
var errBadKey = errors.New("receipts: engine key must be 64 hex characters (a valid secp256k1 secret key)")

// NewSigner parses the engine's hex secret key.
func NewSigner(secretHex string) (*Signer, error) {
	s := strings.ToLower(strings.TrimSpace(secretHex))
	if !nostr.IsValid32ByteHex(s) || s == strings.Repeat("0", 64) {
		return nil, errBadKey
	}
	pk, err := nostr.GetPublicKey(s)
	if err != nil {
		return nil, errBadKey
	}
	return &Signer{sk: &keyMaterial{hex: s}, PubKey: pk}, nil
}

// String hides the key.
func (s *Signer) String() string { return "receipts.Signer(" + s.PubKey + ")" }

// Event is the unsigned Nostr event of kind Kind over a receipt, by pubkey.
func Event(r contract.Receipt, pubkey string, at time.Time) nostr.Event {
	return nostr.Event{PubKey: pubkey, CreatedAt: nostr.Timestamp(at.Unix()), Kind: Kind,
		Tags:    nostr.Tags{{TagReceipt, ID(r)}, {TagVersion, fmt.Sprint(r.Version)}},
		Content: string(Canonical(r))}
}

// Sign signs the receipt (its Provider set to the engine's key) and returns
// the sign request for the payer (Attempt 1).
func (s *Signer) Sign(r contract.Receipt, at time.Time) (contract.SignRequest, error) {
	r.Provider = s.PubKey
	ev := Event(r, s.PubKey, at)
	if err := ev.Sign(s.sk.hex); err != nil {
		return contract.SignRequest{}, fmt.Errorf("sign receipt: %w", err)
	}
	return contract.SignRequest{ReceiptID: ID(r), Receipt: r, Event: FromNostr(ev), Attempt: 1}, nil
}

// SignAs signs a receipt as a payer would (tests, the sandbox client and
// `starter usage sign` hold the payer's key).
func SignAs(secretHex string, r contract.Receipt, at time.Time) (contract.NostrEvent, error) {
	pk, err := nostr.GetPublicKey(secretHex)
	if err != nil {
		return contract.NostrEvent{}, errBadKey
	}
	ev := Event(r, pk, at)
	if err := ev.Sign(secretHex); err != nil {
		return contract.NostrEvent{}, fmt.Errorf("sign receipt: %w", err)
	}
	return FromNostr(ev), nil
}

// FromNostr converts a go-nostr event to the contract's.
func FromNostr(ev nostr.Event) contract.NostrEvent {
	tags := make([][]string, len(ev.Tags))
	for i, t := range ev.Tags {
		tags[i] = append([]string(nil), t...)
	}
	return contract.NostrEvent{ID: ev.ID, PubKey: ev.PubKey, CreatedAt: int64(ev.CreatedAt), Kind: ev.Kind, Tags: tags,
		Content: ev.Content, Sig: ev.Sig}
}

// ToNostr converts the contract's event to go-nostr's.
func ToNostr(ev contract.NostrEvent) nostr.Event {
	tags := make(nostr.Tags, len(ev.Tags))
	for i, t := range ev.Tags {
		tags[i] = append(nostr.Tag(nil), t...)
	}
	return nostr.Event{ID: ev.ID, PubKey: ev.PubKey, CreatedAt: nostr.Timestamp(ev.CreatedAt), Kind: ev.Kind, Tags: tags,
		Content: ev.Content, Sig: ev.Sig}
}

// tag is the first value of the named tag ("" when absent).
func tag(ev contract.NostrEvent, name string) string {
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == name {
			return t[1]
		}
	}
	return ""
}

// ReceiptIDOf is the receipt id an event references ("" when none).
func ReceiptIDOf(ev contract.NostrEvent) string { return tag(ev, TagReceipt) }

// Verify checks the payer's answer to a sign request: a valid Nostr event
// (id and BIP-340 signature) of kind Kind, version 2, referencing the
// receipt the session waits for (wantID), by the payer's key. The order
// matters: claims of an unsigned event mean nothing, so the signature is
// checked first. It is pure computation (no I/O, no clock), so a workflow's
// update validator may call it.
func Verify(ev contract.NostrEvent, payer models.TenantID, wantID string) *contract.UsageError {
	fail := func(c models.UsageErrorCode, format string, args ...any) *contract.UsageError {
		return &contract.UsageError{Code: c, Message: fmt.Sprintf(format, args...)}
	}
	if ev.Kind != Kind {
		return fail(models.UsageReceiptBadSignature, "event kind %d is not a usage receipt signature (kind %d)", ev.Kind, Kind)
	}
	// go-nostr's CheckID indexes the id without checking its length: a short
	// id panicked here, in the session workflow's update validator (found by
	// FuzzVerify: testdata/fuzz/FuzzVerify/short_id_panics_checkid).
	if !nostr.IsValid32ByteHex(ev.ID) {
		return fail(models.UsageReceiptBadSignature, "event id %q is not 64 lower-case hex digits", ev.ID)
	}
	// NIP-01 hex is lower-case: go-nostr's signature check would also take an
	// upper-case sig, which the api's validator (billing.ValidNostrEvent) and
	// relays refuse (a FuzzVerify property: testdata/fuzz/FuzzVerify/upper_case_sig_*).
	if !nostr.IsValid32ByteHex(ev.PubKey) || len(ev.Sig) != 128 || !isLowerHex(ev.Sig) {
		return fail(models.UsageReceiptBadSignature, "event pubkey or sig is malformed")
	}
	ne := ToNostr(ev)
	if !ne.CheckID() {
		return fail(models.UsageReceiptBadSignature, "event id %q is not the hash of the event", ev.ID)
	}
	if ok, err := ne.CheckSignature(); !ok || err != nil {
		return fail(models.UsageReceiptBadSignature, "event signature does not verify")
	}
	if v := tag(ev, TagVersion); v != fmt.Sprint(Version) {
		return fail(models.UsageReceiptBadVersion, "receipt version %q is not %d", v, Version)
	}
	got := ReceiptIDOf(ev)
	if got != wantID {
		return fail(models.UsageReceiptCantFind, "receipt %q is not the receipt %s the session waits for", got, wantID)
	}
	if !strings.EqualFold(ev.PubKey, string(payer)) {
		return fail(models.UsageReceiptWrongPayer, "signed by %s, not by the payer %s", ev.PubKey, payer)
	}
	return nil
}

// isLowerHex reports whether s is lower-case hex digits only.
func isLowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
