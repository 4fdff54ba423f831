package nwcwallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
)

const (
	connectTimeout = 10 * time.Second
	maxBackoff     = 5 * time.Second
)

// runRelay keeps one relay connection serving for the wallet's lifetime,
// reconnecting with backoff. It signals ready once, when the wallet first
// listens on the relay.
func (w *Wallet) runRelay(url string, ready chan<- struct{}) {
	reported := false
	report := func() {
		if !reported {
			reported = true
			ready <- struct{}{}
		}
	}
	backoff := 50 * time.Millisecond
	for {
		err := w.serveRelay(url, report)
		if w.ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.lastErr = err
		w.mu.Unlock()
		w.log.Warn("nwc wallet relay connection ended; reconnecting", "relay", url, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// serveRelay connects, announces the wallet, subscribes to requests and
// hands each to a goroutine until the connection or the wallet ends.
func (w *Wallet) serveRelay(url string, onReady func()) error {
	cctx, cancel := context.WithTimeout(w.ctx, connectTimeout)
	rc, err := w.opts.RelayConnector(cctx, url)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()

	info := nwc.InfoEvent(nwc.WalletInfo{Methods: w.methods(), Encryptions: w.enc})
	if err := info.Sign(w.sk); err != nil {
		return errors.New("nwcwallet: signing the info event failed")
	}
	pctx, cancel := context.WithTimeout(w.ctx, w.opts.PublishTimeout)
	err = rc.Publish(pctx, info)
	cancel()
	if err != nil {
		return fmt.Errorf("nwcwallet: publishing the info event: %w", err)
	}

	sub, err := rc.Subscribe(w.ctx, nostr.Filters{{
		Kinds: []int{nwc.KindRequest},
		Tags:  nostr.TagMap{"p": {w.pub}},
	}})
	if err != nil {
		return fmt.Errorf("nwcwallet: subscribing to requests: %w", err)
	}
	defer sub.Close()
	// EOSE proves the relay registered the REQ: only then can a request
	// published after Start returns be relied on to reach us.
	t := time.NewTimer(w.opts.PublishTimeout)
	select {
	case <-sub.EOSE():
		t.Stop()
	case <-sub.Done():
		t.Stop()
		return sub.Err()
	case <-t.C:
		return errors.New("nwcwallet: relay did not confirm the subscription")
	case <-w.ctx.Done():
		t.Stop()
		return nil
	}

	w.setConn(url, rc)
	defer w.setConn(url, nil)
	onReady()
	w.log.Debug("nwc wallet listening", "relay", url)
	for {
		select {
		case ev := <-sub.Events():
			w.wg.Go(func() { w.handle(ev) })
		case <-sub.Done():
			return sub.Err()
		case <-w.ctx.Done():
			return nil
		}
	}
}

func (w *Wallet) setConn(url string, rc nwc.RelayConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rc == nil {
		delete(w.conns, url)
		return
	}
	w.conns[url] = rc
}

func (w *Wallet) liveConns() []nwc.RelayConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]nwc.RelayConn, 0, len(w.conns))
	for _, rc := range w.conns {
		if rc.Err() == nil {
			out = append(out, rc)
		}
	}
	return out
}

// markSeen reports whether id is new: the same request arrives once per
// relay and again after a resubscribe.
func (w *Wallet) markSeen(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[id] {
		return false
	}
	if len(w.seen) >= maxSeen {
		w.seen = map[string]bool{}
	}
	w.seen[id] = true
	return true
}

// takeDrop consumes one "leave unanswered" token, or reports silence.
func (w *Wallet) takeDrop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.silent {
		return true
	}
	if w.dropNext > 0 {
		w.dropNext--
		return true
	}
	return false
}

