package dm

import (
	"context"
	"errors"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/keyer"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// secp256k1Order is the curve order n in lowercase hex; a secret key must lie
// in [1, n-1]. Equal-length lowercase hex compares like the numbers.
const secp256k1Order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"

// keyMaterial holds the secret key. robotKey keeps it behind a pointer so
// that fmt, which prints nested pointers as addresses, cannot print it as
// part of a Robot or robotKey value.
type keyMaterial struct{ hex string }

// robotKey is the robot's key pair, implementing go-nostr's keyer.Keyer for
// nip17 without go-nostr's KeySigner, which would hold the key as a plain
// string field.
type robotKey struct {
	sk *keyMaterial
	pk string
}

var _ keyer.Keyer = robotKey{}

var errBadSecretKey = errors.New("dm: robot secret key must be 64 hex characters encoding a valid secp256k1 scalar")

// parseSecretKey validates a hex secret key. Its errors never include the
// input: a mistyped key is still mostly the key.
func parseSecretKey(s string) (robotKey, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !nostr.IsValid32ByteHex(s) || s >= secp256k1Order || s == strings.Repeat("0", 64) {
		return robotKey{}, errBadSecretKey
	}
	pk, err := nostr.GetPublicKey(s)
	if err != nil {
		return robotKey{}, errBadSecretKey
	}
	return robotKey{sk: &keyMaterial{hex: s}, pk: pk}, nil
}

func (k robotKey) reveal() string { return k.sk.hex }

// GetPublicKey implements keyer.Signer.
func (k robotKey) GetPublicKey(context.Context) (string, error) { return k.pk, nil }

// SignEvent implements keyer.Signer.
func (k robotKey) SignEvent(_ context.Context, ev *nostr.Event) error {
	return ev.Sign(k.reveal())
}

// Encrypt implements keyer.Cipher with NIP-44 v2.
func (k robotKey) Encrypt(_ context.Context, plaintext, recipient string) (string, error) {
	ck, err := nip44.GenerateConversationKey(recipient, k.reveal())
	if err != nil {
		return "", err
	}
	return nip44.Encrypt(plaintext, ck)
}

// Decrypt implements keyer.Cipher with NIP-44 v2.
func (k robotKey) Decrypt(_ context.Context, ciphertext, sender string) (string, error) {
	ck, err := nip44.GenerateConversationKey(sender, k.reveal())
	if err != nil {
		return "", err
	}
	return nip44.Decrypt(ciphertext, ck)
}

// redactString removes the secret key from s. go-nostr puts the key into
// some of its error texts (nip44.GenerateConversationKey, Event.Sign); the
// key is validated up front so those paths should be unreachable, and this
// makes sure of it.
func (k robotKey) redactString(s string) string {
	if k.sk == nil {
		return s
	}
	s = strings.ReplaceAll(s, k.sk.hex, "[redacted]")
	return strings.ReplaceAll(s, strings.ToUpper(k.sk.hex), "[redacted]")
}

// redact returns err unchanged unless its text contains the secret key, in
// which case it returns a scrubbed error that does not wrap the original
// (unwrapping would reveal it).
func (k robotKey) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := k.redactString(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
