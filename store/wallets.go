package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/billflow/billflow/models"
)

// Wallets: one per tenant in its currency, an append-only ledger
// (wallet_entries) and running totals (wallets) changed in the same
// transaction. Every write locks the wallet row by its UPDATE, so writes to
// one wallet are serialised there; the writes that need room (promise,
// withdraw) are a single conditional UPDATE, never read-then-write, and the
// table's CHECKs make a negative spendable impossible. The arithmetic and
// the consumption order are models/wallet.go.

// ErrNotEnough is matched by every *NotEnoughError (errors.Is).
var ErrNotEnough = models.ErrNotEnough

// NotEnoughError refuses a promise or a withdrawal the wallet cannot cover;
// it carries what was wanted and what was available (spendable or
// withdrawable) when it was refused.
type NotEnoughError = models.NotEnoughError

// Wallet is a wallet's state: its totals and what follows from them.
type Wallet struct {
	TenantID models.TenantID     `json:"tenant_id"`
	Currency models.Currency     `json:"currency"`
	Totals   models.WalletTotals `json:"totals"`
	// Funds = deposits + grants - settled - withdrawn - expired;
	// Unsettled = promised - settled.
	Funds     int64 `json:"funds"`
	Unsettled int64 `json:"unsettled"`
	// Spendable = funds - unsettled, never shown below zero: a negative raw
	// value is reported in Violation instead.
	Spendable int64 `json:"spendable"`
	// Withdrawable is what Withdraw accepts: unspent deposits, at most spendable.
	Withdrawable int64 `json:"withdrawable"`
	// Violation names a broken wallet rule (models.WalletTotals.Check); empty
	// when the totals are sound.
	Violation string    `json:"violation,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WalletEntry is one ledger entry.
type WalletEntry struct {
	Seq      int64                  `json:"seq"`
	TenantID models.TenantID        `json:"tenant_id"`
	Kind     models.WalletEntryKind `json:"kind"`
	// Key is the entry's source key (see WalletWrite).
	Key      string          `json:"key"`
	Amount   int64           `json:"amount"`
	Currency models.Currency `json:"currency"`
	// ExpiresAt is a grant's expiry.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// FromGrants is the part of a settlement grants covered.
	FromGrants int64 `json:"from_grants,omitempty"`
	// InvoiceID is the top-up invoice a deposit paid.
	InvoiceID string    `json:"invoice_id,omitempty"`
	At        time.Time `json:"at"`
}

// WalletWrite is one write to a tenant's wallet.
type WalletWrite struct {
	TenantID models.TenantID
	// Key is the source key that makes a retried write a no-op: a deposit's
	// payment money reference, a grant's caller key, a promise's receipt
	// id, a settlement id, a withdrawal request id.
	Key    string
	Amount int64
	// Currency, when set, must be the wallet's.
	Currency models.Currency
	// ExpiresAt is a grant's expiry (nil: never); it must be after At.
	ExpiresAt *time.Time
	// At is when the entry happened; zero means the store's clock.
	At time.Time
}

// WalletResult is the outcome of a wallet write.
type WalletResult struct {
	Entry WalletEntry
	// Wallet is the wallet read just after the write committed.
	Wallet Wallet
	// Duplicate: the key was already written; Entry is the first write's
	// and nothing changed.
	Duplicate bool
}

const walletColumns = `tenant_id, currency, deposits, grants, promised, settled, settled_from_grants, withdrawn, expired, updated_at`

func scanWallet(row pgx.Row) (Wallet, error) {
	var w Wallet
	t := &w.Totals
	err := row.Scan(&w.TenantID, &w.Currency, &t.Deposits, &t.Grants, &t.Promised, &t.Settled, &t.SettledFromGrants, &t.Withdrawn,
		&t.Expired, &w.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	w.UpdatedAt = w.UpdatedAt.UTC()
	w.derive()
	return w, nil
}

// derive fills the computed fields from the totals.
func (w *Wallet) derive() {
	w.Funds, _ = w.Totals.Funds()
	w.Unsettled, _ = w.Totals.Unsettled()
	w.Spendable = w.Totals.Spendable()
	w.Withdrawable = w.Totals.Withdrawable()
	w.Violation = ""
	if err := w.Totals.Check(); err != nil {
		w.Violation = err.Error()
	}
}

const walletEntryColumns = `seq, tenant_id, kind, source_key, amount, currency, expires_at, from_grants, coalesce(invoice_id, ''), at`

func scanWalletEntry(row pgx.Row) (WalletEntry, error) {
	var e WalletEntry
	err := row.Scan(&e.Seq, &e.TenantID, &e.Kind, &e.Key, &e.Amount, &e.Currency, &e.ExpiresAt, &e.FromGrants, &e.InvoiceID, &e.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	e.At = e.At.UTC()
	if e.ExpiresAt != nil {
		x := e.ExpiresAt.UTC()
		e.ExpiresAt = &x
	}
	return e, err
}

// ensureWallet returns the tenant's wallet currency, creating its wallet in
// the tenant's currency when it has none.
func ensureWallet(ctx context.Context, q querier, tenant models.TenantID) (models.Currency, bool, error) {
	var cur models.Currency
	err := q.QueryRow(ctx, `SELECT currency FROM wallets WHERE tenant_id = $1`, tenant).Scan(&cur)
	if err == nil {
		return cur, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, err
	}
	err = q.QueryRow(ctx, `INSERT INTO wallets (tenant_id, currency) SELECT id, currency FROM tenants WHERE id = $1
		ON CONFLICT (tenant_id) DO NOTHING RETURNING currency`, tenant).Scan(&cur)
	if err == nil {
		return cur, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, err
	}
	// No tenant, or a concurrent first write made the wallet.
	err = q.QueryRow(ctx, `SELECT currency FROM wallets WHERE tenant_id = $1`, tenant).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", tenant)}
	}
	return cur, false, err
}

// EnsureWallet creates the tenant's wallet in the tenant's currency if it
// has none, and returns it; created says whether this call made it.
func (s *Store) EnsureWallet(ctx context.Context, tenant models.TenantID) (Wallet, bool, error) {
	var w Wallet
	var created bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if _, created, err = ensureWallet(ctx, tx, tenant); err != nil {
			return err
		}
		w, err = scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1`, tenant))
		return err
	})
	return w, created, err
}

