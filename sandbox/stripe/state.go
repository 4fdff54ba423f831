package stripesandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the persisted form of a sandbox (Options.StateFile). Webhook
// settings, injected failures and the delivery log are not kept: they are
// the command line's and the tests'.
type stateFile struct {
	Customers      []*customer          `json:"customers"`
	PaymentMethods []savedPaymentMethod `json:"payment_methods"`
	PaymentIntents []savedPaymentIntent `json:"payment_intents"`
	Events         []savedEvent         `json:"events"`
	Idempotency    map[string]savedIdem `json:"idempotency"`
	Retrying       []pendingDelivery    `json:"retrying"`
	Seq            int                  `json:"seq"`
}

type savedPaymentMethod struct {
	PM  *paymentMethod `json:"pm"`
	Seq int            `json:"seq"`
}

type savedPaymentIntent struct {
	PI      *paymentIntent `json:"pi"`
	Charged bool           `json:"charged"`
}

type savedEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created int64           `json:"created"`
	Body    json.RawMessage `json:"body"`
}

type savedIdem struct {
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	Status      int       `json:"status"`
	Body        []byte    `json:"body"`
	RequestID   string    `json:"request_id"`
}

// loadState reads Options.StateFile, when it exists, into an empty server.
func (s *Server) loadState() error {
	if s.opts.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stripe sandbox: read state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("stripe sandbox: state file %s is not a sandbox state: %w", s.opts.StateFile, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range st.Customers {
		s.customers[c.ID] = c
	}
	for _, pm := range st.PaymentMethods {
		pm.PM.seq = pm.Seq
		s.paymentMethods[pm.PM.ID] = pm.PM
	}
	for _, pi := range st.PaymentIntents {
		pi.PI.charged = pi.Charged
		s.paymentIntents[pi.PI.ID] = pi.PI
		s.piOrder = append(s.piOrder, pi.PI.ID)
	}
	for _, e := range st.Events {
		ev := &event{ID: e.ID, Type: e.Type, Created: e.Created, body: e.Body}
		s.events = append(s.events, ev)
		s.eventsByID[ev.ID] = ev
	}
	for k, e := range st.Idempotency {
		s.idem[k] = &idemEntry{fingerprint: e.Fingerprint, created: e.Created, done: true,
			resp: response{status: e.Status, body: e.Body}, requestID: e.RequestID}
	}
	for _, p := range st.Retrying {
		if _, ok := s.eventsByID[p.EventID]; ok {
			s.retrying[p.EventID] = p
		}
	}
	s.seq = st.Seq
	s.log.Info("stripe sandbox: state loaded", "file", s.opts.StateFile, "payment_intents", len(s.piOrder),
		"events", len(s.events), "retrying", len(s.retrying))
	return nil
}

// resume restarts what a loaded state left running: deliveries being
// retried, and processing charges due to settle.
func (s *Server) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webhookURL != "" && !s.dropWebhooks {
		for _, ev := range s.events {
			if p, ok := s.retrying[ev.ID]; ok {
				s.startDeliveryLocked(s.webhookURL, ev, p)
			}
		}
	} else {
		clear(s.retrying)
	}
	for _, id := range s.piOrder {
		if pi := s.paymentIntents[id]; pi.Status == "processing" {
			s.scheduleSettleLocked(pi)
		}
	}
}

// scheduleSettleLocked settles a processing PaymentIntent as succeeded
// Options.SettleProcessingAfter after it was created. Callers hold s.mu.
func (s *Server) scheduleSettleLocked(pi *paymentIntent) {
	if s.opts.SettleProcessingAfter <= 0 || s.closed {
		return
	}
	id := pi.ID
	wait := time.Unix(pi.Created, 0).Add(s.opts.SettleProcessingAfter).Sub(s.now())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(max(wait, 0))
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if err := s.SettleProcessing(id, true); err != nil {
			s.log.Info("stripe sandbox: not settling", "payment_intent", id, "err", err)
			return
		}
		s.log.Info("stripe sandbox: processing charge settled", "payment_intent", id)
		if err := s.saveState(); err != nil {
			s.log.Error("stripe sandbox: saving state", "err", err)
		}
	}()
}

// saveState writes the state file (when configured) atomically: a crash
// leaves the previous or the new state, never half of one.
func (s *Server) saveState() error {
	if s.opts.StateFile == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	st := stateFile{Idempotency: map[string]savedIdem{}, Seq: s.seq}
	for _, c := range s.customers {
		st.Customers = append(st.Customers, c)
	}
	for _, pm := range s.paymentMethods {
		st.PaymentMethods = append(st.PaymentMethods, savedPaymentMethod{PM: pm, Seq: pm.seq})
	}
	for _, id := range s.piOrder {
		pi := s.paymentIntents[id]
		st.PaymentIntents = append(st.PaymentIntents, savedPaymentIntent{PI: pi, Charged: pi.charged})
	}
	for _, ev := range s.events {
		st.Events = append(st.Events, savedEvent{ID: ev.ID, Type: ev.Type, Created: ev.Created, Body: ev.body})
	}
	for k, e := range s.idem {
		if e.done { // an answer still being computed is not kept: its request never got one
			st.Idempotency[k] = savedIdem{Fingerprint: e.fingerprint, Created: e.created, Status: e.resp.status,
				Body: e.resp.body, RequestID: e.requestID}
		}
	}
	for _, p := range s.retrying {
		st.Retrying = append(st.Retrying, p)
	}
	s.dirty = false
	b, err := json.Marshal(st)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.opts.StateFile), ".stripe-state-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.opts.StateFile)
}

// flushLoop writes state changed outside API requests (delivery progress)
// a few times a second.
func (s *Server) flushLoop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		dirty := s.dirty
		s.mu.Unlock()
		if dirty {
			if err := s.saveState(); err != nil {
				s.log.Error("stripe sandbox: saving state", "err", err)
			}
		}
	}
}
