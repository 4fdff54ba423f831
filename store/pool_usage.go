package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// The free-tier pool paying usage receipts (issue 11). A receipt the payer
// signed is decided by the pool (request key: the receipt id) before its
// wallet pays:
//   - free: the pool's grant was reserved by the decision itself
//     (DecideAndReserveFree); the receipt row records that the pool paid all
//     of it and the wallet promises nothing;
//   - partial: in ONE transaction the pool's part is reserved
//     (reservePartialTx: the daily budget re-checked, LEAST(balance, part)
//     taken), the payer's part plus any shortfall is promised by the wallet
//     (one conditional UPDATE) and the receipt row is written; a wallet that
//     cannot cover its part rolls the pool's reservation back with it, so the
//     pool is debited only once the payer's part is promised and never pays a
//     shortfall silently;
//   - gate: the wallet pays it as before (PayUsageReceipt).
// The grant is recorded (RecordGrant) once the receipt's units are used, or
// its unused part released, by the session (see activities.UsageEnd).

// EventPoolLow is the outbound event written when a debit takes the pool
// below its low floor (once per crossing: the debit that crossed writes it,
// keyed by its grant's request key).
const EventPoolLow = "pool.low"

// UsagePoolPart is the free-tier part of a paid receipt.
type UsagePoolPart struct {
	Serve    models.Serve     `json:"serve"`
	Tier     models.TrustTier `json:"tier"`
	Absorbed int64            `json:"absorbed"`
	Charge   int64            `json:"charge"`
	// Balance is the pool's balance and AbsorbedToday the payer's absorbed
	// amount in its daily window, read just after the payment.
	Balance       int64 `json:"balance"`
	AbsorbedToday int64 `json:"absorbed_today"`
}

// errReceiptPaid aborts a pooled payment whose receipt row exists.
var errReceiptPaid = errors.New("usage receipt already paid")

// PayUsageReceiptPooled pays a signed receipt with the free-tier pool
// first (see above). A wallet that cannot cover the payer's part is a
// *NotEnoughError and nothing is written (a free reservation made by the
// decision stays reserved: the session releases it). A retry answers
// Duplicate with the first payment's part.
func (s *Store) PayUsageReceiptPooled(ctx context.Context, cfg models.PoolConfig, p UsageReceiptPayment) (UsageReceiptPaid, UsagePoolPart, error) {
	var part UsagePoolPart
	if p.ReceiptID == "" || p.SessionID == "" || p.Seq <= 0 || p.Units <= 0 || p.Value < 0 {
		return UsageReceiptPaid{}, part, &models.ValidationError{Field: "receipt", Reason: fmt.Sprintf(
			"receipt %q of session %q (seq %d, %d units, value %d) is incomplete", p.ReceiptID, p.SessionID, p.Seq, p.Units, p.Value)}
	}
	if out, part, ok, err := s.pooledReceipt(ctx, cfg, p); ok || err != nil {
		return out, part, err
	}
	if p.Value == 0 {
		out, err := s.PayUsageReceipt(ctx, p)
		part.Serve = models.ServeGate
		return out, s.poolFigures(ctx, cfg, p.Payer, part), err
	}
	v, err := s.DecideAndReserveFree(ctx, cfg, PoolRequest{Payer: p.Payer, Key: p.ReceiptID, Estimated: p.Value})
	if err != nil {
		return UsageReceiptPaid{}, part, err
	}
	part.Serve, part.Tier = v.Serve, v.Tier
	at := p.At.UTC().Truncate(time.Microsecond)
	var crossed bool
	switch v.Serve {
	case models.ServeFree:
		part.Absorbed, crossed = p.Value, v.CrossedFloor
		err = s.tx(ctx, func(tx pgx.Tx) error {
			if err := recordPooledReceipt(ctx, tx, p, part, at); err != nil {
				return err
			}
			return poolLowEvent(ctx, tx, crossed, p.Payer, p.ReceiptID, v.PoolBalance)
		})
	case models.ServePartial:
		err = s.tx(ctx, func(tx pgx.Tx) error {
			// Locks in the order wallet, daily row, pool, session: the
			// wallet before the pool as an invoice paid from the wallet
			// (its settlement credits the pool), the session last as
			// PayUsageReceipt.
			if err := takePromise(ctx, tx, p.Payer, p.Value-v.Absorb, p.Currency); err != nil {
				return err
			}
			r, err := reservePartialTx(ctx, tx, cfg, PartialRequest{PoolRequest: PoolRequest{Payer: p.Payer, Key: p.ReceiptID, Estimated: p.Value},
				Absorb: v.Absorb}, s.poolNow())
			if err != nil {
				return err
			}
			// Whatever the pool could no longer take (Shortfall) the payer
			// pays on top of its part: asked for, never absorbed.
			if r.Shortfall > 0 {
				if err := takePromise(ctx, tx, p.Payer, r.Shortfall, p.Currency); err != nil {
					return err
				}
			}
			part.Absorbed, part.Charge = r.Absorbed, p.Value-r.Absorbed
			if err := appendPromise(ctx, tx, p.Payer, p.ReceiptID, part.Charge, at); err != nil {
				return err
			}
			if err := recordPooledReceipt(ctx, tx, p, part, at); err != nil {
				return err
			}
			return poolLowEvent(ctx, tx, r.CrossedFloor, p.Payer, p.ReceiptID, r.PoolBalance)
		})
	default:
		var out UsageReceiptPaid
		out, err = s.PayUsageReceipt(ctx, p)
		part.Serve, part.Charge = models.ServeGate, p.Value
		return out, s.poolFigures(ctx, cfg, p.Payer, part), err
	}
	if errors.Is(err, errReceiptPaid) {
		out, part, _, err := s.pooledReceipt(ctx, cfg, p)
		return out, part, err
	}
	if err != nil {
		return UsageReceiptPaid{}, part, walletDBError(err)
	}
	w, err := s.WalletState(ctx, p.Payer)
	return UsageReceiptPaid{Wallet: w}, s.poolFigures(ctx, cfg, p.Payer, part), err
}