// WalletState returns the tenant's wallet; a tenant without one has an
// empty wallet in its currency (not stored until the first write).
func (s *Store) WalletState(ctx context.Context, tenant models.TenantID) (Wallet, error) {
	w, err := scanWallet(s.pool.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1`, tenant))
	if !errors.Is(err, ErrNotFound) {
		return w, err
	}
	w = Wallet{TenantID: tenant}
	if err := s.pool.QueryRow(ctx, `SELECT currency FROM tenants WHERE id = $1`, tenant).Scan(&w.Currency); errors.Is(err, pgx.ErrNoRows) {
		return Wallet{}, &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", tenant)}
	} else if err != nil {
		return Wallet{}, err
	}
	w.derive()
	return w, nil
}

// WalletGrants lists the tenant's grants, in the order settlements consume them.
func (s *Store) WalletGrants(ctx context.Context, tenant models.TenantID) ([]models.WalletGrant, error) {
	return queryGrants(ctx, s.pool, `WHERE tenant_id = $1`, "", tenant)
}

// queryGrants lists grants in the order settlements consume them; lock is
// appended after the ORDER BY (e.g. FOR UPDATE).
func queryGrants(ctx context.Context, q querier, where, lock string, args ...any) ([]models.WalletGrant, error) {
	rows, err := q.Query(ctx, `SELECT grant_key, amount, expires_at, used, expired, expired_at IS NOT NULL, seq FROM wallet_grants `+where+
		` ORDER BY expires_at ASC NULLS LAST, seq `+lock, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (models.WalletGrant, error) {
		var g models.WalletGrant
		err := r.Scan(&g.Key, &g.Amount, &g.ExpiresAt, &g.Used, &g.Expired, &g.ExpiredDone, &g.Seq)
		if g.ExpiresAt != nil {
			x := g.ExpiresAt.UTC()
			g.ExpiresAt = &x
		}
		return g, err
	})
}

// LedgerPage is one page of a wallet's ledger, newest first.
type LedgerPage struct {
	Entries []WalletEntry `json:"entries"`
	// Next is the Before of the following page; zero on the last page.
	Next int64 `json:"next,omitempty"`
}

// LedgerPage returns up to limit entries (1-500; 0 means 50) of the
// tenant's ledger older than the entry seq before (0: from the newest),
// newest first: keyset pagination, stable while entries are appended.
func (s *Store) LedgerPage(ctx context.Context, tenant models.TenantID, before int64, limit int) (LedgerPage, error) {
	var page LedgerPage
	if limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > 500 {
		return page, &models.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is not between 1 and 500", limit)}
	}
	if before < 0 {
		return page, &models.ValidationError{Field: "before", Reason: fmt.Sprintf("%d is negative", before)}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+walletEntryColumns+` FROM wallet_entries
		WHERE tenant_id = $1 AND ($2 = 0 OR seq < $2) ORDER BY seq DESC LIMIT $3`, tenant, before, limit+1)
	if err != nil {
		return page, err
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WalletEntry, error) { return scanWalletEntry(r) })
	if err != nil {
		return page, err
	}
	if len(entries) > limit {
		entries = entries[:limit]
		page.Next = entries[limit-1].Seq
	}
	page.Entries = entries
	if len(page.Entries) == 0 {
		page.Entries = []WalletEntry{}
		var one int
		if err := s.pool.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1`, tenant).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return page, &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", tenant)}
		} else if err != nil {
			return page, err
		}
	}
	return page, nil
}

