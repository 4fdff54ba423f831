package nwc

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/nbd-wtf/go-nostr"
)

// fuzzMethods are the methods FuzzReadAnswer answers, by the fuzzer's byte.
var fuzzMethods = []string{MethodPayInvoice, MethodMakeInvoice, MethodLookupInvoice, MethodGetBalance, MethodGetInfo}

// walletCode is the shape sanitizeCode keeps.
var walletCode = regexp.MustCompile(`^[A-Z_]{1,64}$`)

// fuzzResult is a fresh result value of method's type.
func fuzzResult(method string) any {
	switch method {
	case MethodPayInvoice:
		return &PayInvoiceResult{}
	case MethodMakeInvoice, MethodLookupInvoice:
		return &Transaction{}
	case MethodGetBalance:
		return &BalanceResult{}
	default:
		return &InfoResult{}
	}
}

// FuzzReadAnswer feeds NIP-47 response events (kind 23195) to readAnswer,
// the client's parser of what comes back from a wallet's relays. content is
// the response JSON, encrypted to the client (NIP-04 or NIP-44 v2) unless
// raw, when it is the event's content as is: the ciphertext parsers see
// whatever anyone on the relay sends.
//
// The answer is nil, a *WalletError (for the method asked, its code in
// NIP-47's A-Z_ shape, its message free of control characters and bounded)
// or an *UnknownOutcomeError (for the method and request asked), nothing
// else; no error contains the connection secret, nor the plaintext of an
// answer that is not NIP-47 JSON. An answer read into a result reads the
// same again from the result's own encoding (parse -> encode -> parse).
func FuzzReadAnswer(f *testing.F) {
	f.Add(`{"result_type":"pay_invoice","result":{"preimage":"`+strings.Repeat("ab", 32)+`","fees_paid":1000}}`, uint8(0), false, false)
	f.Add(`{"result_type":"pay_invoice","error":{"code":"INSUFFICIENT_BALANCE","message":"not enough"}}`, uint8(0), true, false)
	f.Add(`{"result_type":"make_invoice","result":{"type":"incoming","invoice":"lnbc1","payment_hash":"`+strings.Repeat("cd", 32)+
		`","amount":1000,"fees_paid":0,"created_at":1700000000,"expires_at":1700003600,"metadata":{"a": [1, 2]}}}`, uint8(1), true, false)
	f.Add(`{"result_type":"lookup_invoice","result":{"type":"outgoing","settled_at":-1,"amount":-5}}`, uint8(2), false, false)
	f.Add(`{"result_type":"get_balance","result":{"balance":9223372036854775807}}`, uint8(3), true, false)
	f.Add(`{"result_type":"get_info","result":{"methods":["pay_invoice"],"block_height":1}}`, uint8(4), false, false)
	f.Add(`{"result_type":"get_balance","error":{"code":"rate limited\u0000","message":"`+strings.Repeat("é\n", 200)+`"}}`, uint8(3), false, false)
	f.Add(`{"result_type":"make_invoice"}`, uint8(0), true, false)
	f.Add(`{"error":{}}`, uint8(0), false, false)
	f.Add(`not json at all, but a secret-looking plaintext`, uint8(0), true, false)
	f.Add(`AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAAAAAAAAAAAAAAAAAAAA==`, uint8(0), false, true)
	f.Add(`Ag==`, uint8(0), false, true)

	conn, err := ParseURL(testURL("relay=wss://relay.example&secret=" + testSecret))
	if err != nil {
		f.Fatal(err)
	}
	c, err := NewClient(conn)
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	const requestID = "req-1"

	f.Fuzz(func(t *testing.T, content string, methodByte uint8, nip44, raw bool) {
		method := fuzzMethods[int(methodByte)%len(fuzzMethods)]
		evContent := content
		if !raw {
			enc := EncryptionNIP04
			if nip44 {
				enc = EncryptionNIP44v2
			}
			var err error
			if evContent, err = EncryptContent(enc, testSecret, testWallet, content); err != nil {
				return // NIP-44 bounds a plaintext to 1..65535 bytes
			}
		}
		ev := &nostr.Event{Kind: KindResponse, PubKey: testWallet, Content: evContent}
		result := fuzzResult(method)
		err := c.readAnswer(log, method, requestID, ev, result)

		if err != nil {
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("error %q contains the connection secret", err)
			}
			var we *WalletError
			var ue *UnknownOutcomeError
			switch {
			case errors.As(err, &we):
				if we.Method != method || !walletCode.MatchString(string(we.Code)) || len(we.Message) > maxWalletMessage+len("…") ||
					strings.IndexFunc(we.Message, unicode.IsControl) >= 0 {
					t.Fatalf("wallet error not sanitised: %#v", we)
				}
			case errors.As(err, &ue):
				if ue.Method != method || ue.RequestID != requestID {
					t.Fatalf("unknown outcome for %q %q, asked %q %q", ue.Method, ue.RequestID, method, requestID)
				}
				if !raw && len(content) >= 12 && strings.Contains(err.Error(), content) {
					t.Fatalf("error %q quotes the decrypted answer", err)
				}
			default:
				t.Fatalf("answer is a %T: %v", err, err)
			}
			return
		}

		// Read: encoding the result and answering with it reads the same.
		enc1, err := json.Marshal(result)
		if err != nil {
			t.Fatalf("result read from the wallet does not encode: %v", err)
		}
		again := fuzzResult(method)
		body, err := json.Marshal(Response{ResultType: method, Result: enc1})
		if err != nil {
			t.Fatal(err)
		}
		ct, err := EncryptContent(EncryptionNIP44v2, testSecret, testWallet, string(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.readAnswer(log, method, requestID, &nostr.Event{Kind: KindResponse, Content: ct}, again); err != nil {
			t.Fatalf("the result's own encoding is refused: %v", err)
		}
		if enc2, _ := json.Marshal(again); !bytes.Equal(enc1, enc2) {
			t.Fatalf("parse -> encode -> parse changed the result:\n%s\n%s", enc1, enc2)
		}
	})
}

// fuzzWalletKey signs the wallet's events in FuzzRelayDispatch (a test
// key: the scalar 3).
const fuzzWalletKey = "0000000000000000000000000000000000000000000000000000000000000003"

// FuzzRelayDispatch feeds relay messages, as a relay (or whoever answers on
// its socket) sends them, to the relay connection's dispatch, with one
// subscription open for a wallet's responses. An event reaches the
// subscription only when it matches the subscription's filter and its id
// (64 hex digits, the hash of the event) and signature verify; anything
// else is dropped without a panic.
func FuzzRelayDispatch(f *testing.F) {
	walletPub, err := nostr.GetPublicKey(fuzzWalletKey)
	if err != nil {
		f.Fatal(err)
	}
	reqID := strings.Repeat("ab", 32)
	ev := nostr.Event{Kind: KindResponse, CreatedAt: 1_760_000_000, Content: "x?iv=y", Tags: nostr.Tags{{"e", reqID}}}
	if err := ev.Sign(fuzzWalletKey); err != nil {
		f.Fatal(err)
	}
	msg := func(sub string, ev nostr.Event) []byte {
		b, err := json.Marshal([]any{"EVENT", sub, ev})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(msg("nwc:1", ev))
	short := ev
	short.ID = ""
	f.Add(msg("nwc:1", short))
	short.ID = ev.ID[:10]
	f.Add(msg("nwc:1", short))
	badSig := ev
	badSig.Content = "changed"
	f.Add(msg("nwc:1", badSig))
	f.Add(msg("nwc:2", ev))
	f.Add([]byte(`["EOSE","nwc:1"]`))
	f.Add([]byte(`["CLOSED","nwc:1","rate-limited: slow down"]`))
	f.Add([]byte(`["OK","` + ev.ID + `",true,""]`))
	f.Add([]byte(`["NOTICE","hello"]`))
	f.Add([]byte(`["EVENT","nwc:1",{"kind":23195,"pubkey":"` + walletPub + `","tags":[["e","` + reqID + `"]],"id":"0"}]`))

	f.Fuzz(func(t *testing.T, data []byte) {
		filters := nostr.Filters{{Kinds: []int{KindResponse}, Authors: []string{walletPub}, Tags: nostr.TagMap{"e": {reqID}}}}
		r := &wsRelay{url: "wss://relay.example", subs: map[string]*wsSub{}, oks: map[string]chan okReply{}, done: make(chan struct{})}
		s := &wsSub{id: "nwc:1", relay: r, filters: filters, events: make(chan *nostr.Event, subscriptionBuffer),
			eose: make(chan struct{}), done: make(chan struct{})}
		r.subs[s.id] = s
		ok := make(chan okReply, 1)
		r.oks[ev.ID] = ok

		r.dispatch(data)

		select {
		case got := <-s.events:
			if !filters.Match(got) || !nostr.IsValid32ByteHex(got.ID) || !got.CheckID() {
				t.Fatalf("delivered an event that does not match or whose id does not verify: %+v", got)
			}
			if valid, err := got.CheckSignature(); !valid || err != nil {
				t.Fatalf("delivered an event whose signature does not verify: %+v", got)
			}
		default:
		}
	})
}
