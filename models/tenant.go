package models

import (
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
)

// TenantID is a tenant's Nostr public key as 64 lower-case hex characters.
type TenantID string

// ParseTenantID accepts a hex public key or an npub and returns the normalised
// hex form. The key must be a valid x-only secp256k1 point.
func ParseTenantID(s string) (TenantID, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		prefix, value, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "npub" {
			return "", invalid("tenant", "%q is not a valid npub", s)
		}
		hex, _ := value.(string)
		s = hex
	}
	hex := strings.ToLower(s)
	if len(hex) != 64 || !nostr.IsValid32ByteHex(hex) {
		return "", invalid("tenant", "%q is not a Nostr public key (64 hex characters or npub1...)", s)
	}
	if !nostr.IsValidPublicKey(hex) {
		return "", invalid("tenant", "%q is not a point on secp256k1, so it is no Nostr public key", s)
	}
	return TenantID(hex), nil
}

// Short returns an abbreviation for display, never for lookups.
func (t TenantID) Short() string {
	if len(t) < 12 {
		return string(t)
	}
	return string(t[:8]) + "…" + string(t[len(t)-4:])
}
