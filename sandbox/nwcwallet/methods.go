package nwcwallet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
)

// payInvoice decodes the invoice, checks the balance, pays through the
// Payer and debits the amount. Paying an invoice this wallet already paid
// returns the same preimage without paying again, so a client retrying
// after an unknown outcome cannot pay twice.
func (w *Wallet) payInvoice(p nwc.PayInvoiceRequest) nwc.Response {
	const m = nwc.MethodPayInvoice
	inv, err := decodeInvoice(p.Invoice, w.opts.Network)
	if err != nil || inv.PaymentHash == nil {
		return failure(m, nwc.CodeOther, "not a valid BOLT11 invoice for this wallet's network")
	}
	if inv.MilliSat == nil {
		return failure(m, nwc.CodeOther, "invoices without an amount are not supported")
	}
	amount := int64(*inv.MilliSat)
	if p.AmountMsat != 0 && p.AmountMsat != amount {
		return failure(m, nwc.CodeOther, "the amount does not match the invoice")
	}
	hash := hex.EncodeToString(inv.PaymentHash[:])

	w.payMu.Lock()
	defer w.payMu.Unlock()
	w.mu.Lock()
	if prev := w.outgoing[hash]; prev != nil {
		w.mu.Unlock()
		return success(m, nwc.PayInvoiceResult{Preimage: prev.Preimage})
	}
	if time.Now().After(inv.Timestamp.Add(inv.Expiry())) {
		w.mu.Unlock()
		return failure(m, nwc.CodePaymentFailed, "the invoice has expired")
	}
	if w.forceInsufficient || w.balance < amount {
		w.mu.Unlock()
		return failure(m, nwc.CodeInsufficientBalance, "the balance does not cover the payment")
	}
	// Reserve first: the balance must never be spent twice while Pay runs.
	w.balance -= amount
	w.mu.Unlock()

	ctx, cancel := context.WithTimeout(w.ctx, w.opts.PayTimeout)
	preimage, err := w.opts.Payer.Pay(ctx, p.Invoice)
	cancel()
	if err != nil {
		w.mu.Lock()
		w.balance += amount
		w.mu.Unlock()
		w.log.Info("nwc payment failed", "payment_hash", hash, "err", err)
		return failure(m, nwc.CodePaymentFailed, "payment failed: "+err.Error())
	}
	preimage = strings.ToLower(preimage)
	if !preimageMatches(preimage, *inv.PaymentHash) {
		// The node says it paid, so the money is gone: keep the debit, and
		// answer with a code that does not invite a blind retry.
		w.log.Error("nwc payer returned a preimage that does not match", "payment_hash", hash)
		return failure(m, nwc.CodeOther, "the node reported the payment with an invalid preimage")
	}
	now := time.Now()
	w.mu.Lock()
	w.outgoing[hash] = &Payment{
		PaymentHash: hash, Invoice: p.Invoice, AmountMsat: amount,
		Preimage: preimage, CreatedAt: now, SettledAt: now,
	}
	w.mu.Unlock()
	return success(m, nwc.PayInvoiceResult{Preimage: preimage})
}

func (w *Wallet) makeInvoice(p nwc.MakeInvoiceRequest) nwc.Response {
	const m = nwc.MethodMakeInvoice
	if p.AmountMsat <= 0 {
		return failure(m, nwc.CodeOther, "amount must be a positive number of millisatoshis")
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.PayTimeout)
	defer cancel()
	inv, err := w.opts.Invoices.CreateInvoice(ctx, lightning.CreateInvoiceRequest{
		AmountMsat: p.AmountMsat, Memo: p.Description, Expiry: p.Expiry,
	})
	if err != nil {
		w.log.Warn("nwc make_invoice failed", "err", err)
		return failure(m, nwc.CodeInternal, "the node could not create the invoice")
	}
	w.mu.Lock()
	w.incoming[inv.PaymentHash] = &incoming{inv: inv}
	w.mu.Unlock()
	tx := incomingTx(inv)
	tx.DescriptionHash = p.DescriptionHash
	return success(m, tx)
}

func (w *Wallet) lookupInvoice(p nwc.LookupInvoiceRequest) nwc.Response {
	const m = nwc.MethodLookupInvoice
	hash := strings.ToLower(p.PaymentHash)
	if hash == "" && p.Invoice != "" {
		inv, err := decodeInvoice(p.Invoice, w.opts.Network)
		if err != nil || inv.PaymentHash == nil {
			return failure(m, nwc.CodeOther, "not a valid BOLT11 invoice")
		}
		hash = hex.EncodeToString(inv.PaymentHash[:])
	}
	if hash == "" {
		return failure(m, nwc.CodeOther, "payment_hash or invoice is required")
	}
	w.mu.Lock()
	out := w.outgoing[hash]
	in := w.incoming[hash]
	w.mu.Unlock()
	if out != nil {
		return success(m, nwc.Transaction{
			Type: nwc.TransactionOutgoing, Invoice: out.Invoice, Preimage: out.Preimage,
			PaymentHash: out.PaymentHash, AmountMsat: out.AmountMsat,
			CreatedAt: out.CreatedAt, SettledAt: out.SettledAt,
		})
	}
	if in == nil || w.opts.Invoices == nil {
		return failure(m, nwc.CodeNotFound, "no invoice or payment with that hash")
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.PayTimeout)
	defer cancel()
	inv, err := w.opts.Invoices.LookupInvoice(ctx, hash)
	if err != nil {
		w.log.Warn("nwc lookup_invoice failed", "err", err)
		return failure(m, nwc.CodeInternal, "the node could not look the invoice up")
	}
	w.credit(inv)
	return success(m, incomingTx(inv))
}

func incomingTx(inv lightning.Invoice) nwc.Transaction {
	tx := nwc.Transaction{
		Type: nwc.TransactionIncoming, Invoice: inv.PaymentRequest, Description: inv.Memo,
		PaymentHash: inv.PaymentHash, AmountMsat: inv.AmountMsat,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
	}
	if inv.Settled {
		tx.SettledAt = inv.SettledAt
		if tx.SettledAt.IsZero() {
			tx.SettledAt = time.Now()
		}
	}
	return tx
}

// bolt11Nets are tried in this order because their prefixes nest (lnbcrt
// before lnbc, lntbs before lntb).
var bolt11Nets = []*chaincfg.Params{
	&chaincfg.RegressionNetParams, &chaincfg.MainNetParams, &chaincfg.SigNetParams,
	&chaincfg.TestNet3Params, &chaincfg.SimNetParams,
}

func decodeInvoice(s string, net *chaincfg.Params) (*zpay32.Invoice, error) {
	if net != nil {
		return zpay32.Decode(s, net)
	}
	err := errors.New("empty invoice")
	for _, n := range bolt11Nets {
		var inv *zpay32.Invoice
		if inv, err = zpay32.Decode(s, n); err == nil {
			return inv, nil
		}
	}
	return nil, err
}

// networkName is the NIP-47 get_info network name.
func networkName(net *chaincfg.Params) string {
	switch {
	case net == nil:
		return "regtest"
	case net.Name == chaincfg.MainNetParams.Name:
		return "mainnet"
	case net.Name == chaincfg.TestNet3Params.Name:
		return "testnet"
	default:
		return net.Name
	}
}

func preimageMatches(preimageHex string, hash [32]byte) bool {
	p, err := hex.DecodeString(preimageHex)
	if err != nil || len(p) != 32 {
		return false
	}
	return sha256.Sum256(p) == hash
}
