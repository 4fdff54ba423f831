package lnnode

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
)

// The sandbox's "network" for payouts is one remote node, the payee, with
// its own key: the engine's node reaches it (as if over a direct channel,
// fee 0) and nothing else. Payee invoices and the engine's outgoing
// payments live in payouts.json next to invoices.json.

// payeeKeyFile keeps the payee's identity across restarts.
const payeeKeyFile = "payee.key"

// ErrPaymentNotFound: the engine's node has no outgoing payment for a hash.
var ErrPaymentNotFound = errors.New("lnnode: no outgoing payment for this payment hash")

// payment is the engine's node's record of one outgoing payment, as lnd's
// payment database keeps it. Exported fields are the persisted form.
type payment struct {
	Hash           [32]byte                    `json:"hash"`
	PaymentRequest string                      `json:"payment_request"`
	ValueMsat      int64                       `json:"value_msat"`
	FeeMsat        int64                       `json:"fee_msat"`
	Preimage       [32]byte                    `json:"preimage"`
	Status         lnrpc.Payment_PaymentStatus `json:"status"`
	FailureReason  lnrpc.PaymentFailureReason  `json:"failure_reason"`
	Created        time.Time                   `json:"created"`
	Index          uint64                      `json:"index"`
}

// payouts holds the payee's invoices and the engine's outgoing payments,
// with their persisted copy. All fields are guarded by mu.
type payouts struct {
	mu       sync.Mutex
	path     string // payouts.json, or "" for memory only
	invoices map[[32]byte]*invoice
	order    []*invoice // in creation order; AddIndex is the position+1
	payments map[[32]byte]*payment
	seq      uint64 // last payment index
	// hold keeps new payments to the payee in flight until release.
	hold bool
	// changed is closed and replaced whenever a payment changes, waking
	// every stream that follows one.
	changed chan struct{}
}

// payoutsFile is the persisted form of payouts.
type payoutsFile struct {
	PayeeInvoices []*invoice `json:"payee_invoices"`
	Payments      []*payment `json:"payments"`
}

func newPayouts(path string) (*payouts, error) {
	p := &payouts{path: path, invoices: map[[32]byte]*invoice{}, payments: map[[32]byte]*payment{}, changed: make(chan struct{})}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lnnode: read payouts: %w", err)
	}
	var saved payoutsFile
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("lnnode: payouts file %s is corrupt: %w", path, err)
	}
	for _, inv := range saved.PayeeInvoices {
		p.invoices[inv.Hash] = inv
		p.order = append(p.order, inv)
	}
	for _, pay := range saved.Payments {
		p.payments[pay.Hash] = pay
		p.seq = max(p.seq, pay.Index)
	}
	return p, nil
}

// saveLocked writes the payouts file atomically (rename).
func (p *payouts) saveLocked() error {
	if p.path == "" {
		return nil
	}
	f := payoutsFile{PayeeInvoices: p.order, Payments: make([]*payment, 0, len(p.payments))}
	for _, pay := range p.payments {
		f.Payments = append(f.Payments, pay)
	}
	slices.SortFunc(f.Payments, func(a, b *payment) int { return cmp.Compare(a.Index, b.Index) })
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("lnnode: encode payouts: %w", err)
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("lnnode: write payouts: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("lnnode: write payouts: %w", err)
	}
	return nil
}

func (p *payouts) addInvoice(inv *invoice) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.invoices[inv.Hash]; ok {
		return errors.New("lnnode: payee invoice with this payment hash already exists")
	}
	inv.AddIndex = uint64(len(p.order)) + 1
	p.invoices[inv.Hash] = inv
	p.order = append(p.order, inv)
	if err := p.saveLocked(); err != nil {
		delete(p.invoices, inv.Hash)
		p.order = p.order[:len(p.order)-1]
		return err
	}
	return nil
}

func (p *payouts) invoice(hash [32]byte) (invoice, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inv, ok := p.invoices[hash]
	if !ok {
		return invoice{}, false
	}
	return *inv, true
}

// payment returns the payment for hash and a channel closed at its next
// change (of any payment).
func (p *payouts) payment(hash [32]byte) (payment, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pay, ok := p.payments[hash]
	if !ok {
		return payment{}, p.changed, false
	}
	return *pay, p.changed, true
}

func (p *payouts) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// setHold turns holding of new payee payments on or off.
func (p *payouts) setHold(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = hold
}