// errLostRace: a concurrent write with the same key committed first; the
// transaction is rolled back and the first write's outcome returned.
var errLostRace = errors.New("wallet entry written concurrently")

// walletOp is the kind-specific part of a write: it changes the totals
// (and grants) under the wallet row's lock and returns the entry to append.
type walletOp func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error

// walletWrite runs one write: the wallet made if missing, a retry answered
// with the first outcome, op applied, the entry appended, all in one
// transaction.
func (s *Store) walletWrite(ctx context.Context, kind models.WalletEntryKind, w WalletWrite, op walletOp, after walletOp) (WalletResult, error) {
	var res WalletResult
	w.Key = strings.TrimSpace(w.Key)
	if w.Key == "" {
		return res, &models.ValidationError{Field: string(kind) + ".key", Reason: "must not be empty"}
	}
	if len(w.Key) > 200 {
		return res, &models.ValidationError{Field: string(kind) + ".key", Reason: "is longer than 200 characters"}
	}
	if kind != models.EntryExpire && w.Amount <= 0 {
		return res, &models.ValidationError{Field: string(kind) + " " + w.Key, Reason: fmt.Sprintf("amount %d is not positive", w.Amount)}
	}
	at := w.At
	if at.IsZero() {
		at = s.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	want := WalletEntry{TenantID: w.TenantID, Kind: kind, Key: w.Key, Amount: w.Amount, At: at}
	if w.ExpiresAt != nil {
		x := w.ExpiresAt.UTC().Truncate(time.Microsecond)
		want.ExpiresAt = &x
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, _, err := ensureWallet(ctx, tx, w.TenantID)
		if err != nil {
			return err
		}
		if c := models.Currency(strings.ToLower(strings.TrimSpace(string(w.Currency)))); c != "" && c != cur {
			return &models.ValidationError{Field: "currency", Reason: fmt.Sprintf("%s does not match the wallet's currency %s", c, cur)}
		}
		want.Currency = cur
		prior, err := scanWalletEntry(tx.QueryRow(ctx, `SELECT `+walletEntryColumns+` FROM wallet_entries
			WHERE tenant_id = $1 AND kind = $2 AND source_key = $3`, w.TenantID, kind, w.Key))
		if err == nil {
			res.Entry, res.Duplicate = prior, true
			return sameWrite(prior, want)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		e := want
		if err := op(ctx, tx, &e); err != nil {
			// A twin with the same key may have committed while this write
			// waited for the wallet's lock, taking the room (NotEnough) or
			// the unsettled amount: then its outcome is the answer. (After a
			// database error the transaction is aborted and the query fails.)
			var n int
			if tx.QueryRow(ctx, `SELECT 1 FROM wallet_entries WHERE tenant_id = $1 AND kind = $2 AND source_key = $3`,
				w.TenantID, kind, w.Key).Scan(&n) == nil {
				return errLostRace
			}
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO wallet_entries (tenant_id, kind, source_key, amount, currency, expires_at, from_grants, invoice_id, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), $9)
			ON CONFLICT (tenant_id, kind, source_key) DO NOTHING RETURNING seq`,
			e.TenantID, e.Kind, e.Key, e.Amount, e.Currency, e.ExpiresAt, e.FromGrants, e.InvoiceID, e.At).Scan(&e.Seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLostRace
		}
		if err != nil {
			return fmt.Errorf("append %s entry %s: %w", kind, w.Key, err)
		}
		if after != nil {
			if err := after(ctx, tx, &e); err != nil {
				return err
			}
		}
		res.Entry = e
		return nil
	})
	if errors.Is(err, errLostRace) {
		prior, err := scanWalletEntry(s.pool.QueryRow(ctx, `SELECT `+walletEntryColumns+` FROM wallet_entries
			WHERE tenant_id = $1 AND kind = $2 AND source_key = $3`, w.TenantID, kind, w.Key))
		if err != nil {
			return res, err
		}
		res = WalletResult{Entry: prior, Duplicate: true}
		if err := sameWrite(prior, want); err != nil {
			return res, err
		}
	} else if err != nil {
		return res, walletDBError(err)
	}
	res.Wallet, err = s.WalletState(ctx, w.TenantID)
	return res, err
}

// sameWrite checks that a retry asks for what the first write recorded.
func sameWrite(prior, want WalletEntry) error {
	if prior.Kind == models.EntryExpire {
		return nil // its amount is computed, not asked for
	}
	differs := prior.Amount != want.Amount
	if prior.Kind == models.EntryGrant {
		differs = differs || (prior.ExpiresAt == nil) != (want.ExpiresAt == nil) ||
			(prior.ExpiresAt != nil && !prior.ExpiresAt.Equal(*want.ExpiresAt))
	}
	if differs {
		return &models.ValidationError{Field: string(prior.Kind) + " " + prior.Key, Reason: fmt.Sprintf(
			"key already used for a %s of %d %s with different content", prior.Kind, prior.Amount, prior.Currency)}
	}
	return nil
}

// walletDBError turns an arithmetic overflow in the totals into a
// validation error: money never wraps, and the write is refused whole.
func walletDBError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22003" {
		return &models.ValidationError{Field: "amount", Reason: "the wallet's totals would overflow a 64-bit amount"}
	}
	return err
}

// currentSpendable reads spendable for a refusal's message (after the
// conditional update refused: it is information, not the decision).
func currentSpendable(ctx context.Context, tx pgx.Tx, tenant models.TenantID) (models.WalletTotals, error) {
	w, err := scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1`, tenant))
	return w.Totals, err
}

// Deposit credits a paid top-up, keyed by the payment's money reference.
// Paid top-up invoices deposit through Settle; this is for money received
// outside an invoice.
func (s *Store) Deposit(ctx context.Context, w WalletWrite) (WalletResult, error) {
	return s.walletWrite(ctx, models.EntryDeposit, w, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
		_, err := tx.Exec(ctx, `UPDATE wallets SET deposits = deposits + $2, updated_at = now() WHERE tenant_id = $1`, e.TenantID, e.Amount)
		return err
	}, nil)
}

