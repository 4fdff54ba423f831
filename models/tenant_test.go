package models_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"pgregory.net/rapid"

	"github.com/billflow/billflow/models"
)

// ParseTenantID is written on the standard library alone so that models
// (and the contract package applications import) carry no Nostr library;
// these tests hold it to go-nostr's answers.

// nostrParse is the go-nostr based parser ParseTenantID replaced.
func nostrParse(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		prefix, value, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "npub" {
			return "", false
		}
		s, _ = value.(string)
	}
	h := strings.ToLower(s)
	if len(h) != 64 || !nostr.IsValid32ByteHex(h) || !nostr.IsValidPublicKey(h) {
		return "", false
	}
	return h, true
}

func TestParseTenantIDMatchesGoNostr(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "key")
		if rapid.Bool().Draw(t, "high") {
			// Near the field prime, where x >= p must be refused.
			for i := 0; i < 27; i++ {
				raw[i] = 0xff
			}
		}
		h := hex.EncodeToString(raw)
		inputs := []string{h, strings.ToUpper(h)}
		if npub, err := nip19.EncodePublicKey(h); err == nil {
			inputs = append(inputs, npub, strings.ToUpper(npub), " "+npub+" ")
			// One character changed: the checksum must catch it.
			i := rapid.IntRange(5, len(npub)-1).Draw(t, "pos")
			c := byte('q')
			if npub[i] == 'q' {
				c = 'p'
			}
			inputs = append(inputs, npub[:i]+string(c)+npub[i+1:])
		}
		for _, in := range inputs {
			want, ok := nostrParse(in)
			got, err := models.ParseTenantID(in)
			if ok != (err == nil) || (ok && string(got) != want) {
				t.Fatalf("ParseTenantID(%q) = %q, %v; go-nostr says %q, %v", in, got, err, want, ok)
			}
		}
	})
}

func TestParseTenantIDCases(t *testing.T) {
	// fiatjaf's well-known key, hex and npub.
	const hexKey = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	const npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
	for _, in := range []string{hexKey, strings.ToUpper(hexKey), npub, strings.ToUpper(npub)} {
		got, err := models.ParseTenantID(in)
		if err != nil || string(got) != hexKey {
			t.Errorf("ParseTenantID(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "abc", "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
		npub[:len(npub)-1] + "7", "npub1", strings.Repeat("f", 64), strings.Repeat("g", 64)} {
		if _, err := models.ParseTenantID(bad); err == nil {
			t.Errorf("ParseTenantID(%q) accepted", bad)
		}
	}
}
