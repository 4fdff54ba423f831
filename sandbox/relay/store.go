package relay

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// record is an accepted event plus its canonical JSON, encoded once so every
// delivery to every subscriber shares the same bytes.
type record struct {
	ev        nostr.Event
	raw       []byte
	expiresAt int64 // NIP-40 expiration in unix seconds, 0 when absent
}

func (rec *record) expired(now int64) bool {
	return rec.expiresAt != 0 && rec.expiresAt <= now
}

// store is the relay's in-memory event database. It is not safe for
// concurrent use on its own: Relay.mu guards it.
type store struct {
	max int
	// events is sorted oldest first by (created_at ascending, id descending),
	// so walking it backwards yields NIP-01's newest-first order with ties
	// broken by the lowest id, the same tie-break replaceable events use.
	events []*record
	byID   map[string]*record
	// byAddr holds the current version of each replaceable and addressable
	// event, keyed by replaceKey.
	byAddr map[string]*record
}

func newStore(maxEvents int) *store {
	return &store{
		max:    maxEvents,
		byID:   make(map[string]*record),
		byAddr: make(map[string]*record),
	}
}

// before reports whether a sorts before b in s.events.
func before(a, b *nostr.Event) bool {
	if a.CreatedAt != b.CreatedAt {
		return a.CreatedAt < b.CreatedAt
	}
	return a.ID > b.ID
}

// replaceKey identifies the slot a replaceable or addressable event occupies;
// "" for every other kind.
func replaceKey(ev *nostr.Event) string {
	switch {
	case ev.IsReplaceable():
		return strconv.Itoa(ev.Kind) + ":" + ev.PubKey
	case ev.IsAddressable():
		return strconv.Itoa(ev.Kind) + ":" + ev.PubKey + ":" + ev.Tags.GetD()
	default:
		return ""
	}
}

// newer reports whether a wins over b for the same replaceable slot: the
// later created_at, or on a tie the lowest id (NIP-01).
func newer(a, b *nostr.Event) bool {
	if a.CreatedAt != b.CreatedAt {
		return a.CreatedAt > b.CreatedAt
	}
	return a.ID < b.ID
}

// save stores rec, enforcing replaceable semantics and the size cap. It
// returns ok=false and a NIP-01 reason when rec is not stored.
func (s *store) save(rec *record) (ok bool, reason string) {
	if _, dup := s.byID[rec.ev.ID]; dup {
		return true, "duplicate: already have this event"
	}
	if key := replaceKey(&rec.ev); key != "" {
		if cur, exists := s.byAddr[key]; exists {
			if !newer(&rec.ev, &cur.ev) {
				return false, "duplicate: a newer version of this replaceable event is stored"
			}
			s.remove(cur)
		}
		s.byAddr[key] = rec
	}
	i, _ := slices.BinarySearchFunc(s.events, rec, func(a, b *record) int {
		if before(&a.ev, &b.ev) {
			return -1
		}
		if before(&b.ev, &a.ev) {
			return 1
		}
		return 0
	})
	s.events = slices.Insert(s.events, i, rec)
	s.byID[rec.ev.ID] = rec
	for s.max > 0 && len(s.events) > s.max {
		s.remove(s.events[0])
	}
	return true, ""
}

func (s *store) remove(rec *record) {
	delete(s.byID, rec.ev.ID)
	if key := replaceKey(&rec.ev); key != "" && s.byAddr[key] == rec {
		delete(s.byAddr, key)
	}
	if i := slices.Index(s.events, rec); i >= 0 {
		s.events = slices.Delete(s.events, i, i+1)
	}
}

// query returns up to limit stored, unexpired events matching f, newest
// first. limit <= 0 means no events.
func (s *store) query(f *nostr.Filter, limit int, now int64) []*record {
	if limit <= 0 {
		return nil
	}
	var out []*record
	if f.IDs != nil {
		// Looking ids up directly keeps the common "fetch this event" query
		// independent of the store's size.
		for _, id := range f.IDs {
			if rec, ok := s.byID[id]; ok && !rec.expired(now) && f.Matches(&rec.ev) {
				out = append(out, rec)
			}
		}
		sortNewestFirst(out)
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	for i := len(s.events) - 1; i >= 0 && len(out) < limit; i-- {
		rec := s.events[i]
		if f.Until != nil && rec.ev.CreatedAt > *f.Until {
			continue
		}
		if f.Since != nil && rec.ev.CreatedAt < *f.Since {
			break // everything further back is older still
		}
		if !rec.expired(now) && f.Matches(&rec.ev) {
			out = append(out, rec)
		}
	}
	return out
}

// purgeExpired drops events whose NIP-40 expiration has passed so an idle
// store does not keep them forever.
func (s *store) purgeExpired(now int64) {
	var dead []*record
	for _, rec := range s.events {
		if rec.expired(now) {
			dead = append(dead, rec)
		}
	}
	for _, rec := range dead {
		s.remove(rec)
	}
}

// expiration parses a NIP-40 expiration tag; 0 when absent or unparsable.
func expiration(ev *nostr.Event) int64 {
	tag := ev.Tags.GetFirst([]string{"expiration", ""})
	if tag == nil || len(*tag) < 2 {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace((*tag)[1]), 10, 64)
	if err != nil || v <= 0 {
		return 0
	}
	return v
}

func unixNow() int64 { return time.Now().Unix() }