// Grant gives credit under the caller's key, expiring at w.ExpiresAt (nil:
// never; otherwise it must be after w.At), at most models.MaxPlanAmount.
func (s *Store) Grant(ctx context.Context, w WalletWrite) (WalletResult, error) {
	return s.walletWrite(ctx, models.EntryGrant, w, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
		// The same bound as top-ups: a bigger grant is a typo, and enough of
		// them would overflow the wallet's bigint sums (a 500, not an answer).
		if e.Amount > models.MaxPlanAmount {
			return &models.ValidationError{Field: "grant " + e.Key, Reason: fmt.Sprintf("amount %d is above the limit of %d", e.Amount, models.MaxPlanAmount)}
		}
		if e.ExpiresAt != nil && !e.ExpiresAt.After(e.At) {
			return &models.ValidationError{Field: "grant " + e.Key, Reason: fmt.Sprintf("expiry %s is in the past (not after %s)",
				e.ExpiresAt.Format(time.RFC3339), e.At.Format(time.RFC3339))}
		}
		_, err := tx.Exec(ctx, `UPDATE wallets SET grants = grants + $2, updated_at = now() WHERE tenant_id = $1`, e.TenantID, e.Amount)
		return err
	}, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
		_, err := tx.Exec(ctx, `INSERT INTO wallet_grants (tenant_id, grant_key, amount, expires_at) VALUES ($1, $2, $3, $4)`,
			e.TenantID, e.Key, e.Amount, e.ExpiresAt)
		return err
	})
}