// pooledReceipt answers a receipt paid before (ok), with its pool part.
func (s *Store) pooledReceipt(ctx context.Context, cfg models.PoolConfig, p UsageReceiptPayment) (UsageReceiptPaid, UsagePoolPart, bool, error) {
	var part UsagePoolPart
	var value int64
	err := s.pool.QueryRow(ctx, `SELECT value, pool_serve, pool_absorbed FROM usage_receipts WHERE receipt_id = $1`, p.ReceiptID).
		Scan(&value, &part.Serve, &part.Absorbed)
	if errors.Is(err, pgx.ErrNoRows) {
		return UsageReceiptPaid{}, part, false, nil
	}
	if err != nil {
		return UsageReceiptPaid{}, part, false, err
	}
	part.Charge = value - part.Absorbed
	w, err := s.WalletState(ctx, p.Payer)
	return UsageReceiptPaid{Duplicate: true, Wallet: w}, s.poolFigures(ctx, cfg, p.Payer, part), true, err
}

// poolFigures fills the pool's balance and the payer's absorbed amount
// today (information for the session's view: a failed read leaves zeros).
func (s *Store) poolFigures(ctx context.Context, cfg models.PoolConfig, payer models.TenantID, part UsagePoolPart) UsagePoolPart {
	if p, err := s.GetPool(ctx); err == nil {
		part.Balance = p.Balance
	}
	if t, err := s.PayerTier(ctx, cfg, payer); err == nil {
		part.AbsorbedToday = t.AbsorbedToday
		if part.Tier == "" {
			part.Tier = t.Tier
		}
	}
	return part
}

// recordPooledReceipt writes the receipt row with its pool part, the
// statistics and the session's state (errReceiptPaid when the row exists).
func recordPooledReceipt(ctx context.Context, tx pgx.Tx, p UsageReceiptPayment, part UsagePoolPart, at time.Time) error {
	pe, err := json.Marshal(p.PayerEvent)
	if err != nil {
		return err
	}
	ee, err := json.Marshal(p.EngineEvent)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO usage_receipts (receipt_id, session_id, seq, payer, service_id, unit, units, value, currency,
		payer_event, engine_event, paid_at, pool_serve, pool_absorbed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (receipt_id) DO NOTHING`,
		p.ReceiptID, p.SessionID, p.Seq, p.Payer, p.ServiceID, p.Unit, p.Units, p.Value, p.Currency, pe, ee, at, string(part.Serve), part.Absorbed)
	if err != nil {
		return fmt.Errorf("record usage receipt %s: %w", p.ReceiptID, err)
	}
	if tag.RowsAffected() == 0 {
		return errReceiptPaid
	}
	if _, err := writeUsageStats(ctx, tx, p.ReceiptID, p.ServiceID, p.Payer, p.Stats, at); err != nil {
		return err
	}
	return setUsageSessionState(ctx, tx, p.SessionID, UsageSessionActive, at)
}

// takePromise reserves amount of the tenant's spendable for a promise
// (one conditional UPDATE of the wallet row: *NotEnoughError when it does
// not cover it), in the caller's transaction.
func takePromise(ctx context.Context, tx pgx.Tx, tenant models.TenantID, amount int64, cur models.Currency) error {
	if amount <= 0 {
		return nil
	}
	wcur, _, err := ensureWallet(ctx, tx, tenant)
	if err != nil {
		return err
	}
	if cur != "" && cur != wcur {
		return &models.ValidationError{Field: "currency", Reason: fmt.Sprintf("%s does not match the wallet's currency %s", cur, wcur)}
	}
	return promiseOp(ctx, tx, &WalletEntry{TenantID: tenant, Kind: models.EntryPromise, Amount: amount})
}

// appendPromise appends the ledger entry of a promise takePromise took
// (none for a zero amount).
func appendPromise(ctx context.Context, tx pgx.Tx, tenant models.TenantID, key string, amount int64, at time.Time) error {
	if amount <= 0 {
		return nil
	}
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO wallet_entries (tenant_id, kind, source_key, amount, currency, at)
		SELECT $1, 'promise', $2, $3, currency, $4 FROM wallets WHERE tenant_id = $1
		ON CONFLICT (tenant_id, kind, source_key) DO NOTHING RETURNING seq`, tenant, key, amount, at).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return errReceiptPaid // a twin of this payment committed first
	}
	return err
}

// poolLowEvent writes pool.low when the debit keyed key took the pool below
// its floor (attributed to the payer whose grant crossed it; the payload
// carries only the pool's figures).
func poolLowEvent(ctx context.Context, tx pgx.Tx, crossed bool, payer models.TenantID, key string, balance int64) error {
	if !crossed {
		return nil
	}
	var floor int64
	var cur models.Currency
	if err := tx.QueryRow(ctx, `SELECT low_floor, currency FROM pool WHERE id = 1`).Scan(&floor, &cur); err != nil {
		return err
	}
	return insertEvent(ctx, tx, payer, EventPoolLow, "pool/"+key, map[string]any{"balance": balance, "floor": floor, "currency": cur, "grant": key})
}