// release settles every payment in flight: the payee's invoice and the
// payment (the payee accepted the HTLC when it was sent). It returns how
// many it settled.
func (p *payouts) release(now time.Time) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	type undo struct {
		pay        *payment
		invoice    *invoice
		invoiceWas invoice
		payWas     payment
	}
	var done []undo
	for _, pay := range p.payments {
		if pay.Status != lnrpc.Payment_IN_FLIGHT {
			continue
		}
		u := undo{pay: pay, payWas: *pay}
		if inv, ok := p.invoices[pay.Hash]; ok && inv.State != stateSettled {
			u.invoice, u.invoiceWas = inv, *inv
			settleLocked(inv, pay, now)
		} else {
			pay.Status = lnrpc.Payment_FAILED
			pay.FailureReason = lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
		}
		done = append(done, u)
	}
	if len(done) == 0 {
		return 0, nil
	}
	if err := p.saveLocked(); err != nil {
		for _, u := range done {
			*u.pay = u.payWas
			if u.invoice != nil {
				*u.invoice = u.invoiceWas
			}
		}
		return 0, err
	}
	p.notifyLocked()
	return len(done), nil
}

// settleLocked marks the payee's invoice paid by pay, and pay succeeded.
func settleLocked(inv *invoice, pay *payment, now time.Time) {
	inv.State = stateSettled
	inv.SettleDate = now.Truncate(time.Second)
	inv.AmtPaidMsat = pay.ValueMsat
	inv.SettleIndex = inv.AddIndex
	pay.Status = lnrpc.Payment_SUCCEEDED
	pay.FailureReason = lnrpc.PaymentFailureReason_FAILURE_REASON_NONE
	pay.Preimage = inv.Preimage
}

// Errors of send, with lnd's texts (channeldb/payment_control.go).
var (
	errAlreadyPaid     = errors.New("invoice is already paid")
	errPaymentInFlight = errors.New("payment is in transition")
)

// send records one payment attempt and its outcome at once, the way lnd's
// control tower refuses a hash it has in flight or has paid and allows a
// retry after a failure. toPayee says the destination is the payee; the
// payee then settles its invoice (or rejects the HTLC as lnd's invoice
// registry would: unknown, already settled or expired hash).
func (p *payouts) send(hash [32]byte, bolt11 string, amountMsat int64, toPayee bool, now time.Time) (payment, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.payments[hash]; ok {
		switch prev.Status {
		case lnrpc.Payment_SUCCEEDED:
			return payment{}, errAlreadyPaid
		case lnrpc.Payment_IN_FLIGHT, lnrpc.Payment_INITIATED:
			return payment{}, errPaymentInFlight
		}
	}
	pay := &payment{
		Hash:           hash,
		PaymentRequest: bolt11,
		ValueMsat:      amountMsat,
		Created:        now,
		Index:          p.seq + 1,
		Status:         lnrpc.Payment_FAILED,
		FailureReason:  lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE,
	}
	var settled *invoice
	var before invoice
	if toPayee {
		inv, ok := p.invoices[hash]
		switch {
		case !ok, inv.State == stateSettled, !now.Before(inv.expiresAt()), inv.ValueMsat > 0 && inv.ValueMsat != amountMsat:
			// The payee fails the HTLC back: incorrect or unknown payment details.
			pay.FailureReason = lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
		case p.hold:
			// The payee holds the HTLC: in flight until release.
			pay.Status = lnrpc.Payment_IN_FLIGHT
			pay.FailureReason = lnrpc.PaymentFailureReason_FAILURE_REASON_NONE
		default:
			before = *inv
			settleLocked(inv, pay, now)
			settled = inv
		}
	}
	prev, hadPrev := p.payments[hash]
	p.payments[hash] = pay
	p.seq++
	if err := p.saveLocked(); err != nil {
		p.seq--
		if hadPrev {
			p.payments[hash] = prev
		} else {
			delete(p.payments, hash)
		}
		if settled != nil {
			*settled = before
		}
		return payment{}, err
	}
	p.notifyLocked()
	return *pay, nil
}

// payoutsPath is where a node with a data directory keeps payee invoices
// and outgoing payments.
func payoutsPath(dir string) string { return filepath.Join(dir, "payouts.json") }

// loadPayeeKey returns the payee's key, kept in DataDir like the node's.
func (n *Node) loadPayeeKey() (*btcec.PrivateKey, error) {
	keyBytes, err := n.secret(payeeKeyFile, func() ([]byte, error) {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k.Serialize())), nil
	})
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(keyBytes)))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("lnnode: %s is not a hex secp256k1 private key", payeeKeyFile)
	}
	key, _ := btcec.PrivKeyFromBytes(raw)
	return key, nil
}

