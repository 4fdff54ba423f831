// Package secret seals secrets at rest (NWC connection URLs, for now) with
// AES-256-GCM. Only the activity that uses a secret opens it; workflows and
// logs only ever see ids.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// version prefixes sealed values so the format can change without ambiguity.
const version = "v1:"

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// ErrOpen is returned for a sealed value that is malformed, tampered with,
// sealed under another key or bound to other associated data. It never says
// which, so it cannot be used as an oracle.
var ErrOpen = errors.New("secret: cannot open sealed value")

// Box seals and opens values under one key.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a key written as 64 hex digits (BILLFLOW_SECRET_KEY). The
// error never repeats the input.
func ParseKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("secret: key must be %d hex digits (%d bytes)", 2*KeySize, KeySize)
	}
	return key, nil
}

// Seal encrypts plaintext, binding it to associated data (e.g. the tenant id,
// so a sealed value copied onto another tenant's row does not open).
func (b *Box) Seal(plaintext, associated []byte) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: nonce: %w", err)
	}
	out := b.aead.Seal(nonce, nonce, plaintext, associated)
	return version + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same associated data.
func (b *Box) Open(sealed string, associated []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, version)
	if !ok {
		return nil, ErrOpen
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return nil, ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], associated)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
