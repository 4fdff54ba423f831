package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The usage commands check their flags before connecting: these fail with
// exit code 2 naming the mistake, with no Temporal reachable.
func TestUsageCommandsCheckInputFirst(t *testing.T) {
	const payer = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	requireInvalid(t, runCLI(t, "usage", "start", "--payer", payer, "--max-unit-price", "5"), "--service is required")
	requireInvalid(t, runCLI(t, "usage", "start", "--service", "vpn", "--payer", payer), "--max-unit-price is required")
	requireInvalid(t, runCLI(t, "usage", "start", "--service", "vpn", "--payer", "bob", "--max-unit-price", "5"), "--payer", `"bob" is not a Nostr public key`)
	requireInvalid(t, runCLI(t, "usage", "start", "--service", "vpn", "--payer", payer, "--max-unit-price", "-1"), "--max-unit-price", "-1 is negative")
	requireInvalid(t, runCLI(t, "usage", "start", "--service", "vpn", "--payer", payer, "--max-unit-price", "5", "--session", "a/b"), "session_id", `"a/b"`)
	requireInvalid(t, runCLI(t, "usage", "report", "--seconds", "5"), "--session is required")
	requireInvalid(t, runCLI(t, "usage", "report", "--session", "s1"), "at least one of --seconds, --bytes-received and --bytes-sent")
	requireInvalid(t, runCLI(t, "usage", "report", "--session", "s1", "--seconds", "-3"), "--seconds", "-3 is negative")
	requireInvalid(t, runCLI(t, "usage", "sign", "--key", "00"), "--session is required")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1"), "exactly one of --event and --key")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", "{}", "--key", "00"), "exactly one of --event and --key")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", "not json"), "--event", "not a Nostr event's JSON")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", `{"id":"x","bogus":1}`), "--event", "bogus")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", "@/nonexistent/event.json"), "read --event")
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", `{"id":"x"}`), "event.id", "64 lower-case hex digits")
	requireInvalid(t, runCLI(t, "usage", "end"), "--session is required")
	requireInvalid(t, runCLI(t, "usage", "show", "--session", "a b"), "session_id")
	requireInvalid(t, runCLI(t, "usage", "bogus"), `unknown command "bogus"`)
}

// A bad --key is refused without repeating it (it is a secret).
func TestUsageSignBadKeyNotEchoed(t *testing.T) {
	const secretish = "nsec1notreallyakeybutsecretish"
	r := runCLI(t, "usage", "sign", "--session", "s1", "--key", secretish)
	requireInvalid(t, r, "--key", "not a valid nsec")
	assert.NotContains(t, r.stderr, secretish)
	r = runCLI(t, "usage", "sign", "--session", "s1", "--key", strings.Repeat("z", 64))
	requireInvalid(t, r, "--key", "not 64 hex digits")
	assert.NotContains(t, r.stderr, strings.Repeat("z", 64))
}

// --event @FILE reads the event from a file.
func TestUsageSignEventFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(path, []byte(`{"id":"short"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	requireInvalid(t, runCLI(t, "usage", "sign", "--session", "s1", "--event", "@"+path), "event.id", `"short"`)
}

// --key - reads the key from standard input (off the command line).
func TestUsageReadKeyFromStdin(t *testing.T) {
	const sk = "0000000000000000000000000000000000000000000000000000000000000003"
	got, err := readKey(strings.NewReader("\n  "+sk+"\n"), "-")
	assert.NoError(t, err)
	assert.Equal(t, sk, got)
	_, err = readKey(strings.NewReader(""), "-")
	assert.ErrorContains(t, err, "--key")
}
