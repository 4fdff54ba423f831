package nwc

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// secretParam finds every raw secret= value in a URL-ish string.
var secretParam = regexp.MustCompile(`secret=([^&#]*)`)

// hexRun finds stretches that could be (part of) a hex key.
var hexRun = regexp.MustCompile(`[0-9a-fA-F]{8,}`)

// secretFragments are the hex runs of at least 8 characters in the input's
// secret values, raw and unescaped: what must never show up in an error.
func secretFragments(s string) []string {
	var out []string
	for _, m := range secretParam.FindAllStringSubmatch(s, -1) {
		vals := []string{m[1]}
		if u, err := url.QueryUnescape(m[1]); err == nil {
			vals = append(vals, u)
		}
		for _, v := range vals {
			for _, h := range hexRun.FindAllString(v, -1) {
				out = append(out, strings.ToLower(h))
			}
		}
	}
	return out
}

// secretShapedSeeds are corpus entries written as complete connection URLs
// with a secret (NIP-47's published example key and variations). They live
// here rather than in testdata/fuzz so that repository-wide scans for
// committed NWC secrets stay meaningful.
var secretShapedSeeds = []string{
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r#secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                                                                         // fragment
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=https://r.example&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                                                               // http_relay
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c&lud16=a@b@c",                                                             // lud16_bad
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=ws://127.0.0.1:7777&relay=wss://relay.example/nwc&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c&lud16=alice@getalby.com",       // multi_relay_lud16
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                                                      // nip47_example
	"nostr+walletconnect://ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff?relay=wss://r&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                                                                         // pubkey_off_curve
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                // secret_in_relay
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r&secret=fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",                                                                         // secret_order
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c00",                                                                       // secret_too_long
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r&secret=0000000000000000000000000000000000000000000000000000000000000000",                                                                         // secret_zero
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r;secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",                                                                         // semicolon
	"nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss://r&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c", // two_secrets
}

func FuzzParseURL(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzParseURL.
	f.Add(testURL("relay=wss%3A%2F%2Frelay.damus.io&secret=" + testSecret))
	f.Add(testURL("relay=ws://127.0.0.1:1&relay=wss://b.example&secret=" + testSecret + "&lud16=a@b.c"))
	f.Add(testURL("relay=https://x&secret=" + testSecret))
	f.Add("nostr+walletconnect:" + testWallet + "?secret=" + testSecret[:40])
	for _, s := range secretShapedSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseURL(in)
		if err != nil {
			msg := strings.ToLower(err.Error())
			for _, frag := range secretFragments(in) {
				if strings.Contains(msg, frag) {
					t.Fatalf("error %q leaks secret fragment %q", err, frag)
				}
			}
			if c.valid() || c.WalletPubKey != "" || c.Relays != nil {
				t.Fatalf("a failed parse returned a non-zero connection")
			}
			return
		}
		if !c.valid() || c.ClientPubKey() == "" {
			t.Fatalf("accepted connection has no usable secret")
		}
		if s := c.String() + c.GoString(); strings.Contains(s, c.secretHex()) {
			t.Fatalf("rendering leaks the secret")
		}
		back, err := ParseURL(c.SecretURL())
		if err != nil {
			t.Fatalf("SecretURL of an accepted connection does not parse: %v", err)
		}
		if back.WalletPubKey != c.WalletPubKey || back.LUD16 != c.LUD16 || back.secretHex() != c.secretHex() ||
			!slices.Equal(back.Relays, c.Relays) || !back.Equal(c) {
			t.Fatalf("round trip changed the connection: %#v -> %#v", c, back)
		}
	})
}

func TestSecretFragments(t *testing.T) {
	got := secretFragments("x?secret=" + testSecret[:10] + "%41%42zz&secret=abc")
	if len(got) == 0 || !strings.Contains(got[0], testSecret[:10]) {
		t.Fatalf("fragments = %q", got)
	}
}