func (w *Wallet) handle(ev *nostr.Event) {
	if !w.markSeen(ev.ID) {
		return
	}
	rec := Received{
		EventID:      ev.ID,
		ClientPubKey: ev.PubKey,
		Encryption:   nwc.RequestEncryption(ev),
		Tags:         ev.Tags,
		Outcome:      OutcomePending,
	}
	log := w.log.With("request_id", ev.ID, "client", ev.PubKey)
	if exp, ok := nwc.Expiration(ev); ok {
		rec.Expiration = exp
		// NIP-47: a request seen after its expiration must be ignored.
		if !time.Now().Before(exp) {
			rec.Outcome = OutcomeExpired
			w.record(rec)
			log.Debug("nwc request expired; ignored")
			return
		}
	}

	enc := rec.Encryption
	if !w.supports(enc) {
		w.record(rec)
		if !w.supports(nwc.EncryptionNIP04) {
			rec.Outcome = OutcomeDropped
			w.record(rec)
			return
		}
		// The client cannot read a scheme it did not pick; NIP-04 is the
		// one every client understands.
		w.answer(ev, rec, nwc.EncryptionNIP04, failure("", nwc.CodeUnsupportedEncryption, "this wallet does not accept "+string(enc)))
		return
	}
	plain, err := nwc.DecryptContent(enc, w.sk, ev.PubKey, ev.Content)
	if err != nil {
		w.record(rec)
		w.answer(ev, rec, enc, failure("", nwc.CodeOther, "the request could not be decrypted"))
		return
	}
	var req nwc.Request
	if err := json.Unmarshal([]byte(plain), &req); err != nil || req.Method == "" {
		w.record(rec)
		w.answer(ev, rec, enc, failure("", nwc.CodeOther, "the request is not NIP-47 JSON"))
		return
	}
	rec.Method = req.Method
	w.record(rec)

	if w.takeDrop() {
		rec.Outcome = OutcomeDropped
		w.record(rec)
		log.Debug("nwc request dropped on purpose", "method", req.Method)
		return
	}
	resp := w.dispatch(ev.PubKey, req)
	if !w.hold(rec) {
		return
	}
	w.answer(ev, rec, enc, resp)
}

