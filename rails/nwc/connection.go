package nwc

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"
)

// Scheme is the URL scheme of NIP-47 connection URLs.
const Scheme = "nostr+walletconnect"

// legacyScheme is what some early wallets emitted; accepted on input only.
const legacyScheme = "nostrwalletconnect"

const (
	// maxURLLength bounds the work ParseURL does on hostile input.
	maxURLLength = 8 << 10
	// maxRelays bounds how many sockets one connection can make a client open.
	maxRelays = 16
	// maxRelayURLLength keeps a single relay entry sane.
	maxRelayURLLength = 2048
	// maxLUD16Length is the longest address RFC 5321 allows.
	maxLUD16Length = 320
	// redacted replaces the secret wherever a Connection is rendered.
	redacted = "REDACTED"
)

var (
	_ fmt.Stringer   = Connection{}
	_ fmt.GoStringer = Connection{}
	_ fmt.Formatter  = Connection{}
	_ slog.LogValuer = Connection{}
)

// secretKey hides the connection secret inside a closure. fmt cannot call
// Format on a Connection held in an unexported field and prints it by
// reflection instead; a string (or a pointer to one: %s renders it as
// &{...}) would then leak, while a func value prints as an address.
type secretKey func() string

func newSecretKey(hex string) secretKey { return func() string { return hex } }

// Connection is a parsed NIP-47 connection: the wallet service's public key,
// the relays it listens on, the client secret it authorised, and an optional
// Lightning address. Build one with ParseURL or NewConnection; the zero value
// has no secret and is rejected by NewClient. Printing or logging a
// Connection never shows the secret: use SecretURL to serialise it for
// encrypted storage.
type Connection struct {
	// WalletPubKey is the wallet service's x-only public key, lowercase hex.
	WalletPubKey string
	// Relays are the ws:// or wss:// relays the wallet service listens on.
	Relays []string
	// LUD16 is the optional Lightning address the wallet suggested.
	LUD16 string

	secret secretKey
}

// ParseError reports why a connection URL or its parts were rejected. It
// never quotes the input: a URL that fails to parse may still carry a real
// secret.
type ParseError struct {
	// Field is the part that failed: url, scheme, pubkey, relay, secret or lud16.
	Field string
	// Reason is a fixed description of the problem.
	Reason string
}

// Error implements error.
func (e *ParseError) Error() string {
	return "nwc: invalid connection URL: " + e.Field + ": " + e.Reason
}

// Unwrap lets errors.Is(err, ErrInvalidConnection) match every parse error.
func (e *ParseError) Unwrap() error { return ErrInvalidConnection }

func parseErr(field, reason string) error { return &ParseError{Field: field, Reason: reason} }

// ParseURL parses and validates a nostr+walletconnect:// URL. The wallet
// public key must be a valid secp256k1 x-only key, at least one relay must
// be ws:// or wss://, and the secret must be exactly one 32-byte hex private
// key. Errors are *ParseError values that never echo the input.
func ParseURL(s string) (Connection, error) {
	if len(s) > maxURLLength {
		return Connection{}, parseErr("url", "longer than "+strconv.Itoa(maxURLLength)+" bytes")
	}
	s = strings.TrimSpace(s)
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Connection{}, parseErr("scheme", "missing; the URL must start with the NIP-47 scheme")
	}
	switch strings.ToLower(scheme) {
	case Scheme, legacyScheme:
	default:
		return Connection{}, parseErr("scheme", "not the NIP-47 wallet connect scheme")
	}
	rest = strings.TrimPrefix(rest, "//")
	// A fragment is not part of a NIP-47 URL; drop it as any URL parser would.
	rest, _, _ = strings.Cut(rest, "#")
	host, rawQuery, _ := strings.Cut(rest, "?")
	host = strings.TrimSuffix(host, "/")

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		// url's error quotes the offending text, which may be the secret.
		return Connection{}, parseErr("url", "malformed query string")
	}
	secrets := q["secret"]
	switch len(secrets) {
	case 0:
		return Connection{}, parseErr("secret", "missing")
	case 1:
	default:
		return Connection{}, parseErr("secret", "given more than once")
	}
	lud16s := q["lud16"]
	if len(lud16s) > 1 {
		return Connection{}, parseErr("lud16", "given more than once")
	}
	lud16 := ""
	if len(lud16s) == 1 {
		lud16 = lud16s[0]
	}
	return NewConnection(host, q["relay"], secrets[0], lud16)
}

// NewConnection validates the parts of a connection and assembles it; it is
// what wallet services use to mint connection URLs (see SecretURL). Inputs
// are validated exactly as ParseURL validates them.
func NewConnection(walletPubKey string, relays []string, secretHex, lud16 string) (Connection, error) {
	pub, err := parsePubKey(walletPubKey)
	if err != nil {
		return Connection{}, err
	}
	rs, err := parseRelays(relays)
	if err != nil {
		return Connection{}, err
	}
	sk, err := parseSecret(secretHex)
	if err != nil {
		return Connection{}, err
	}
	addr, err := parseLUD16(lud16)
	if err != nil {
		return Connection{}, err
	}
	// The printable fields are shown in logs and dialled in the clear; a
	// secret pasted into one of them would leak through String.
	if pub == sk {
		return Connection{}, parseErr("pubkey", "equals the secret")
	}
	for i, r := range rs {
		if strings.Contains(strings.ToLower(r), sk) {
			return Connection{}, parseErr("relay", "relay "+strconv.Itoa(i+1)+" of "+strconv.Itoa(len(rs))+" contains the secret")
		}
	}
	if strings.Contains(strings.ToLower(addr), sk) {
		return Connection{}, parseErr("lud16", "contains the secret")
	}
	return Connection{WalletPubKey: pub, Relays: rs, LUD16: addr, secret: newSecretKey(sk)}, nil
}

