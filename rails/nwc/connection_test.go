package nwc

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fixed keys: the NIP-47 example wallet key and a secret that is a valid
// private key.
const (
	testWallet = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
	testSecret = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"
)

func testURL(params string) string {
	return "nostr+walletconnect://" + testWallet + "?" + params
}

func TestParseURLAcceptsNIP47Example(t *testing.T) {
	c, err := ParseURL("nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c")
	require.NoError(t, err)
	assert.Equal(t, testWallet, c.WalletPubKey)
	assert.Equal(t, []string{"wss://relay.damus.io"}, c.Relays)
	assert.Empty(t, c.LUD16)
	assert.Equal(t, testSecret, c.secretHex())
	pub, err := nostr.GetPublicKey(testSecret)
	require.NoError(t, err)
	assert.Equal(t, pub, c.ClientPubKey())
}

func TestParseURLVariants(t *testing.T) {
	upper := strings.ToUpper(testSecret)
	c, err := ParseURL("  NOSTR+WALLETCONNECT:" + strings.ToUpper(testWallet) +
		"/?relay=ws://127.0.0.1:7777&relay=wss://b.example/path&relay=ws://127.0.0.1:7777&secret=" + upper +
		"&lud16=alice@example.com&unknown=x#frag  ")
	require.NoError(t, err)
	assert.Equal(t, testWallet, c.WalletPubKey, "pubkey is normalised to lowercase")
	assert.Equal(t, testSecret, c.secretHex(), "secret is normalised to lowercase")
	assert.Equal(t, []string{"ws://127.0.0.1:7777", "wss://b.example/path"}, c.Relays, "duplicates dropped, order kept")
	assert.Equal(t, "alice@example.com", c.LUD16)

	legacy, err := ParseURL("nostrwalletconnect://" + testWallet + "?relay=wss://r.example&secret=" + testSecret)
	require.NoError(t, err)
	assert.Equal(t, testWallet, legacy.WalletPubKey)

	empty, err := ParseURL(testURL("relay=wss://r.example&secret=" + testSecret + "&lud16="))
	require.NoError(t, err, "NIP-47's own example carries an empty lud16")
	assert.Empty(t, empty.LUD16)
}

func TestParseURLRejects(t *testing.T) {
	okRelay := "relay=wss%3A%2F%2Fr.example"
	// The curve order n: one past the largest valid private key.
	order := "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
	cases := []struct {
		name, url, field string
	}{
		{"empty", "", "scheme"},
		{"https scheme", "https://" + testWallet + "?" + okRelay + "&secret=" + testSecret, "scheme"},
		{"no pubkey", "nostr+walletconnect://?" + okRelay + "&secret=" + testSecret, "pubkey"},
		{"short pubkey", "nostr+walletconnect://abcd?" + okRelay + "&secret=" + testSecret, "pubkey"},
		{"pubkey not hex", "nostr+walletconnect://" + strings.Repeat("zz", 32) + "?" + okRelay + "&secret=" + testSecret, "pubkey"},
		{"pubkey off curve", "nostr+walletconnect://" + strings.Repeat("ff", 32) + "?" + okRelay + "&secret=" + testSecret, "pubkey"},
		{"no relay", testURL("secret=" + testSecret), "relay"},
		{"http relay", testURL("relay=https://r.example&secret=" + testSecret), "relay"},
		{"empty relay", testURL("relay=&secret=" + testSecret), "relay"},
		{"relay without host", testURL("relay=wss://&secret=" + testSecret), "relay"},
		{"too many relays", testURL(strings.Repeat("relay=wss://r.example&", maxRelays+1) + "secret=" + testSecret), "relay"},
		{"no secret", testURL(okRelay), "secret"},
		{"two secrets", testURL(okRelay + "&secret=" + testSecret + "&secret=" + testSecret), "secret"},
		{"short secret", testURL(okRelay + "&secret=" + testSecret[:62]), "secret"},
		{"secret not hex", testURL(okRelay + "&secret=" + strings.Repeat("g", 64)), "secret"},
		{"zero secret", testURL(okRelay + "&secret=" + strings.Repeat("0", 64)), "secret"},
		{"secret = curve order", testURL(okRelay + "&secret=" + order), "secret"},
		{"bad lud16", testURL(okRelay + "&secret=" + testSecret + "&lud16=not-an-address"), "lud16"},
		{"two lud16", testURL(okRelay + "&secret=" + testSecret + "&lud16=a@b.c&lud16=d@e.f"), "lud16"},
		{"bad escape", testURL(okRelay + "&secret=" + testSecret + "&x=%zz"), "url"},
		{"too long", testURL(okRelay + "&secret=" + testSecret + "&x=" + strings.Repeat("a", maxURLLength)), "url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			require.Error(t, err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tc.field, pe.Field)
			assert.ErrorIs(t, err, ErrInvalidConnection)
			assert.False(t, Retryable(err))
			assert.NotContains(t, err.Error(), testSecret)
			assert.NotContains(t, strings.ToLower(err.Error()), testSecret[:16])
		})
	}
}

