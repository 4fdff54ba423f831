package payersign

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
)

// fuzzKey is the payer's key in FuzzSign (a test key: the scalar 2).
const fuzzKey = "0000000000000000000000000000000000000000000000000000000000000002"

// FuzzSign feeds sign requests, as a payer receives them in a
// usage.sign_request delivery's data (the sandbox metered client and
// `starter usage sign` decode a contract.SignRequest), to Sign. Whatever the
// request, an event Sign returns is one the engine takes: it passes the
// api's validator (billing.ValidNostrEvent) and go-nostr's check (Verify),
// carries the canonical receipt as content and the requested receipt id in
// its tag, and receipts.Verify accepts it for that id and the payer, unless
// the receipt is not version 2 (then RECEIPT_BAD_VERSION, nothing else).
func FuzzSign(f *testing.F) {
	for _, sr := range []contract.SignRequest{
		request(),
		{ReceiptID: strings.Repeat("0f", 32), Receipt: contract.Receipt{Version: 2, SessionID: "s1", ServiceID: "vpn", Unit: models.UnitSeconds,
			Units: 60, UnitPrice: 10, PriceUnits: 60, Value: 10, Currency: "usd", Seq: 1}, Event: contract.NostrEvent{ID: strings.Repeat("ab", 32)}, Attempt: 2},
		{ReceiptID: "x", Receipt: contract.Receipt{Version: 3}, Event: contract.NostrEvent{ID: "y"}},
	} {
		b, err := json.Marshal(sr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"receipt_id":"","event":{"id":"e"}}`))
	pub, err := PublicKey(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, data []byte) {
		var sr contract.SignRequest
		if json.Unmarshal(data, &sr) != nil {
			return
		}
		ev, err := Sign(fuzzKey, sr, at)
		if err != nil {
			if sr.ReceiptID != "" && sr.Event.ID != "" {
				t.Fatalf("a request with a receipt id and an engine event was not signed: %v", err)
			}
			return
		}
		if err := Verify(ev); err != nil {
			t.Fatalf("the payer's own event does not verify: %v", err)
		}
		if err := billing.ValidNostrEvent(ev); err != nil {
			t.Fatalf("the api would refuse the payer's event: %v", err)
		}
		if ev.Content != string(receipts.Canonical(sr.Receipt)) || ReceiptID(ev) != sr.ReceiptID || ev.PubKey != pub {
			t.Fatalf("the event signs content %q for receipt %q by %s", ev.Content, ReceiptID(ev), ev.PubKey)
		}
		ue := receipts.Verify(ev, models.TenantID(pub), sr.ReceiptID)
		switch {
		case sr.Receipt.Version == receipts.Version && ue != nil:
			t.Fatalf("the engine refuses the payer's answer: %v", ue)
		case sr.Receipt.Version != receipts.Version && (ue == nil || ue.Code != models.UsageReceiptBadVersion):
			t.Fatalf("a version %d receipt's answer gave %v, want RECEIPT_BAD_VERSION", sr.Receipt.Version, ue)
		}
	})
}

// FuzzParseSecretKey feeds payer keys as `starter usage sign --key` and the
// metered client take them. An accepted key is 64 lower-case hex digits
// with a public key, and parses to itself again, bare or as an nsec; a
// refused one is never repeated in the error.
func FuzzParseSecretKey(f *testing.F) {
	nsec, err := nip19.EncodePrivateKey(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{fuzzKey, "  " + strings.ToUpper(fuzzKey) + "\n", nsec, strings.ToUpper(nsec), "nsec1xyz",
		strings.Repeat("0", 64), strings.Repeat("f", 64), "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", fuzzKey[:62], ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sk, err := ParseSecretKey(in)
		if err != nil {
			if s := strings.TrimSpace(in); len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error %q repeats the key", err)
			}
			return
		}
		if len(sk) != 64 || strings.ToLower(sk) != sk {
			t.Fatalf("accepted key %q is not 64 lower-case hex digits", sk)
		}
		if _, err := PublicKey(sk); err != nil {
			t.Fatalf("accepted key has no public key: %v", err)
		}
		if again, err := ParseSecretKey(sk); err != nil || again != sk {
			t.Fatalf("accepted key does not parse to itself: %q %v", again, err)
		}
		n, err := nip19.EncodePrivateKey(sk)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := ParseSecretKey(n); err != nil || again != sk {
			t.Fatalf("accepted key as an nsec does not parse to itself: %q %v", again, err)
		}
	})
}
