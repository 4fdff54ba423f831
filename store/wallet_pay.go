package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// RailWallet is an invoice paid from the tenant's wallet (PayFromWallet).
// Its payments' money reference is "wallet:<invoice id>" and their reference
// the ledger key "invoice/<invoice id>"; no report from outside can claim it
// (Settle refuses the rail).
const RailWallet = "wallet"

// Outcomes of PayFromWallet.
const (
	// WalletPaid: the wallet paid the amount due; the invoice is paid.
	WalletPaid = "paid"
	// WalletNotCovered: the wallet does not pay this invoice (Reason says
	// why); nothing was written.
	WalletNotCovered = "not_covered"
	// WalletAlreadyPaid: the invoice had been paid another way; nothing was
	// written.
	WalletAlreadyPaid = "already_paid"
)

// Why a wallet does not pay an invoice (WalletPayResult.Reason).
const (
	WalletNoWallet   = "no_wallet"
	WalletTurnedOff  = "turned_off"
	WalletOtherCur   = "currency_mismatch"
	WalletNotEnough  = "not_enough"
	WalletTopUpOnly  = "top_up"
	WalletNothingDue = "nothing_due"
)

// WalletPayResult is the outcome of PayFromWallet.
type WalletPayResult struct {
	// Outcome is WalletPaid, WalletNotCovered or WalletAlreadyPaid.
	Outcome string
	// Reason says why the wallet did not pay (WalletNotCovered).
	Reason string
	// Duplicate: the wallet had paid this invoice before; this is that
	// first outcome and nothing changed.
	Duplicate bool
	Invoice   Invoice
	// Payment is the wallet's payment of the invoice (WalletPaid).
	Payment Payment
	// Promise and Settle are the ledger entries that took the money (WalletPaid).
	Promise, Settle WalletEntry
	// Due is what the invoice needed; Spendable what the wallet had when it
	// did not pay, or has left after paying.
	Due, Spendable int64
	// TenantStatus is the tenant's standing (active, grace, suspended).
	TenantStatus string
}

// walletInvoiceKey is the ledger source key of an invoice paid from the wallet.
func walletInvoiceKey(invoiceID string) string { return "invoice/" + invoiceID }