func parsePubKey(s string) (string, error) {
	if len(s) == 0 {
		return "", parseErr("pubkey", "missing wallet public key")
	}
	if len(s) != 64 {
		return "", parseErr("pubkey", "must be 64 hex characters (a 32-byte x-only key)")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", parseErr("pubkey", "not hexadecimal")
	}
	if _, err := schnorr.ParsePubKey(b); err != nil {
		return "", parseErr("pubkey", "not a point on secp256k1")
	}
	return strings.ToLower(s), nil
}

func parseRelays(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, parseErr("relay", "at least one relay is required")
	}
	if len(in) > maxRelays {
		return nil, parseErr("relay", "more than "+strconv.Itoa(maxRelays)+" relays")
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, r := range in {
		// Positions, not values, identify the bad relay: a malformed URL may
		// have the secret pasted into it.
		where := "relay " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(in))
		r = strings.TrimSpace(r)
		if r == "" {
			return nil, parseErr("relay", where+" is empty")
		}
		if len(r) > maxRelayURLLength {
			return nil, parseErr("relay", where+" is too long")
		}
		u, err := url.Parse(r)
		if err != nil {
			return nil, parseErr("relay", where+" is not a valid URL")
		}
		if s := strings.ToLower(u.Scheme); s != "ws" && s != "wss" {
			return nil, parseErr("relay", where+" must use ws:// or wss://")
		}
		if u.Host == "" || u.Opaque != "" {
			return nil, parseErr("relay", where+" has no host")
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func parseSecret(s string) (string, error) {
	if len(s) != 64 {
		return "", parseErr("secret", "must be 64 hex characters (a 32-byte private key)")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", parseErr("secret", "not hexadecimal")
	}
	var k btcec.ModNScalar
	if overflow := k.SetByteSlice(b); overflow || k.IsZero() {
		return "", parseErr("secret", "not a valid secp256k1 private key")
	}
	return strings.ToLower(s), nil
}

func parseLUD16(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > maxLUD16Length {
		return "", parseErr("lud16", "too long")
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return "", parseErr("lud16", "must look like name@domain")
	}
	for _, c := range local {
		if !isAlnum(c) && !strings.ContainsRune("._+-", c) {
			return "", parseErr("lud16", "name has characters a Lightning address does not allow")
		}
	}
	for _, c := range domain {
		if !isAlnum(c) && !strings.ContainsRune(".-:", c) {
			return "", parseErr("lud16", "domain has characters a host name does not allow")
		}
	}
	return s, nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// valid reports whether c came out of ParseURL or NewConnection.
func (c Connection) valid() bool { return c.secret != nil && c.secret() != "" }

// ClientPubKey is the public key of the connection secret: the identity the
// wallet service authorised and answers to.
func (c Connection) ClientPubKey() string {
	if !c.valid() {
		return ""
	}
	pk, err := nostr.GetPublicKey(c.secret())
	if err != nil {
		return ""
	}
	return pk
}

// Equal reports whether two connections have the same wallet, relays,
// secret and Lightning address. (== does not compile and reflect.DeepEqual
// is always false: the secret is held in a closure.)
func (c Connection) Equal(o Connection) bool { return c.SecretURL() == o.SecretURL() }

// SecretURL renders the full connection URL, secret included, for storage
// encrypted at rest. Never log it; String is the printable form.
func (c Connection) SecretURL() string {
	if !c.valid() {
		return c.render("")
	}
	return c.render(c.secret())
}

// String renders the connection URL with the secret redacted.
func (c Connection) String() string { return c.render(redacted) }

// GoString renders the connection as Go syntax with the secret redacted, so
// %#v cannot leak it either.
func (c Connection) GoString() string {
	return fmt.Sprintf("nwc.Connection{WalletPubKey:%q, Relays:%#v, LUD16:%q, secret:%s}",
		c.WalletPubKey, c.Relays, c.LUD16, redacted)
}

// Format routes every fmt verb through String or GoString; without it %x or
// %+v would reach the struct's fields.
func (c Connection) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = f.Write([]byte(c.GoString()))
	case verb == 'q':
		_, _ = f.Write([]byte(strconv.Quote(c.String())))
	default:
		_, _ = f.Write([]byte(c.String()))
	}
}

// LogValue makes slog render the redacted URL instead of the struct.
func (c Connection) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c Connection) render(secret string) string {
	var b strings.Builder
	b.WriteString(Scheme)
	b.WriteString("://")
	b.WriteString(c.WalletPubKey)
	sep := byte('?')
	param := func(k, v string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	for _, r := range c.Relays {
		param("relay", r)
	}
	if secret != "" {
		param("secret", secret)
	}
	if c.LUD16 != "" {
		param("lud16", c.LUD16)
	}
	return b.String()
}

// secretHex is the connection secret, for signing and key agreement only.
func (c Connection) secretHex() string {
	if !c.valid() {
		return ""
	}
	return c.secret()
}
