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

// WithdrawalMethod is how a withdrawal is paid out.
type WithdrawalMethod string

// Withdrawal payout methods.
const (
	// WithdrawLightning: the engine's node pays the tenant's BOLT11.
	WithdrawLightning WithdrawalMethod = "lightning"
	// WithdrawManual: an operator pays it and records the reference.
	WithdrawManual WithdrawalMethod = "manual"
)

// WithdrawalStatus is where a withdrawal's payout is.
type WithdrawalStatus string

// Withdrawal statuses.
const (
	WithdrawalRequested WithdrawalStatus = "requested"
	WithdrawalPaidOut   WithdrawalStatus = "paid_out"
	// WithdrawalFailed: the payout failed and the amount went back to the
	// wallet (a withdraw_return entry).
	WithdrawalFailed WithdrawalStatus = "failed"
)

// Withdrawal is a request to pay unspent deposits back, and its payout.
type Withdrawal struct {
	TenantID models.TenantID  `json:"tenant_id"`
	Key      string           `json:"key"`
	Amount   int64            `json:"amount"`
	Currency models.Currency  `json:"currency"`
	Method   WithdrawalMethod `json:"method"`
	// BOLT11, PaymentHash and AmountMsat are a Lightning payout's invoice.
	BOLT11      string           `json:"bolt11,omitempty"`
	PaymentHash string           `json:"payment_hash,omitempty"`
	AmountMsat  int64            `json:"amount_msat,omitempty"`
	Status      WithdrawalStatus `json:"status"`
	// Reference is the payment's preimage (Lightning) or the operator's
	// reference, once paid out.
	Reference   string     `json:"reference,omitempty"`
	FeeMsat     int64      `json:"fee_msat,omitempty"`
	Failure     string     `json:"failure,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// Open reports whether the payout is still to be done.
func (w Withdrawal) Open() bool { return w.Status == WithdrawalRequested }

// WithdrawalRequest asks to withdraw Amount of unspent deposits.
type WithdrawalRequest struct {
	TenantID models.TenantID
	// Key is the request id: a retried request with the same key and
	// content changes nothing; another content under it is refused.
	Key      string
	Amount   int64
	Currency models.Currency
	Method   WithdrawalMethod
	// BOLT11, PaymentHash and AmountMsat: the Lightning invoice to pay, as
	// the caller validated it (network, amount, expiry).
	BOLT11      string
	PaymentHash string
	AmountMsat  int64
	// Reference, for a manual withdrawal, records it as paid out already
	// (the operator paid it under this reference).
	Reference string
	At        time.Time
}

// WithdrawalResult is a withdrawal after a request or a payout outcome.
type WithdrawalResult struct {
	Withdrawal Withdrawal `json:"withdrawal"`
	// Entry is the ledger entry written (withdraw, or withdraw_return when
	// the payout failed); zero when nothing was written.
	Entry  WalletEntry `json:"entry"`
	Wallet Wallet      `json:"wallet"`
	// Duplicate: the request (or outcome) was recorded already; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

const withdrawalColumns = `tenant_id, request_key, amount, currency, method, coalesce(bolt11, ''), coalesce(payment_hash, ''),
	coalesce(amount_msat, 0), status, coalesce(payout_reference, ''), fee_msat, coalesce(failure, ''), requested_at, finished_at`

func scanWithdrawal(row pgx.Row) (Withdrawal, error) {
	var w Withdrawal
	err := row.Scan(&w.TenantID, &w.Key, &w.Amount, &w.Currency, &w.Method, &w.BOLT11, &w.PaymentHash, &w.AmountMsat, &w.Status,
		&w.Reference, &w.FeeMsat, &w.Failure, &w.RequestedAt, &w.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	w.RequestedAt = w.RequestedAt.UTC()
	if w.FinishedAt != nil {
		x := w.FinishedAt.UTC()
		w.FinishedAt = &x
	}
	return w, err
}

// checkRequest refuses a request that cannot be recorded, naming what is wrong.
func (r *WithdrawalRequest) check() error {
	r.BOLT11 = strings.TrimSpace(r.BOLT11)
	r.Reference = strings.TrimSpace(r.Reference)
	switch r.Method {
	case WithdrawLightning:
		if r.BOLT11 == "" || r.PaymentHash == "" || r.AmountMsat <= 0 {
			return &models.ValidationError{Field: "bolt11", Reason: "a Lightning withdrawal needs the validated invoice, its payment hash and amount"}
		}
		if r.Reference != "" {
			return &models.ValidationError{Field: "reference", Reason: "a Lightning withdrawal's reference is its payment's preimage, set when it is paid out"}
		}
	case WithdrawManual:
		if r.BOLT11 != "" {
			return &models.ValidationError{Field: "bolt11", Reason: "a manual withdrawal has no invoice to pay"}
		}
	default:
		return &models.ValidationError{Field: "method", Reason: fmt.Sprintf("%q is not lightning or manual", r.Method)}
	}
	return nil
}

// RequestWithdrawal records a withdrawal: its withdraw entry takes the
// amount from spendable now (one conditional UPDATE; more than withdrawable
// is a *NotEnoughError of "withdrawable") and its row waits for the payout,
// in one transaction. A manual withdrawal with a Reference is paid out
// already. Retrying the same key and content returns the first outcome;
// other content under the key, or a BOLT11 another withdrawal carries, is
// refused.
func (s *Store) RequestWithdrawal(ctx context.Context, r WithdrawalRequest) (WithdrawalResult, error) {
	var out WithdrawalResult
	if err := r.check(); err != nil {
		return out, err
	}
	res, err := s.walletWrite(ctx, models.EntryWithdraw, WalletWrite{TenantID: r.TenantID, Key: r.Key, Amount: r.Amount, Currency: r.Currency, At: r.At},
		withdrawOp, func(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
			status, finished := WithdrawalRequested, (*time.Time)(nil)
			if r.Method == WithdrawManual && r.Reference != "" {
				status, finished = WithdrawalPaidOut, &e.At
			}
			_, err := tx.Exec(ctx, `INSERT INTO wallet_withdrawals (tenant_id, request_key, amount, currency, method, bolt11, payment_hash,
				amount_msat, status, payout_reference, requested_at, finished_at)
				VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, 0), $9, NULLIF($10, ''), $11, $12)`,
				e.TenantID, e.Key, e.Amount, e.Currency, r.Method, r.BOLT11, r.PaymentHash, r.AmountMsat, status, r.Reference, e.At, finished)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "wallet_withdrawals_payment_hash" {
				return &models.ValidationError{Field: "bolt11", Reason: fmt.Sprintf("invoice %s is already the payout of another withdrawal", r.PaymentHash)}
			}
			return err
		})
	if err != nil {
		return out, err
	}
	out.Entry, out.Wallet, out.Duplicate = res.Entry, res.Wallet, res.Duplicate
	if out.Withdrawal, err = s.Withdrawal(ctx, r.TenantID, res.Entry.Key); err != nil {
		return out, err
	}
	if out.Duplicate {
		w := out.Withdrawal
		if w.Method != r.Method || w.BOLT11 != r.BOLT11 || (r.Reference != "" && w.Reference != r.Reference) {
			return out, &models.ValidationError{Field: "withdraw " + w.Key, Reason: fmt.Sprintf(
				"key already used for a %s withdrawal of %d %s with different content", w.Method, w.Amount, w.Currency)}
		}
	}
	return out, nil
}

// withdrawOp takes a withdrawal from the totals: unspent deposits only, at
// most spendable, by one conditional UPDATE.
func withdrawOp(ctx context.Context, tx pgx.Tx, e *WalletEntry) error {
	return takeIfRoom(ctx, tx, e, "withdrawable", `UPDATE wallets SET withdrawn = withdrawn + $2, updated_at = now()
		WHERE tenant_id = $1 AND deposits - (settled - settled_from_grants) - withdrawn >= $2
			AND deposits + grants - withdrawn - expired - promised >= $2`)
}

// Withdraw records a withdrawal the operator has paid out already, under
// its payout reference (w.Key), in one transaction: a manual withdrawal
// with that reference.
func (s *Store) Withdraw(ctx context.Context, w WalletWrite) (WalletResult, error) {
	res, err := s.RequestWithdrawal(ctx, WithdrawalRequest{TenantID: w.TenantID, Key: w.Key, Amount: w.Amount, Currency: w.Currency,
		Method: WithdrawManual, Reference: w.Key, At: w.At})
	return WalletResult{Entry: res.Entry, Wallet: res.Wallet, Duplicate: res.Duplicate}, err
}

// Withdrawal returns one withdrawal by its request key.
func (s *Store) Withdrawal(ctx context.Context, tenant models.TenantID, key string) (Withdrawal, error) {
	return scanWithdrawal(s.pool.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM wallet_withdrawals
		WHERE tenant_id = $1 AND request_key = $2`, tenant, strings.TrimSpace(key)))
}

