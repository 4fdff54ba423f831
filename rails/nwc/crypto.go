package nwc

import (
	"crypto/aes"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// The errors below replace go-nostr's on purpose: some of its key-agreement
// and signing errors quote the private key they were given.
var (
	errKeyAgreement = errors.New("nwc: key agreement failed")
	errEncrypt      = errors.New("nwc: encryption failed")
	errDecrypt      = errors.New("nwc: decryption failed")
	errUnknownEnc   = errors.New("nwc: unsupported encryption scheme")
)

// EncryptContent encrypts plaintext from the holder of secretHex to peerPub
// with the given scheme. Its errors never include key material.
func EncryptContent(enc Encryption, secretHex, peerPub, plaintext string) (string, error) {
	switch enc {
	case EncryptionNIP44v2:
		ck, err := nip44.GenerateConversationKey(peerPub, secretHex)
		if err != nil {
			return "", errKeyAgreement
		}
		out, err := nip44.Encrypt(plaintext, ck)
		if err != nil {
			return "", errEncrypt
		}
		return out, nil
	case EncryptionNIP04:
		key, err := nip04.ComputeSharedSecret(peerPub, secretHex)
		if err != nil {
			return "", errKeyAgreement
		}
		out, err := nip04.Encrypt(plaintext, key)
		if err != nil {
			return "", errEncrypt
		}
		return out, nil
	default:
		return "", errUnknownEnc
	}
}

// DecryptContent reverses EncryptContent. Its errors never include key
// material or the plaintext.
func DecryptContent(enc Encryption, secretHex, peerPub, ciphertext string) (string, error) {
	switch enc {
	case EncryptionNIP44v2:
		ck, err := nip44.GenerateConversationKey(peerPub, secretHex)
		if err != nil {
			return "", errKeyAgreement
		}
		out, err := nip44.Decrypt(ciphertext, ck)
		if err != nil {
			return "", errDecrypt
		}
		return out, nil
	case EncryptionNIP04:
		if !wellFormedNIP04(ciphertext) {
			return "", errDecrypt
		}
		key, err := nip04.ComputeSharedSecret(peerPub, secretHex)
		if err != nil {
			return "", errKeyAgreement
		}
		out, err := nip04.Decrypt(ciphertext, key)
		if err != nil {
			return "", errDecrypt
		}
		return out, nil
	default:
		return "", errUnknownEnc
	}
}

// wellFormedNIP04 checks what nip04.Decrypt assumes: it panics (in
// crypto/cipher) on an IV that is not one block or a ciphertext that is not
// whole blocks, and anyone can send the wallet such a payload.
func wellFormedNIP04(content string) bool {
	ct, iv, ok := strings.Cut(content, "?iv=")
	if !ok || strings.Contains(iv, "?iv=") {
		return false
	}
	ctb, err := base64.StdEncoding.DecodeString(ct)
	if err != nil || len(ctb) == 0 || len(ctb)%aes.BlockSize != 0 {
		return false
	}
	ivb, err := base64.StdEncoding.DecodeString(iv)
	return err == nil && len(ivb) == aes.BlockSize
}

// SniffEncryption guesses a payload's scheme from its shape: NIP-04 payloads
// carry an "?iv=" suffix, NIP-44 payloads are bare base64. Used to read
// answers from wallets that reply in a different scheme than asked.
func SniffEncryption(content string) Encryption {
	if strings.Contains(content, "?iv=") {
		return EncryptionNIP04
	}
	return EncryptionNIP44v2
}
