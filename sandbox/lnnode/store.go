package lnnode

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// invoiceState mirrors lnd's invoice states that the sandbox uses.
type invoiceState int

const (
	stateOpen invoiceState = iota
	stateSettled
)

// invoice is the sandbox's record of one invoice. Exported fields are the
// persisted form (invoices.json).
type invoice struct {
	Hash            [32]byte      `json:"hash"`
	Preimage        [32]byte      `json:"preimage"`
	PaymentAddr     [32]byte      `json:"payment_addr"`
	PaymentRequest  string        `json:"payment_request"`
	Memo            string        `json:"memo"`
	DescriptionHash []byte        `json:"description_hash,omitempty"`
	ValueMsat       int64         `json:"value_msat"`
	Created         time.Time     `json:"created"`
	Expiry          time.Duration `json:"expiry"`
	CLTVExpiry      uint64        `json:"cltv_expiry"`
	State           invoiceState  `json:"state"`
	AddIndex        uint64        `json:"add_index"`
	SettleIndex     uint64        `json:"settle_index"`
	SettleDate      time.Time     `json:"settle_date"`
	AmtPaidMsat     int64         `json:"amt_paid_msat"`
}

func (inv *invoice) expiresAt() time.Time { return inv.Created.Add(inv.Expiry) }

// event is one notification for subscribers: an added or a settled invoice,
// as it was at that moment (lnd sends snapshots, not current state).
type event struct {
	settled bool
	inv     invoice
}

// store holds the invoices, the notification log and, with a file, their
// persisted copy. All fields are guarded by mu.
type store struct {
	mu       sync.Mutex
	path     string // invoices.json, or "" for memory only
	byHash   map[[32]byte]*invoice
	byAdd    []*invoice // byAdd[i].AddIndex == i+1
	bySettle []*invoice // bySettle[i].SettleIndex == i+1
	events   []event
	// changed is closed and replaced whenever events grows, waking every
	// subscriber without a per-subscriber channel to manage.
	changed chan struct{}
}

func newStore(path string) (*store, error) {
	s := &store{path: path, byHash: map[[32]byte]*invoice{}, changed: make(chan struct{})}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lnnode: read state: %w", err)
	}
	var saved []*invoice
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("lnnode: state file %s is corrupt: %w", path, err)
	}
	for _, inv := range saved {
		if inv.AddIndex != uint64(len(s.byAdd))+1 {
			return nil, fmt.Errorf("lnnode: state file %s: add indexes are not dense", path)
		}
		s.byHash[inv.Hash] = inv
		s.byAdd = append(s.byAdd, inv)
	}
	for _, inv := range s.byAdd {
		if inv.State == stateSettled {
			s.bySettle = append(s.bySettle, inv)
		}
	}
	slices.SortFunc(s.bySettle, func(a, b *invoice) int { return cmp.Compare(a.SettleIndex, b.SettleIndex) })
	for i, inv := range s.bySettle {
		if inv.SettleIndex != uint64(i)+1 {
			return nil, fmt.Errorf("lnnode: state file %s: settle indexes are not dense", path)
		}
	}
	return s, nil
}

