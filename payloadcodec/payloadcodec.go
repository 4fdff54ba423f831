// Package payloadcodec encrypts every payload billflow writes to Temporal
// (workflow and activity inputs and results, signals, updates, queries,
// memos, timer summaries, failures) with AES-256-GCM, so amounts, tenant
// data and payment attempt details are unreadable in Temporal's database and
// to anyone reading histories without a key. Search attributes are not
// payloads the codec sees: they stay plaintext, for listing.
//
// Keys come from BILLFLOW_PAYLOAD_KEYS, "id:base64key[,id:base64key...]":
// the first key encrypts, every listed key decrypts, and each encrypted
// payload names its key id in its metadata, so keys rotate by putting a new
// one first and keeping the old ones until no history needs them.
//
// Every billflow process (worker, api, starter, bench, integration tests)
// dials Temporal with options from Configure: one place decides how payloads
// are stored. An application using package billing does the same.
package payloadcodec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

const (
	// EnvKeys names the variable holding the keys.
	EnvKeys = "BILLFLOW_PAYLOAD_KEYS"
	// Plaintext, as the value of EnvKeys, turns encryption off explicitly
	// (payloads are stored as JSON, readable in Temporal's database).
	Plaintext = "plaintext"
	// Encoding is the metadata "encoding" of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID is the metadata entry naming the key that encrypted a payload.
	MetadataKeyID = "encryption-key-id"
	// KeySize is the length of a key in bytes (AES-256).
	KeySize = 32
)

// keyID is what a key id may be: short, and safe in metadata, logs and URLs.
var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Codec is a converter.PayloadCodec encrypting with its current key and
// decrypting with any of its keys. Safe for concurrent use.
type Codec struct {
	current string
	ids     []string
	aeads   map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// ParseKeys parses a BILLFLOW_PAYLOAD_KEYS value ("id:base64key,..."; the
// first key is the current one). Errors name the variable and the entry.
func ParseKeys(value string) (*Codec, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, fmt.Errorf("%s is empty: give id:base64key[,id:base64key...] (e.g. k1:$(openssl rand -base64 32))", EnvKeys)
	}
	c := &Codec{aeads: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("%s entry %d is not id:base64key (no colon)", EnvKeys, i+1)
		}
		if !keyID.MatchString(id) {
			return nil, fmt.Errorf("%s entry %d: key id %q must be 1-64 letters, digits, '.', '_' or '-'", EnvKeys, i+1, id)
		}
		if _, dup := c.aeads[id]; dup {
			return nil, fmt.Errorf("%s lists key id %q twice", EnvKeys, id)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d (key id %q): the key is not standard base64: %v", EnvKeys, i+1, id, err)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("%s entry %d (key id %q): the key is %d bytes, want %d (openssl rand -base64 32)", EnvKeys, i+1, id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d (key id %q): %w", EnvKeys, i+1, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d (key id %q): %w", EnvKeys, i+1, id, err)
		}
		if c.current == "" {
			c.current = id
		}
		c.ids = append(c.ids, id)
		c.aeads[id] = aead
	}
	return c, nil
}

// FromEnv reads EnvKeys from environ (os.Environ() form). It returns nil and
// no error when the value is Plaintext; unset is an error, because billflow
// encrypts by default.
func FromEnv(environ []string) (*Codec, error) {
	value, set := "", false
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == EnvKeys {
			value, set = v, true
		}
	}
	if !set {
		return nil, fmt.Errorf("%s is not set: billflow encrypts workflow payloads in Temporal; give id:base64key[,id:base64key...] "+
			"(e.g. k1:$(openssl rand -base64 32); scripts/dev.sh generates one) or %q to store them unencrypted", EnvKeys, Plaintext)
	}
	if strings.TrimSpace(value) == Plaintext {
		return nil, nil
	}
	return ParseKeys(value)
}

// NewKey returns a new random key entry "id:base64key" for EnvKeys.
func NewKey(id string) string {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// CurrentKeyID is the id of the key that encrypts.
func (c *Codec) CurrentKeyID() string { return c.current }

// KeyIDs lists every key id that decrypts, current first.
func (c *Codec) KeyIDs() []string { return append([]string(nil), c.ids...) }

// aad binds a ciphertext to its key id, so moving it under another id fails.
func aad(id string) []byte { return []byte("billflow-payload-v1:" + id) }

// Encode encrypts each payload (all of it: metadata and data) with the
// current key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("payload codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("payload codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(c.current),
			},
			Data: aead.Seal(nonce, nonce, plain, aad(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts each encrypted payload with the key its metadata names.
// A payload that is not encrypted passes unchanged: histories written before
// encryption was turned on (and the recorded replay fixtures) still read.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("payload codec: a payload is encrypted with key id %q, which %s does not list (it lists %s)",
				id, EnvKeys, strings.Join(c.ids, ", "))
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return payloads, fmt.Errorf("payload codec: encrypted payload (key id %q) is %d bytes, too short", id, len(data))
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], aad(id))
		if err != nil {
			return payloads, fmt.Errorf("payload codec: decrypt payload with key id %q: %w (wrong key, or the payload was altered)", id, err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return payloads, fmt.Errorf("payload codec: decrypted payload (key id %q) is not a payload: %w", id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

// DataConverter returns base (nil: the SDK's default) with c applied.
func (c *Codec) DataConverter(base converter.DataConverter) converter.DataConverter {
	if base == nil {
		base = converter.GetDefaultDataConverter()
	}
	return converter.NewCodecDataConverter(base, c)
}

// DecodeMessage decrypts, in place, every payload inside msg (a history
// event, a whole history, a describe response), failures' encoded
// attributes included. Tests and tools read histories with it.
func (c *Codec) DecodeMessage(ctx context.Context, msg proto.Message) error {
	return proxy.VisitPayloads(ctx, msg, proxy.VisitPayloadsOptions{
		Visitor: func(_ *proxy.VisitPayloadsContext, p []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return c.Decode(p)
		},
	})
}

// Configure is the one place a billflow process decides how its Temporal
// client stores payloads: it reads EnvKeys from environ and, unless it is
// Plaintext, sets opts.DataConverter to encrypt every payload and
// opts.FailureConverter to move failure messages and stack traces into an
// encrypted payload too (they carry attempt details). It returns the codec
// (nil for Plaintext), which the api also serves to the Web UI.
func Configure(opts *client.Options, environ []string) (*Codec, error) {
	c, err := FromEnv(environ)
	if err != nil || c == nil {
		return nil, err
	}
	if opts.FailureConverter != nil {
		return nil, errors.New("payloadcodec.Configure: the options already have a failure converter")
	}
	opts.DataConverter = c.DataConverter(opts.DataConverter)
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          opts.DataConverter,
		EncodeCommonAttributes: true,
	})
	return c, nil
}
