package models

import (
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
)

// TenantID is a tenant's Nostr public key as 64 lower-case hex characters.
type TenantID string

// ParseTenantID accepts a hex public key or an npub and returns the normalised
// hex form. The key must be a valid x-only secp256k1 point.
//
// It is written on the standard library alone (bech32 and the curve check)
// so that models, and the contract package applications import, carry no
// Nostr or Bitcoin library; models/tenant_test.go checks it against go-nostr.
func ParseTenantID(s string) (TenantID, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		key, err := decodeNpub(strings.ToLower(s))
		if err != nil {
			return "", invalid("tenant", "%q is not a valid npub", s)
		}
		s = hex.EncodeToString(key)
	}
	h := strings.ToLower(s)
	raw, err := hex.DecodeString(h)
	if len(h) != 64 || err != nil {
		return "", invalid("tenant", "%q is not a Nostr public key (64 hex characters or npub1...)", s)
	}
	if !onCurve(raw) {
		return "", invalid("tenant", "%q is not a point on secp256k1, so it is no Nostr public key", s)
	}
	return TenantID(h), nil
}

// Short returns an abbreviation for display, never for lookups.
func (t TenantID) Short() string {
	if len(t) < 12 {
		return string(t)
	}
	return string(t[:8]) + "…" + string(t[len(t)-4:])
}

// secp256k1's field prime p = 2^256 - 2^32 - 977.
var fieldP, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)

// onCurve reports whether a 32-byte x coordinate is below p and has a point
// on y^2 = x^3 + 7 (BIP-340's lift_x), as schnorr.ParsePubKey checks.
func onCurve(x32 []byte) bool {
	x := new(big.Int).SetBytes(x32)
	if x.Cmp(fieldP) >= 0 {
		return false
	}
	c := new(big.Int).Exp(x, big.NewInt(3), fieldP)
	c.Add(c, big.NewInt(7)).Mod(c, fieldP)
	return big.Jacobi(c, fieldP) >= 0
}

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var errBech32 = errors.New("invalid bech32")

// decodeNpub decodes a lower-case bech32 (BIP-173) string with the "npub"
// prefix carrying exactly 32 bytes.
func decodeNpub(s string) ([]byte, error) {
	sep := strings.LastIndexByte(s, '1')
	if sep < 1 || sep+7 > len(s) || s[:sep] != "npub" {
		return nil, errBech32
	}
	data := make([]byte, 0, len(s)-sep-1)
	for i := sep + 1; i < len(s); i++ {
		v := strings.IndexByte(bech32Charset, s[i])
		if v < 0 {
			return nil, errBech32
		}
		data = append(data, byte(v))
	}
	if bech32Polymod(append(hrpExpand(s[:sep]), data...)) != 1 {
		return nil, errBech32
	}
	data = data[:len(data)-6]
	// Regroup 5-bit groups into bytes; leftover padding must be under 5
	// bits and zero.
	var out []byte
	acc, bits := uint32(0), uint(0)
	for _, v := range data {
		acc = acc<<5 | uint32(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 || len(out) != 32 {
		return nil, errBech32
	}
	return out, nil
}

func hrpExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>uint(i))&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}