// saveLocked writes every invoice to the state file, atomically (rename).
func (s *store) saveLocked() error {
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(s.byAdd)
	if err != nil {
		return fmt.Errorf("lnnode: encode state: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("lnnode: write state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("lnnode: write state: %w", err)
	}
	return nil
}

// notifyLocked appends an event and wakes subscribers.
func (s *store) notifyLocked(settled bool, inv *invoice) {
	s.events = append(s.events, event{settled: settled, inv: *inv})
	close(s.changed)
	s.changed = make(chan struct{})
}

// add stores a new invoice, assigning its add index. exists reports a
// duplicate payment hash.
func (s *store) add(inv *invoice) (exists bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byHash[inv.Hash]; ok {
		return true, nil
	}
	inv.AddIndex = uint64(len(s.byAdd)) + 1
	s.byHash[inv.Hash] = inv
	s.byAdd = append(s.byAdd, inv)
	if err := s.saveLocked(); err != nil {
		delete(s.byHash, inv.Hash)
		s.byAdd = s.byAdd[:len(s.byAdd)-1]
		return false, err
	}
	s.notifyLocked(false, inv)
	return false, nil
}

// lookup returns a copy of the invoice with this hash.
func (s *store) lookup(hash [32]byte) (invoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.byHash[hash]
	if !ok {
		return invoice{}, false
	}
	return *inv, true
}

// settle marks the invoice paid if check (run under the lock on the current
// record) allows it, assigning the next settle index.
func (s *store) settle(hash [32]byte, now time.Time, check func(*invoice) error) (invoice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.byHash[hash]
	if !ok {
		return invoice{}, ErrUnknownInvoice
	}
	if err := check(inv); err != nil {
		return invoice{}, err
	}
	prev := *inv
	inv.State = stateSettled
	inv.SettleIndex = uint64(len(s.bySettle)) + 1
	inv.SettleDate = now
	inv.AmtPaidMsat = inv.ValueMsat
	s.bySettle = append(s.bySettle, inv)
	if err := s.saveLocked(); err != nil {
		*inv = prev
		s.bySettle = s.bySettle[:len(s.bySettle)-1]
		return invoice{}, err
	}
	s.notifyLocked(true, inv)
	return *inv, nil
}

// list returns copies of invoices in add order.
func (s *store) list() []invoice {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]invoice, len(s.byAdd))
	for i, inv := range s.byAdd {
		out[i] = *inv
	}
	return out
}

// subscription follows the store the way lnd's invoice registry serves
// SubscribeInvoices: first the backlog (adds after addIndex, settlements
// after settleIndex; 0 means none), then live events, never repeating an
// index already sent.
type subscription struct {
	s          *store
	backlog    []event
	pos        int // next position in s.events
	lastAdd    uint64
	lastSettle uint64
}

func (s *store) subscribe(addIndex, settleIndex uint64) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &subscription{s: s, pos: len(s.events), lastAdd: addIndex, lastSettle: settleIndex}
	if addIndex > 0 {
		for _, inv := range s.byAdd[min(addIndex, uint64(len(s.byAdd))):] {
			// An add event, whatever the invoice's state now: lnd sends the
			// current invoice, so a settled one arrives as SETTLED here too.
			sub.backlog = append(sub.backlog, event{inv: *inv})
		}
	}
	if settleIndex > 0 {
		for _, inv := range s.bySettle[min(settleIndex, uint64(len(s.bySettle))):] {
			sub.backlog = append(sub.backlog, event{settled: true, inv: *inv})
		}
	}
	return sub
}

// next returns the events to send now, or a channel that is closed when
// there may be more.
func (sub *subscription) next() ([]event, <-chan struct{}) {
	if len(sub.backlog) > 0 {
		out := sub.backlog
		sub.backlog = nil
		sub.mark(out)
		return out, nil
	}
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	var out []event
	for _, ev := range sub.s.events[sub.pos:] {
		if ev.settled && ev.inv.SettleIndex <= sub.lastSettle {
			continue
		}
		if !ev.settled && ev.inv.AddIndex <= sub.lastAdd {
			continue
		}
		out = append(out, ev)
	}
	sub.pos = len(sub.s.events)
	if len(out) == 0 {
		return nil, sub.s.changed
	}
	sub.mark(out)
	return out, nil
}

func (sub *subscription) mark(evs []event) {
	for _, ev := range evs {
		if ev.settled {
			sub.lastSettle = max(sub.lastSettle, ev.inv.SettleIndex)
		} else {
			sub.lastAdd = max(sub.lastAdd, ev.inv.AddIndex)
		}
	}
}

// statePath is where a node with a data directory keeps its invoices.
func statePath(dir string) string { return filepath.Join(dir, "invoices.json") }