// PayeePubKey is the hex compressed public key of the sandbox's remote
// payee, the one node the engine's node can pay.
func (n *Node) PayeePubKey() string { return n.payeePub }

// PayeeInvoice makes an invoice of the remote payee, which the engine's
// node can pay over SendPaymentV2 (a withdrawal's destination). amountMsat
// 0 makes an amount-less invoice (which billflow refuses to pay: for
// tests); expiry 0 is lnd's default, 24h. It returns the BOLT11 string and
// the hex payment hash.
func (n *Node) PayeeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (bolt11 string, hashHex string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	switch {
	case amountMsat < 0:
		return "", "", fmt.Errorf("%w: amount %d msat is negative", ErrInvalidInvoice, amountMsat)
	case uint64(amountMsat) > maxInvoiceMsat:
		return "", "", fmt.Errorf("%w: amount %d msat is too large", ErrInvalidInvoice, amountMsat)
	case len(memo) > maxMemoBytes:
		return "", "", fmt.Errorf("%w: memo is %d bytes, lnd allows %d", ErrInvalidInvoice, len(memo), maxMemoBytes)
	case expiry < 0 || expiry > maxExpiry:
		return "", "", fmt.Errorf("%w: expiry %s is outside [0, %s]", ErrInvalidInvoice, expiry, maxExpiry)
	case expiry%time.Second != 0:
		return "", "", fmt.Errorf("%w: expiry %s is not whole seconds", ErrInvalidInvoice, expiry)
	}
	if expiry == 0 {
		expiry = defaultExpiry
	}
	inv := &invoice{
		Memo:       memo,
		ValueMsat:  amountMsat,
		Created:    n.now().Truncate(time.Second),
		Expiry:     expiry,
		CLTVExpiry: defaultCLTVExpiry,
	}
	if _, err := rand.Read(inv.Preimage[:]); err != nil {
		return "", "", fmt.Errorf("lnnode: preimage: %w", err)
	}
	inv.Hash = sha256.Sum256(inv.Preimage[:])
	if _, err := rand.Read(inv.PaymentAddr[:]); err != nil {
		return "", "", fmt.Errorf("lnnode: payment address: %w", err)
	}
	if inv.PaymentRequest, err = n.encodeWith(n.payeeKey, inv); err != nil {
		return "", "", fmt.Errorf("lnnode: encode payee invoice: %w", err)
	}
	if err := n.payouts.addInvoice(inv); err != nil {
		return "", "", err
	}
	hashHex = hex.EncodeToString(inv.Hash[:])
	n.log.InfoContext(ctx, "payee invoice added", "payment_hash", hashHex, "value_msat", amountMsat)
	return inv.PaymentRequest, hashHex, nil
}

// HoldPayouts makes the payee hold the HTLCs of payments made from now on
// (until ReleasePayouts): they stay IN_FLIGHT, persisted as such, the way
// a slow route or a payee holding an HTLC looks on lnd. For tests of
// payouts whose outcome is not known at once. A restarted node keeps them
// in flight (and no longer holds new ones) until ReleasePayouts.
func (n *Node) HoldPayouts() { n.payouts.setHold(true) }

// ReleasePayouts stops holding, and settles every payment in flight (the
// payee's invoice too), waking every stream that follows one. It returns
// how many payments it settled.
func (n *Node) ReleasePayouts() (int, error) {
	n.payouts.setHold(false)
	return n.payouts.release(n.now())
}

// PayeeInvoiceState reports whether the payee's invoice with this hex
// payment hash has been paid, and how much it received; ErrUnknownInvoice
// if the payee never issued it.
func (n *Node) PayeeInvoiceState(hashHex string) (settled bool, amtPaidMsat int64, err error) {
	inv, err := n.payeeInvoice(hashHex)
	if err != nil {
		return false, 0, err
	}
	return inv.State == stateSettled, inv.AmtPaidMsat, nil
}

func (n *Node) payeeInvoice(hashHex string) (invoice, error) {
	raw, err := hex.DecodeString(hashHex)
	if err != nil || len(raw) != 32 {
		return invoice{}, fmt.Errorf("%w: payment hash %q is not 32 hex-encoded bytes", ErrInvalidInvoice, hashHex)
	}
	inv, ok := n.payouts.invoice([32]byte(raw))
	if !ok {
		return invoice{}, fmt.Errorf("%w: the payee has no invoice %x", ErrUnknownInvoice, raw)
	}
	return inv, nil
}