// PayFromWallet pays an open invoice from its tenant's wallet when the
// wallet covers the whole amount due, in the invoice's currency, and the
// tenant has not turned paying invoices from the wallet off
// (wallets.pay_invoices_from_wallet). In one transaction, under the
// invoice's row lock: a promise of the amount due and its settle entry
// (both keyed "invoice/<id>"; grants consumed first, as SettlePromises
// does), then the payment recorded with rail "wallet" through Settle's own
// logic (the payment row, the invoice paid, its entitlement, the discount
// slot, invoice.paid). The room is taken by one conditional UPDATE of the
// wallet row, so concurrent payments and promises never overspend.
//
// Anything short of that is WalletNotCovered with nothing written. An
// invoice the wallet paid already returns that first outcome (Duplicate);
// one paid another way is WalletAlreadyPaid; a voided or written-off one is
// ErrInvoiceClosed; an unknown one ErrNotFound.
func (s *Store) PayFromWallet(ctx context.Context, invoiceID string, at time.Time) (WalletPayResult, error) {
	var res WalletPayResult
	if invoiceID == "" {
		return res, &models.ValidationError{Field: "invoice_id", Reason: "must not be empty"}
	}
	if at.IsZero() {
		at = s.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	key := walletInvoiceKey(invoiceID)
	ref := "wallet:" + invoiceID
	err := s.tx(ctx, func(tx pgx.Tx) error {
		res = WalletPayResult{}
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, invoiceID))
		if err != nil {
			return err
		}
		res.Invoice, res.Due = inv, inv.Due()
		if err := tx.QueryRow(ctx, `SELECT status FROM tenants WHERE id = $1`, inv.TenantID).Scan(&res.TenantStatus); err != nil {
			return err
		}
		// A retry after the wallet paid: the first outcome.
		prior, err := scanPayment(tx.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE money_ref = $1`, ref))
		if err == nil {
			res.Outcome, res.Duplicate, res.Payment, res.Due = WalletPaid, true, prior, prior.AppliedAmount
			return walletPaidEntries(ctx, tx, inv.TenantID, key, &res)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		switch inv.Status {
		case InvoicePaid:
			res.Outcome = WalletAlreadyPaid
			return nil
		case InvoiceVoid, InvoiceUncollectible:
			return fmt.Errorf("pay invoice %s (%s) from the wallet: %w", inv.ID, inv.Status, ErrInvoiceClosed)
		}
		notCovered := func(reason string) error {
			res.Outcome, res.Reason = WalletNotCovered, reason
			return nil
		}
		var kind string
		if err := tx.QueryRow(ctx, `SELECT kind FROM invoices WHERE id = $1`, inv.ID).Scan(&kind); err != nil {
			return err
		}
		if kind == InvoiceKindTopUp {
			// Money into the wallet is never paid out of it.
			return notCovered(WalletTopUpOnly)
		}
		if res.Due <= 0 {
			return notCovered(WalletNothingDue)
		}
		var cur models.Currency
		var on bool
		err = tx.QueryRow(ctx, `SELECT currency, pay_invoices_from_wallet FROM wallets WHERE tenant_id = $1`, inv.TenantID).Scan(&cur, &on)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return notCovered(WalletNoWallet)
		case err != nil:
			return err
		case !on:
			return notCovered(WalletTurnedOff)
		case cur != inv.Currency:
			return notCovered(WalletOtherCur)
		}
		// The decision and the debit are one statement: the promise is
		// taken only if spendable covers it, under the wallet row's lock.
		tag, err := tx.Exec(ctx, `UPDATE wallets SET promised = promised + $2, updated_at = now()
			WHERE tenant_id = $1 AND deposits + grants - withdrawn - expired - promised >= $2`, inv.TenantID, res.Due)
		if err != nil {
			return walletDBError(err)
		}
		if tag.RowsAffected() == 0 {
			t, err := currentSpendable(ctx, tx, inv.TenantID)
			if err != nil {
				return err
			}
			res.Spendable = t.Spendable()
			return notCovered(WalletNotEnough)
		}
		// Settle the promise at once: grants first, earliest expiry first.
		grants, err := queryGrants(ctx, tx, `WHERE tenant_id = $1 AND used + expired < amount`, "FOR UPDATE", inv.TenantID)
		if err != nil {
			return err
		}
		uses, fromDeposits := models.AllocateSettlement(grants, res.Due)
		for _, u := range uses {
			if _, err := tx.Exec(ctx, `UPDATE wallet_grants SET used = used + $3 WHERE tenant_id = $1 AND grant_key = $2`, inv.TenantID, u.Key, u.Amount); err != nil {
				return err
			}
		}
		fromGrants := res.Due - fromDeposits
		if _, err := tx.Exec(ctx, `UPDATE wallets SET settled = settled + $2, settled_from_grants = settled_from_grants + $3, updated_at = now()
			WHERE tenant_id = $1`, inv.TenantID, res.Due, fromGrants); err != nil {
			return walletDBError(err)
		}
		res.Promise = WalletEntry{TenantID: inv.TenantID, Kind: models.EntryPromise, Key: key, Amount: res.Due, Currency: cur, At: at}
		res.Settle = WalletEntry{TenantID: inv.TenantID, Kind: models.EntrySettle, Key: key, Amount: res.Due, Currency: cur, FromGrants: fromGrants, At: at}
		for _, e := range []*WalletEntry{&res.Promise, &res.Settle} {
			err := tx.QueryRow(ctx, `INSERT INTO wallet_entries (tenant_id, kind, source_key, amount, currency, from_grants, at)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, kind, source_key) DO NOTHING RETURNING seq`,
				e.TenantID, e.Kind, e.Key, e.Amount, e.Currency, e.FromGrants, e.At).Scan(&e.Seq)
			if errors.Is(err, pgx.ErrNoRows) {
				// The ledger has an entry under this key that is no payment
				// of this invoice (a receipt named like one): refuse whole.
				return &models.ValidationError{Field: "invoice", Reason: fmt.Sprintf("the wallet ledger of tenant %s already has a %s entry %q", inv.TenantID, e.Kind, e.Key)}
			}
			if err != nil {
				return fmt.Errorf("append %s entry %s: %w", e.Kind, e.Key, err)
			}
		}
		settled, err := settleTx(ctx, tx, PaymentReport{InvoiceID: inv.ID, Rail: RailWallet, Reference: key, Amount: res.Due, Currency: cur, ReceivedAt: at},
			ref, cur, at)
		if err != nil {
			return err
		}
		if settled.Outcome != SettledApplied {
			// Impossible under the invoice's lock; never leave the wallet
			// debited for a payment that did not pay.
			return fmt.Errorf("pay invoice %s from the wallet: settlement outcome %s", inv.ID, settled.Outcome)
		}
		res.Outcome, res.Invoice, res.Payment, res.TenantStatus = WalletPaid, settled.Invoice, settled.Payment, settled.TenantStatus
		t, err := currentSpendable(ctx, tx, inv.TenantID)
		res.Spendable = t.Spendable()
		return err
	})
	if err != nil {
		return WalletPayResult{}, err
	}
	return res, nil
}

// walletPaidEntries fills a duplicate's ledger entries and the wallet's spendable.
func walletPaidEntries(ctx context.Context, tx pgx.Tx, tenant models.TenantID, key string, res *WalletPayResult) error {
	var err error
	if res.Promise, err = scanWalletEntry(tx.QueryRow(ctx, `SELECT `+walletEntryColumns+` FROM wallet_entries
		WHERE tenant_id = $1 AND kind = 'promise' AND source_key = $2`, tenant, key)); err != nil {
		return fmt.Errorf("wallet payment's promise entry: %w", err)
	}
	if res.Settle, err = scanWalletEntry(tx.QueryRow(ctx, `SELECT `+walletEntryColumns+` FROM wallet_entries
		WHERE tenant_id = $1 AND kind = 'settle' AND source_key = $2`, tenant, key)); err != nil {
		return fmt.Errorf("wallet payment's settle entry: %w", err)
	}
	t, err := currentSpendable(ctx, tx, tenant)
	res.Spendable = t.Spendable()
	return err
}
