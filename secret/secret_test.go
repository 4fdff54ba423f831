package secret

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func testBox(t *testing.T, fill byte) *Box {
	t.Helper()
	b, err := NewBox(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b, _ := NewBox(rapid.SliceOfN(rapid.Byte(), KeySize, KeySize).Draw(t, "key"))
		plain := rapid.SliceOf(rapid.Byte()).Draw(t, "plain")
		ad := rapid.SliceOf(rapid.Byte()).Draw(t, "ad")
		sealed, err := b.Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Open(sealed, ad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %v %x != %x", err, got, plain)
		}
	})
}

func TestSealedValueHidesPlaintextAndIsRandomised(t *testing.T) {
	b := testBox(t, 1)
	plain := []byte("nostr+walletconnect://abc?secret=deadbeef")
	s1, _ := b.Seal(plain, []byte("tenant-a"))
	s2, _ := b.Seal(plain, []byte("tenant-a"))
	if s1 == s2 {
		t.Fatal("two seals of the same value are equal: nonce reuse")
	}
	if strings.Contains(s1, "deadbeef") || strings.Contains(s1, "walletconnect") {
		t.Fatal("sealed value shows the plaintext")
	}
}

func TestOpenRejectsTamperingWrongKeyAndWrongBinding(t *testing.T) {
	b := testBox(t, 1)
	sealed, _ := b.Seal([]byte("secret"), []byte("tenant-a"))
	cases := map[string]func() (string, *Box, []byte){
		"wrong key":      func() (string, *Box, []byte) { return sealed, testBox(t, 2), []byte("tenant-a") },
		"other tenant":   func() (string, *Box, []byte) { return sealed, b, []byte("tenant-b") },
		"no prefix":      func() (string, *Box, []byte) { return strings.TrimPrefix(sealed, version), b, []byte("tenant-a") },
		"truncated":      func() (string, *Box, []byte) { return sealed[:10], b, []byte("tenant-a") },
		"not base64":     func() (string, *Box, []byte) { return version + "!!!", b, []byte("tenant-a") },
		"flipped a byte": func() (string, *Box, []byte) { return flip(sealed), b, []byte("tenant-a") },
	}
	for name, c := range cases {
		s, box, ad := c()
		if _, err := box.Open(s, ad); err != ErrOpen {
			t.Errorf("%s: got %v, want ErrOpen", name, err)
		}
	}
}

func flip(s string) string {
	r := []byte(s)
	i := len(r) - 5
	if r[i] == 'A' {
		r[i] = 'B'
	} else {
		r[i] = 'A'
	}
	return string(r)
}

func TestParseKey(t *testing.T) {
	if _, err := ParseKey(strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	bad := "zz" + strings.Repeat("ab", 31)
	_, err := ParseKey(bad)
	if err == nil || strings.Contains(err.Error(), bad) {
		t.Fatalf("bad key: err=%v (must not echo the input)", err)
	}
	if _, err := ParseKey("abcd"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewBox(make([]byte, 16)); err == nil {
		t.Fatal("AES-128 key accepted")
	}
}
