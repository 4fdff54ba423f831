package relay

import (
	"cmp"
	"slices"
	"strconv"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"pgregory.net/rapid"
)

// TestStoreMatchesModel checks, for random publish sequences (duplicates,
// replaceable, addressable and ephemeral kinds, clashing timestamps) and
// random filters, that Query returns exactly what a direct model of NIP-01's
// storage rules returns, in newest-first order.
func TestStoreMatchesModel(t *testing.T) {
	// Signing and verifying dominate under -race, so events come from a pool
	// signed once and skip re-verification.
	keys := []string{nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()}
	var pool []nostr.Event
	for _, sk := range keys {
		for _, kind := range []int{1, 0, 10050, 30078, 20001} {
			for ts := nostr.Timestamp(100); ts < 103; ts++ {
				for _, d := range []string{"a", "b"} {
					tags := nostr.Tags{{"d", d}, {"t", "x" + strconv.Itoa(int(ts)%2)}}
					pool = append(pool, signed(t, sk, kind, ts, tags, d))
				}
			}
		}
	}
	pks := make([]string, len(keys))
	for i, sk := range keys {
		pks[i], _ = nostr.GetPublicKey(sk)
	}

	rapid.Check(t, func(rt *rapid.T) {
		r := New(Options{})
		defer r.Close()
		var model []nostr.Event
		for _, i := range rapid.SliceOfN(rapid.IntRange(0, len(pool)-1), 0, 25).Draw(rt, "publish") {
			ev := pool[i]
			r.admit(&ev) // past accept's signature check, tested elsewhere
			model = modelSave(model, ev)
		}

		var f nostr.Filter
		if rapid.Bool().Draw(rt, "byKind") {
			f.Kinds = rapid.SliceOfNDistinct(rapid.SampledFrom([]int{1, 0, 10050, 30078, 20001}), 1, 3, rapid.ID).Draw(rt, "kinds")
		}
		if rapid.Bool().Draw(rt, "byAuthor") {
			f.Authors = []string{rapid.SampledFrom(pks).Draw(rt, "author")}
		}
		if rapid.Bool().Draw(rt, "byTag") {
			f.Tags = nostr.TagMap{"t": {rapid.SampledFrom([]string{"x0", "x1"}).Draw(rt, "t")}}
		}
		if rapid.Bool().Draw(rt, "bySince") {
			since := nostr.Timestamp(rapid.IntRange(99, 103).Draw(rt, "since"))
			f.Since = &since
		}
		if rapid.Bool().Draw(rt, "byUntil") {
			until := nostr.Timestamp(rapid.IntRange(99, 103).Draw(rt, "until"))
			f.Until = &until
		}
		f.Limit = rapid.IntRange(0, 30).Draw(rt, "limit")

		var want []string
		for _, ev := range model {
			if f.Matches(&ev) {
				want = append(want, ev.ID)
			}
		}
		if f.Limit > 0 && len(want) > f.Limit {
			want = want[:f.Limit]
		}
		got := ids(r.Query(f))
		if !slices.Equal(want, got) {
			rt.Fatalf("filter %v\nwant %v\ngot  %v", f, want, got)
		}
	})
}

// modelSave applies NIP-01's storage rules to a newest-first slice.
func modelSave(stored []nostr.Event, ev nostr.Event) []nostr.Event {
	if ev.IsEphemeral() || slices.ContainsFunc(stored, func(s nostr.Event) bool { return s.ID == ev.ID }) {
		return stored
	}
	slot := func(e nostr.Event) string {
		switch {
		case e.IsReplaceable():
			return strconv.Itoa(e.Kind) + e.PubKey
		case e.IsAddressable():
			return strconv.Itoa(e.Kind) + e.PubKey + e.Tags.GetD()
		}
		return ""
	}
	if key := slot(ev); key != "" {
		for i, s := range stored {
			if slot(s) != key {
				continue
			}
			if s.CreatedAt > ev.CreatedAt || (s.CreatedAt == ev.CreatedAt && s.ID < ev.ID) {
				return stored // the stored version wins
			}
			stored = slices.Delete(stored, i, i+1)
			break
		}
	}
	stored = append(stored, ev)
	slices.SortFunc(stored, func(a, b nostr.Event) int {
		if c := cmp.Compare(b.CreatedAt, a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return stored
}
