package receipts_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
)

// The payer's key in the fuzz seeds (a test key: the scalar 2).
const fuzzPayerKey = "0000000000000000000000000000000000000000000000000000000000000002"

// fuzzReceipt is the receipt the fuzz seeds sign, and the payer's public key.
func fuzzReceipt(tb testing.TB) (contract.Receipt, models.TenantID) {
	pk, err := nostr.GetPublicKey(fuzzPayerKey)
	if err != nil {
		tb.Fatal(err)
	}
	return contract.Receipt{Version: receipts.Version, SessionID: "s1", ServiceID: "vpn", Payer: models.TenantID(pk), Unit: models.UnitSeconds,
		Units: 60, UnitPrice: 10, PriceUnits: 60, Value: 10, Currency: "usd", Seq: 1}, models.TenantID(pk)
}

// FuzzVerify feeds payer answers, as the api's POST
// /v1/usage/sessions/{id}/signatures decodes them ({"event": ...} carries a
// contract.NostrEvent), to receipts.Verify, the session workflow's check.
// A refusal is a *UsageError with a receipt code and a message. An
// acceptance is an event of kind 9741, version 2, for the receipt the
// session waits for, by the payer, whose id and BIP-340 signature go-nostr
// verifies on its own (payersign.Verify); it also passes the api's shape
// check (billing.ValidNostrEvent: lower-case hex of the right sizes, the
// validator in front of Verify), survives JSON encode -> decode and go-nostr
// conversion unchanged, and stops verifying when its content changes.
//
// The id the session waits for is the seed receipt's (even want) or the
// one the event names (odd want), so the fuzzer reaches every check.
func FuzzVerify(f *testing.F) {
	r, _ := fuzzReceipt(f)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good, err := receipts.SignAs(fuzzPayerKey, r, at)
	if err != nil {
		f.Fatal(err)
	}
	seed := func(ev contract.NostrEvent, want uint8) {
		b, err := json.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, want)
	}
	seed(good, 0)
	seed(good, 1)
	upper := good
	upper.Sig = strings.ToUpper(upper.Sig)
	seed(upper, 0)
	upperKey := good
	upperKey.PubKey = strings.ToUpper(upperKey.PubKey)
	seed(upperKey, 0)
	other, err := receipts.SignAs("0000000000000000000000000000000000000000000000000000000000000003", r, at)
	if err != nil {
		f.Fatal(err)
	}
	seed(other, 0)
	f.Add([]byte(`{"kind":9741}`), uint8(0))
	f.Add([]byte(`null`), uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, want uint8) {
		var ev contract.NostrEvent
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		r, payer := fuzzReceipt(t)
		wantID := receipts.ID(r)
		if want%2 == 1 {
			wantID = receipts.ReceiptIDOf(ev)
		}
		ue := receipts.Verify(ev, payer, wantID)
		if ue != nil {
			switch ue.Code {
			case models.UsageReceiptBadSignature, models.UsageReceiptBadVersion, models.UsageReceiptCantFind, models.UsageReceiptWrongPayer:
			default:
				t.Fatalf("refusal with code %q: %v", ue.Code, ue)
			}
			if strings.TrimSpace(ue.Message) == "" {
				t.Fatalf("refusal %q says nothing", ue.Code)
			}
			return
		}

		if ev.Kind != receipts.Kind || receipts.ReceiptIDOf(ev) != wantID || !strings.EqualFold(ev.PubKey, string(payer)) {
			t.Fatalf("accepted an event of kind %d for receipt %q by %s", ev.Kind, receipts.ReceiptIDOf(ev), ev.PubKey)
		}
		if err := payersign.Verify(ev); err != nil {
			t.Fatalf("accepted an event go-nostr does not verify: %v", err)
		}
		if err := billing.ValidNostrEvent(ev); err != nil {
			t.Fatalf("accepted an event the api's validator refuses: %v", err)
		}
		if back := receipts.FromNostr(receipts.ToNostr(ev)); !reflect.DeepEqual(back, ev) && !(len(ev.Tags) == 0 && len(back.Tags) == 0) {
			t.Fatalf("go-nostr conversion changed the event:\n%+v\n%+v", ev, back)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var again contract.NostrEvent
		if err := json.Unmarshal(b, &again); err != nil || receipts.Verify(again, payer, wantID) != nil {
			t.Fatalf("accepted event does not verify after encode -> decode: %v", err)
		}
		changed := ev
		changed.Content += " "
		if receipts.Verify(changed, payer, wantID) == nil {
			t.Fatalf("the event still verifies with other content")
		}
	})
}

// FuzzCanonical holds a receipt's id to the canonical encoding it hashes:
// Canonical is a JSON array of the 13 fields in their fixed order that
// decodes back to the receipt (so two receipts with valid UTF-8 strings
// that differ in any field have different ids), and the id is 64 lower-case
// hex digits. Strings that are not valid UTF-8 are out of scope: JSON
// replaces their bad bytes, and the engine only issues receipts of
// validated, printable ids.
func FuzzCanonical(f *testing.F) {
	r, _ := fuzzReceipt(f)
	f.Add(r.Version, r.SessionID, r.ServiceID, string(r.Payer), r.Provider, string(r.Unit), r.Units, r.UnitPrice, r.PriceUnits, r.Value, string(r.Currency), r.Seq, r.Prev)
	f.Add(2, `s"1`, "v\\pn", "", "", "BYTE", int64(-1), int64(1<<62), int64(0), int64(-1<<63), "", int64(0), "<>&\u2028")
	f.Fuzz(func(t *testing.T, version int, session, service, payer, provider, unit string, units, unitPrice, priceUnits, value int64,
		currency string, seq int64, prev string) {
		r := contract.Receipt{Version: version, SessionID: session, ServiceID: service, Payer: models.TenantID(payer), Provider: provider,
			Unit: models.ServiceUnit(unit), Units: units, UnitPrice: unitPrice, PriceUnits: priceUnits, Value: value,
			Currency: models.Currency(currency), Seq: seq, Prev: prev}
		id := receipts.ID(r)
		if len(id) != 64 || !nostr.IsValid32ByteHex(id) {
			t.Fatalf("id %q is not 64 lower-case hex digits", id)
		}
		var fields []json.RawMessage
		if err := json.Unmarshal(receipts.Canonical(r), &fields); err != nil || len(fields) != 13 {
			t.Fatalf("canonical %s is not a JSON array of 13 fields: %v", receipts.Canonical(r), err)
		}
		for _, s := range []string{session, service, payer, provider, unit, currency, prev} {
			if !utf8.ValidString(s) {
				return
			}
		}
		var back contract.Receipt
		dst := []any{&back.Version, &back.SessionID, &back.ServiceID, &back.Payer, &back.Provider, &back.Unit, &back.Units,
			&back.UnitPrice, &back.PriceUnits, &back.Value, &back.Currency, &back.Seq, &back.Prev}
		for i, raw := range fields {
			if err := json.Unmarshal(raw, dst[i]); err != nil {
				t.Fatalf("field %d (%s): %v", i, raw, err)
			}
		}
		if back != r {
			t.Fatalf("canonical encoding does not decode to the receipt:\n%+v\n%+v", r, back)
		}
	})
}