func TestConnectionRedactsSecretEverywhere(t *testing.T) {
	c, err := ParseURL(testURL("relay=wss://r.example&secret=" + testSecret + "&lud16=bob@example.com"))
	require.NoError(t, err)

	type holder struct {
		Exported Connection
		hidden   Connection
		Ptr      *Connection
	}
	h := holder{Exported: c, hidden: c, Ptr: &c}
	var rendered []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		rendered = append(rendered, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, h), fmt.Sprintf(verb, []Connection{c}))
	}
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	logger.Info("connection", "conn", c, "ptr", &c, "holder", h)
	jlogger := slog.New(slog.NewJSONHandler(&logs, nil))
	jlogger.Info("connection", "conn", c, "holder", h)
	j, err := json.Marshal(h)
	require.NoError(t, err)
	rendered = append(rendered, logs.String(), string(j), c.String(), c.GoString())

	for _, s := range rendered {
		assert.NotContains(t, strings.ToLower(s), testSecret)
	}
	assert.Contains(t, c.String(), "secret="+redacted)
	assert.Contains(t, fmt.Sprintf("%#v", c), "secret:"+redacted)

	_, err = ParseURL(c.String())
	assert.Error(t, err, "the redacted form must not parse as a usable connection")
}

func TestSecretURLRoundTrips(t *testing.T) {
	in := []string{"ws://127.0.0.1:1234", "wss://relay.example/with path?and=query&x=1"}
	c, err := NewConnection(testWallet, in, testSecret, "carol@example.com")
	require.NoError(t, err)
	u := c.SecretURL()
	assert.True(t, strings.HasPrefix(u, Scheme+"://"+testWallet+"?"))
	parsed, err := url.Parse(u)
	require.NoError(t, err, "SecretURL is a well-formed URL")
	assert.Equal(t, in, parsed.Query()["relay"])

	back, err := ParseURL(u)
	require.NoError(t, err)
	assert.Equal(t, c.WalletPubKey, back.WalletPubKey)
	assert.Equal(t, c.Relays, back.Relays)
	assert.Equal(t, c.LUD16, back.LUD16)
	assert.Equal(t, c.secretHex(), back.secretHex())
}

func TestNewClientRejectsZeroConnection(t *testing.T) {
	_, err := NewClient(Connection{WalletPubKey: testWallet, Relays: []string{"wss://r.example"}})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalidConnection)

	c, err := ParseURL(testURL("relay=wss://r.example&secret=" + testSecret))
	require.NoError(t, err)
	c.Relays = []string{"http://nope"}
	_, err = NewClient(c)
	assert.ErrorIs(t, err, ErrInvalidConnection, "fields edited after parsing are re-validated")
	assert.True(t, errors.Is(err, ErrInvalidConnection))
}
