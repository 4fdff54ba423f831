package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// What the BalanceSync workflow reads and writes: the open top-ups to
// reconcile, the grants about to expire, and the published balance, whose
// last value (wallet_balance_published) decides in Postgres whether a sync
// saw a change worth an outbound event.

// Outbound event types of a wallet's balance.
const (
	// EventWalletBalanceChanged is written when spendable changed since the
	// last one; its payload has before and after.
	EventWalletBalanceChanged = "wallet.balance_changed"
	// EventWalletLowBalance is written when spendable falls below the
	// wallet's threshold (auto_recharge_threshold), once per crossing.
	EventWalletLowBalance = "wallet.low_balance"
)

// OpenTopUps lists the tenant's top-up invoices still waiting for money,
// oldest first.
func (s *Store) OpenTopUps(ctx context.Context, tenant models.TenantID) ([]Invoice, error) {
	return collectInvoices(s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices
		WHERE tenant_id = $1 AND kind = 'top_up' AND status IN ('open', 'collecting', 'awaiting_payment') ORDER BY created_at, id`, tenant))
}

// NextGrantExpiry returns the earliest expiry of the tenant's grants that
// have not expired yet; nil when none will.
func (s *Store) NextGrantExpiry(ctx context.Context, tenant models.TenantID) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(expires_at) FROM wallet_grants
		WHERE tenant_id = $1 AND expired_at IS NULL AND expires_at IS NOT NULL`, tenant).Scan(&at)
	if err != nil {
		return nil, err
	}
	if at != nil {
		x := at.UTC()
		at = &x
	}
	return at, nil
}

// TenantDueGrants lists the tenant's grants whose expiry is at or before at
// and which have not expired yet, earliest first.
func (s *Store) TenantDueGrants(ctx context.Context, tenant models.TenantID, at time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT grant_key FROM wallet_grants
		WHERE tenant_id = $1 AND expired_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $2 ORDER BY expires_at, seq`, tenant, at)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// BalancePublish is the outcome of PublishBalance.
type BalancePublish struct {
	// Wallet is the state read under the publication lock.
	Wallet Wallet
	// Before is the spendable last published (zero for a wallet never
	// published); After is Wallet.Spendable.
	Before, After int64
	// Changed: a wallet.balance_changed event was written.
	Changed bool
	// Threshold is the wallet's low-balance threshold, if set; LowCrossed:
	// a wallet.low_balance event was written.
	Threshold  *int64
	LowCrossed bool
}

// BalanceChangedPayload is the payload of wallet.balance_changed.
type BalanceChangedPayload struct {
	TenantID models.TenantID `json:"tenant_id"`
	Currency models.Currency `json:"currency"`
	Before   int64           `json:"before"`
	After    int64           `json:"after"`
	At       time.Time       `json:"at"`
}

// LowBalancePayload is the payload of wallet.low_balance.
type LowBalancePayload struct {
	TenantID  models.TenantID `json:"tenant_id"`
	Currency  models.Currency `json:"currency"`
	Spendable int64           `json:"spendable"`
	Threshold int64           `json:"threshold"`
	At        time.Time       `json:"at"`
}

// PublishBalance reads the tenant's wallet and, in the same transaction,
// writes wallet.balance_changed only when spendable differs from the last
// published value, and wallet.low_balance when spendable has just fallen
// below the threshold. The published row is locked before the wallet is
// read, so concurrent syncs publish one after the other and a change is
// published once. A tenant without a wallet row publishes nothing.
func (s *Store) PublishBalance(ctx context.Context, tenant models.TenantID, at time.Time) (BalancePublish, error) {
	var out BalancePublish
	if at.IsZero() {
		at = s.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO wallet_balance_published (tenant_id, spendable)
			SELECT tenant_id, 0 FROM wallets WHERE tenant_id = $1 ON CONFLICT (tenant_id) DO NOTHING`, tenant); err != nil {
			return fmt.Errorf("publish balance of %s: %w", tenant, err)
		}
		var prevLow bool
		var seq int64
		err := tx.QueryRow(ctx, `SELECT spendable, low, seq FROM wallet_balance_published WHERE tenant_id = $1 FOR UPDATE`, tenant).
			Scan(&out.Before, &prevLow, &seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound // no wallet: nothing to publish
		}
		if err != nil {
			return err
		}
		out.Wallet, err = scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1`, tenant))
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT auto_recharge_threshold FROM wallets WHERE tenant_id = $1`, tenant).Scan(&out.Threshold); err != nil {
			return err
		}
		out.After = out.Wallet.Spendable
		low := out.Threshold != nil && out.After < *out.Threshold
		if out.After != out.Before {
			seq++
			out.Changed = true
			if err := insertEvent(ctx, tx, tenant, EventWalletBalanceChanged, string(tenant)+"/"+strconv.FormatInt(seq, 10),
				BalanceChangedPayload{TenantID: tenant, Currency: out.Wallet.Currency, Before: out.Before, After: out.After, At: at}); err != nil {
				return err
			}
		}
		if low && !prevLow {
			seq++
			out.LowCrossed = true
			if err := insertEvent(ctx, tx, tenant, EventWalletLowBalance, string(tenant)+"/"+strconv.FormatInt(seq, 10),
				LowBalancePayload{TenantID: tenant, Currency: out.Wallet.Currency, Spendable: out.After, Threshold: *out.Threshold, At: at}); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE wallet_balance_published SET spendable = $2, low = $3, seq = $4, updated_at = now() WHERE tenant_id = $1`,
			tenant, out.After, low, seq)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		w, werr := s.WalletState(ctx, tenant)
		if werr != nil {
			return BalancePublish{}, werr
		}
		return BalancePublish{Wallet: w}, nil
	}
	return out, err
}