// Promise records a usage receipt the payer signed (key: receipt id),
// reserving its amount of spendable. More than spendable is refused with a
// *NotEnoughError by one conditional UPDATE, so concurrent promises can
// never overspend.
func (s *Store) Promise(ctx context.Context, w WalletWrite) (WalletResult, error) {
	return s.walletWrite(ctx, models.EntryPromise, w, promiseOp, nil)
}

// promiseOp reserves a promise's amount of spendable (Promise, and a usage
// receipt's payment in PayUsageReceipt).
func promiseOp(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
	return takeIfRoom(ctx, tx, e, "spendable", `UPDATE wallets SET promised = promised + $2, updated_at = now()
		WHERE tenant_id = $1 AND deposits + grants - withdrawn - expired - promised >= $2`)
}

// takeIfRoom runs a conditional UPDATE of the wallet row that takes
// e.Amount only where there is room; when it matched no row, the write is
// refused with a *NotEnoughError of `of` ("spendable" or "withdrawable"),
// whose available amount is read after the refusal (information only: the
// UPDATE made the decision, never a read before it).
func takeIfRoom(ctx context.Context, tx pgx.Tx, e *WalletEntry, of, update string) error {
	tag, err := tx.Exec(ctx, update, e.TenantID, e.Amount)
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	t, err := currentSpendable(ctx, tx, e.TenantID)
	if err != nil {
		return err
	}
	available := t.Spendable()
	if of == "withdrawable" {
		available = t.Withdrawable()
	}
	return &NotEnoughError{Of: of, Wanted: e.Amount, Available: available}
}