// hold keeps a finished answer back until the reply delay has passed since
// the work was done. A changed delay is applied to answers already held, so
// SetReplyDelay(0) releases them at once. It reports false if the wallet
// stopped meanwhile.
func (w *Wallet) hold(rec Received) bool {
	done := time.Now()
	held := false
	for {
		w.mu.Lock()
		remaining := w.replyDelay - time.Since(done)
		changed := w.delayChanged
		w.mu.Unlock()
		if remaining <= 0 {
			return true
		}
		if !held {
			held = true
			rec.Outcome = OutcomeHeld
			w.record(rec)
		}
		t := time.NewTimer(remaining)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-w.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// answer encrypts resp to the requester, publishes it on every live relay
// and records the outcome.
func (w *Wallet) answer(req *nostr.Event, rec Received, enc nwc.Encryption, resp nwc.Response) {
	if resp.Error != nil {
		rec.ErrorCode = resp.Error.Code
	}
	body, err := json.Marshal(resp)
	if err == nil {
		var content string
		content, err = nwc.EncryptContent(enc, w.sk, req.PubKey, string(body))
		if err == nil {
			ev := nostr.Event{
				Kind:      nwc.KindResponse,
				CreatedAt: nostr.Now(),
				Content:   content,
				Tags:      nostr.Tags{{"p", req.PubKey}, {"e", req.ID}},
			}
			if err = ev.Sign(w.sk); err != nil {
				err = errors.New("nwcwallet: signing the response failed")
			} else {
				err = w.publish(ev)
			}
		}
	}
	rec.Outcome = OutcomeAnswered
	if err != nil {
		rec.Outcome = OutcomePublishError
		w.log.Warn("nwc answer not delivered", "request_id", req.ID, "err", err)
	}
	w.record(rec)
	w.log.Debug("nwc request answered", "request_id", req.ID, "method", rec.Method, "code", string(rec.ErrorCode))
}

// publish sends ev to every live relay in parallel (the client may listen
// on any of them); one acknowledgement is enough.
func (w *Wallet) publish(ev nostr.Event) error {
	conns := w.liveConns()
	if len(conns) == 0 {
		return errors.New("nwcwallet: no relay connected")
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.PublishTimeout)
	defer cancel()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Go(func() { errs[i] = rc.Publish(ctx, ev) })
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return errors.Join(errs...)
}

func success(method string, result any) nwc.Response {
	raw, err := json.Marshal(result)
	if err != nil {
		return failure(method, nwc.CodeInternal, "could not encode the result")
	}
	return nwc.Response{ResultType: method, Result: raw}
}

func failure(method string, code nwc.ErrorCode, msg string) nwc.Response {
	return nwc.Response{ResultType: method, Error: &nwc.ResponseError{Code: code, Message: msg}}
}

// dispatch runs one decrypted request from client.
func (w *Wallet) dispatch(client string, req nwc.Request) nwc.Response {
	w.mu.Lock()
	authorized := w.clients[client]
	limited := w.rateLimited
	w.mu.Unlock()
	if !authorized {
		return failure(req.Method, nwc.CodeUnauthorized, "no wallet is connected to this key")
	}
	if limited {
		return failure(req.Method, nwc.CodeRateLimited, "slow down and retry in a few seconds")
	}
	params := req.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	switch req.Method {
	case nwc.MethodPayInvoice:
		if w.opts.Payer == nil {
			break
		}
		var p nwc.PayInvoiceRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return failure(req.Method, nwc.CodeOther, "malformed pay_invoice params")
		}
		return w.payInvoice(p)
	case nwc.MethodMakeInvoice:
		if w.opts.Invoices == nil {
			break
		}
		var p nwc.MakeInvoiceRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return failure(req.Method, nwc.CodeOther, "malformed make_invoice params")
		}
		return w.makeInvoice(p)
	case nwc.MethodLookupInvoice:
		var p nwc.LookupInvoiceRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return failure(req.Method, nwc.CodeOther, "malformed lookup_invoice params")
		}
		return w.lookupInvoice(p)
	case nwc.MethodGetBalance:
		return success(req.Method, nwc.BalanceResult{BalanceMsat: w.Balance()})
	case nwc.MethodGetInfo:
		return success(req.Method, nwc.InfoResult{
			Alias:   w.opts.Alias,
			Color:   "#f7931a",
			Pubkey:  w.pub,
			Network: networkName(w.opts.Network),
			Methods: w.methods(),
		})
	}
	return failure(req.Method, nwc.CodeNotImplemented, "this wallet does not offer "+sanitizeMethod(req.Method))
}

// sanitizeMethod keeps an arbitrary client string out of our messages
// unless it is a plausible method name.
func sanitizeMethod(m string) string {
	if len(m) > 40 {
		return "that method"
	}
	for _, c := range m {
		if (c < 'a' || c > 'z') && c != '_' {
			return "that method"
		}
	}
	return m
}

// watchSettled credits the wallet for its own invoices as the node settles
// them, resuming after the last settle index it saw.
func (w *Wallet) watchSettled() {
	var after uint64
	backoff := 50 * time.Millisecond
	for {
		err := w.opts.Invoices.SubscribeSettled(w.ctx, after, func(inv lightning.Invoice) error {
			w.credit(inv)
			after = max(after, inv.SettleIndex)
			return nil
		})
		if w.ctx.Err() != nil {
			return
		}
		w.log.Warn("nwc wallet settlement stream ended; resubscribing", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// credit adds a settled incoming invoice's amount to the balance, once.
func (w *Wallet) credit(inv lightning.Invoice) {
	if !inv.Settled {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	in := w.incoming[inv.PaymentHash]
	if in == nil || in.credited {
		return
	}
	in.credited = true
	in.inv = inv
	paid := inv.AmtPaidMsat
	if paid == 0 {
		paid = inv.AmountMsat
	}
	w.balance += paid
}