// OpenWithdrawals lists the tenant's withdrawals still to be paid out,
// oldest first.
func (s *Store) OpenWithdrawals(ctx context.Context, tenant models.TenantID) ([]Withdrawal, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+withdrawalColumns+` FROM wallet_withdrawals
		WHERE tenant_id = $1 AND status = 'requested' ORDER BY requested_at, request_key`, tenant)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Withdrawal, error) { return scanWithdrawal(r) })
}

// PayoutOutcome is how a withdrawal's payout ended.
type PayoutOutcome struct {
	TenantID models.TenantID
	Key      string
	// PaidOut with Reference (the preimage or the operator's reference) and
	// FeeMsat; otherwise Failure says why it failed.
	PaidOut   bool
	Reference string
	FeeMsat   int64
	Failure   string
	At        time.Time
}

// FinishWithdrawal records a payout's outcome in one transaction: paid out
// with its reference, or failed with the amount given back to the wallet
// (a withdraw_return entry keyed by the request, so it returns once).
// Recording the same outcome again changes nothing; a different outcome
// for a finished withdrawal is refused.
func (s *Store) FinishWithdrawal(ctx context.Context, o PayoutOutcome) (WithdrawalResult, error) {
	var out WithdrawalResult
	o.Reference, o.Failure = strings.TrimSpace(o.Reference), strings.TrimSpace(o.Failure)
	switch {
	case o.PaidOut && o.Reference == "":
		return out, &models.ValidationError{Field: "reference", Reason: "a paid-out withdrawal needs its payout reference"}
	case !o.PaidOut && o.Failure == "":
		return out, &models.ValidationError{Field: "failure", Reason: "a failed payout needs a reason"}
	case o.FeeMsat < 0:
		return out, &models.ValidationError{Field: "fee_msat", Reason: fmt.Sprintf("%d is negative", o.FeeMsat)}
	}
	at := o.At
	if at.IsZero() {
		at = s.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		w, err := scanWithdrawal(tx.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM wallet_withdrawals
			WHERE tenant_id = $1 AND request_key = $2 FOR UPDATE`, o.TenantID, o.Key))
		if errors.Is(err, ErrNotFound) {
			return &models.ValidationError{Field: "withdrawal", Reason: fmt.Sprintf("tenant %s has no withdrawal %q", o.TenantID, o.Key)}
		}
		if err != nil {
			return err
		}
		if !w.Open() {
			out.Withdrawal, out.Duplicate = w, true
			if (w.Status == WithdrawalPaidOut) != o.PaidOut {
				return &models.ValidationError{Field: "withdrawal " + w.Key, Reason: fmt.Sprintf("its payout already ended %s", w.Status)}
			}
			return nil
		}
		if o.PaidOut {
			_, err = tx.Exec(ctx, `UPDATE wallet_withdrawals SET status = 'paid_out', payout_reference = $3, fee_msat = $4, finished_at = $5
				WHERE tenant_id = $1 AND request_key = $2`, o.TenantID, o.Key, o.Reference, o.FeeMsat, at)
			if err != nil {
				return err
			}
		} else {
			e := WalletEntry{TenantID: o.TenantID, Kind: models.EntryWithdrawReturn, Key: w.Key, Amount: w.Amount, Currency: w.Currency, At: at}
			if err := tx.QueryRow(ctx, `INSERT INTO wallet_entries (tenant_id, kind, source_key, amount, currency, at)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`, e.TenantID, e.Kind, e.Key, e.Amount, e.Currency, e.At).Scan(&e.Seq); err != nil {
				return fmt.Errorf("return withdrawal %s: %w", w.Key, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE wallets SET withdrawn = withdrawn - $2, updated_at = now() WHERE tenant_id = $1`,
				o.TenantID, w.Amount); err != nil {
				return fmt.Errorf("return withdrawal %s: %w", w.Key, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE wallet_withdrawals SET status = 'failed', failure = $3, finished_at = $4
				WHERE tenant_id = $1 AND request_key = $2`, o.TenantID, o.Key, o.Failure, at); err != nil {
				return err
			}
			out.Entry = e
		}
		out.Withdrawal, err = scanWithdrawal(tx.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM wallet_withdrawals
			WHERE tenant_id = $1 AND request_key = $2`, o.TenantID, o.Key))
		return err
	})
	if err != nil {
		return out, err
	}
	out.Wallet, err = s.WalletState(ctx, o.TenantID)
	return out, err
}