// SettlePromises takes w.Amount of the unsettled promises from the funds
// (key: settlement id), grants first in order of expiry, then deposits.
// More than unsettled is refused.
func (s *Store) SettlePromises(ctx context.Context, w WalletWrite) (WalletResult, error) {
	return s.walletWrite(ctx, models.EntrySettle, w, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
		wal, err := scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1 FOR UPDATE`, e.TenantID))
		if err != nil {
			return err
		}
		if e.Amount > wal.Unsettled {
			return &models.ValidationError{Field: "settle " + e.Key, Reason: fmt.Sprintf("amount %d is above the unsettled %d", e.Amount, wal.Unsettled)}
		}
		grants, err := queryGrants(ctx, tx, `WHERE tenant_id = $1 AND used + expired < amount`, "FOR UPDATE", e.TenantID)
		if err != nil {
			return err
		}
		uses, fromDeposits := models.AllocateSettlement(grants, e.Amount)
		for _, u := range uses {
			if _, err := tx.Exec(ctx, `UPDATE wallet_grants SET used = used + $3 WHERE tenant_id = $1 AND grant_key = $2`, e.TenantID, u.Key, u.Amount); err != nil {
				return err
			}
		}
		e.FromGrants = e.Amount - fromDeposits
		_, err = tx.Exec(ctx, `UPDATE wallets SET settled = settled + $2, settled_from_grants = settled_from_grants + $3, updated_at = now()
			WHERE tenant_id = $1`, e.TenantID, e.Amount, e.FromGrants)
		return err
	}, nil)
}

// ExpireGrant ends the grant under grantKey at at (its expiry or later):
// an expire entry (key: the grant's key) removes its unused remainder, less
// what outstanding promises rely on (models.ExpireAmount). Exactly once: a
// second call returns the first entry.
func (s *Store) ExpireGrant(ctx context.Context, tenant models.TenantID, grantKey string, at time.Time) (WalletResult, error) {
	w := WalletWrite{TenantID: tenant, Key: grantKey, At: at}
	return s.walletWrite(ctx, models.EntryExpire, w, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
		wal, err := scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1 FOR UPDATE`, e.TenantID))
		if err != nil {
			return err
		}
		grants, err := queryGrants(ctx, tx, `WHERE tenant_id = $1 AND (used + expired < amount OR grant_key = $2)`, "FOR UPDATE", e.TenantID, e.Key)
		if err != nil {
			return err
		}
		var g *models.WalletGrant
		for i := range grants {
			if grants[i].Key == e.Key {
				g = &grants[i]
			}
		}
		switch {
		case g == nil:
			return &models.ValidationError{Field: "grant " + e.Key, Reason: fmt.Sprintf("tenant %s has no such grant", e.TenantID)}
		case g.ExpiresAt == nil:
			return &models.ValidationError{Field: "grant " + e.Key, Reason: "never expires"}
		case g.ExpiresAt.After(e.At):
			return &models.ValidationError{Field: "grant " + e.Key, Reason: fmt.Sprintf("expires at %s, after %s",
				g.ExpiresAt.Format(time.RFC3339), e.At.Format(time.RFC3339))}
		}
		e.Amount = models.ExpireAmount(grants, e.Key, wal.Unsettled)
		if _, err := tx.Exec(ctx, `UPDATE wallet_grants SET expired = $3, expired_at = $4 WHERE tenant_id = $1 AND grant_key = $2`,
			e.TenantID, e.Key, e.Amount, e.At); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE wallets SET expired = expired + $2, updated_at = now() WHERE tenant_id = $1`, e.TenantID, e.Amount)
		return err
	}, nil)
}

// DueGrant names a grant whose expiry has come.
type DueGrant struct {
	TenantID models.TenantID
	Key      string
}

// DueGrants lists grants whose expiry is at or before at and which have not
// expired yet, earliest expiry first, for whatever expires them.
func (s *Store) DueGrants(ctx context.Context, at time.Time) ([]DueGrant, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, grant_key FROM wallet_grants
		WHERE expired_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, seq`, at)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DueGrant, error) {
		var d DueGrant
		err := r.Scan(&d.TenantID, &d.Key)
		return d, err
	})
}

// depositTopUp writes the deposit of a top-up invoice becoming paid, in
// Settle's transaction: the invoice's total, keyed by the money reference
// of the payment that paid it. One deposit per invoice (a UNIQUE index) and
// per money reference, so the same payment reported by two rails deposits
// once. Any part paid beyond the total stays money to refund, as for every
// invoice.
func depositTopUp(ctx context.Context, tx pgx.Tx, inv Invoice, moneyRef string, at time.Time) error {
	cur, _, err := ensureWallet(ctx, tx, inv.TenantID)
	if err != nil {
		return err
	}
	if cur != inv.Currency {
		return fmt.Errorf("top-up invoice %s is in %s but the wallet of tenant %s is in %s", inv.ID, inv.Currency, inv.TenantID, cur)
	}
	var seq int64
	err = tx.QueryRow(ctx, `INSERT INTO wallet_entries (tenant_id, kind, source_key, amount, currency, invoice_id, at)
		VALUES ($1, 'deposit', $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq`,
		inv.TenantID, moneyRef, inv.Total, cur, inv.ID, at).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deposited already
	}
	if err != nil {
		return fmt.Errorf("deposit top-up %s: %w", inv.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE wallets SET deposits = deposits + $2, updated_at = now() WHERE tenant_id = $1`, inv.TenantID, inv.Total); err != nil {
		return fmt.Errorf("deposit top-up %s: %w", inv.ID, walletDBError(err))
	}
	return nil
}
