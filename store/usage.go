package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/billflow/billflow/models"
)

// Metered usage sessions (issue 10): sessions, paid receipts, grace bans,
// remain service and statistics. Every write is idempotent by a key: a
// receipt's id (its wallet promise's key too), a session's id, or a write
// key in usage_writes.

// Usage session states in usage_sessions.
const (
	UsageSessionActive       = "active"
	UsageSessionWaitingFunds = "waiting_funds"
	UsageSessionEnded        = "ended"
)

// Usage statistics modes.
const (
	UsageModePaid  = "paid"
	UsageModeFree  = "free"
	UsageModeGrace = "grace"
)

// Outbound event types of usage sessions.
const (
	// EventUsageSignRequest carries a receipt for the payer to co-sign
	// (subject: receipt id / attempt).
	EventUsageSignRequest = "usage.sign_request"
	// EventUsageFundsNeeded asks the application to have the payer top up
	// (subject: session id / the receipt or start that needed it).
	EventUsageFundsNeeded = "usage.funds_needed"
	// EventUsageError reports a session's error code (subject: session id / code).
	EventUsageError = "usage.error"
)

// UsageStats are the totals of one mode of (service, payer).
type UsageStats struct {
	Mode          string `json:"mode"`
	Seconds       int64  `json:"seconds"`
	BytesReceived int64  `json:"bytes_received"`
	BytesSent     int64  `json:"bytes_sent"`
	Units         int64  `json:"units"`
	Value         int64  `json:"value"`
	// Sessions counts the sessions that went through grace (mode grace).
	Sessions int64 `json:"sessions"`
}

// Zero reports whether the stats add nothing.
func (u UsageStats) Zero() bool {
	return u.Seconds == 0 && u.BytesReceived == 0 && u.BytesSent == 0 && u.Units == 0 && u.Value == 0 && u.Sessions == 0
}

func validMode(m string) bool { return m == UsageModePaid || m == UsageModeFree || m == UsageModeGrace }

// UsageSessionRow is a session as usage_sessions records it.
type UsageSessionRow struct {
	ID        string          `json:"id"`
	Payer     models.TenantID `json:"payer"`
	ServiceID string          `json:"service_id"`
	State     string          `json:"state"`
}

// StartUsageSession records a session and returns its row: a retry finds
// the row it wrote; a session id used before shows its old payer, service
// and state, so the caller can refuse to start it again (its receipt ids,
// and so its promises, would repeat).
func (s *Store) StartUsageSession(ctx context.Context, id string, payer models.TenantID, service string, at time.Time) (UsageSessionRow, error) {
	var r UsageSessionRow
	_, err := s.pool.Exec(ctx, `INSERT INTO usage_sessions (id, payer, service_id, started_at, updated_at) VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (id) DO NOTHING`, id, payer, service, at)
	if err != nil {
		return r, err
	}
	err = s.pool.QueryRow(ctx, `SELECT id, payer, service_id, state FROM usage_sessions WHERE id = $1`, id).Scan(&r.ID, &r.Payer, &r.ServiceID, &r.State)
	return r, err
}

// SetUsageSessionState records a session's state; an ended session stays ended.
func (s *Store) SetUsageSessionState(ctx context.Context, id, state string, at time.Time) error {
	return setUsageSessionState(ctx, s.pool, id, state, at)
}

func setUsageSessionState(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, id, state string, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE usage_sessions SET state = $2, updated_at = $3 WHERE id = $1 AND state <> 'ended'`, id, state, at)
	return err
}

// WaitingUsageSessions lists the payer's sessions waiting for funds.
func (s *Store) WaitingUsageSessions(ctx context.Context, payer models.TenantID) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM usage_sessions WHERE payer = $1 AND state = 'waiting_funds' ORDER BY id`, payer)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// UsageReceiptPayment is a signed receipt to pay from the payer's wallet.
type UsageReceiptPayment struct {
	ReceiptID string
	SessionID string
	Seq       int64
	Payer     models.TenantID
	ServiceID string
	Unit      models.ServiceUnit
	Units     int64
	Value     int64
	Currency  models.Currency
	// PayerEvent and EngineEvent are the two signed Nostr events.
	PayerEvent  any
	EngineEvent any
	// Stats is usage accumulated since the last write, written with the
	// payment (key: the receipt id).
	Stats []UsageStats
	At    time.Time
}

// UsageReceiptPaid is the outcome of PayUsageReceipt.
type UsageReceiptPaid struct {
	// Duplicate: the receipt was paid before (a retry); nothing changed.
	Duplicate bool
	Wallet    Wallet
}

// PayUsageReceipt pays a signed receipt: the wallet promise (key: the
// receipt id), the usage_receipts row and the statistics since the last
// write, in one transaction; the session is active again. A wallet that
// cannot cover it is a *NotEnoughError and nothing is written. A retry
// answers Duplicate.
func (s *Store) PayUsageReceipt(ctx context.Context, p UsageReceiptPayment) (UsageReceiptPaid, error) {
	var out UsageReceiptPaid
	if p.ReceiptID == "" || p.SessionID == "" || p.Seq <= 0 || p.Units <= 0 || p.Value < 0 {
		return out, &models.ValidationError{Field: "receipt", Reason: fmt.Sprintf("receipt %q of session %q (seq %d, %d units, value %d) is incomplete",
			p.ReceiptID, p.SessionID, p.Seq, p.Units, p.Value)}
	}
	at := p.At.UTC().Truncate(time.Microsecond)
	record := func(ctx context.Context, tx pgx.Tx) (bool, error) {
		pe, err := json.Marshal(p.PayerEvent)
		if err != nil {
			return false, err
		}
		ee, err := json.Marshal(p.EngineEvent)
		if err != nil {
			return false, err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO usage_receipts (receipt_id, session_id, seq, payer, service_id, unit, units, value, currency,
			payer_event, engine_event, paid_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (receipt_id) DO NOTHING`,
			p.ReceiptID, p.SessionID, p.Seq, p.Payer, p.ServiceID, p.Unit, p.Units, p.Value, p.Currency, pe, ee, at)
		if err != nil {
			return false, fmt.Errorf("record usage receipt %s: %w", p.ReceiptID, err)
		}
		if tag.RowsAffected() == 0 {
			return false, nil
		}
		if _, err := writeUsageStats(ctx, tx, p.ReceiptID, p.ServiceID, p.Payer, p.Stats, at); err != nil {
			return false, err
		}
		return true, setUsageSessionState(ctx, tx, p.SessionID, UsageSessionActive, at)
	}
	if p.Value == 0 {
		// Nothing to promise (a chunk worth less than half a minor unit).
		err := s.tx(ctx, func(tx pgx.Tx) error {
			fresh, err := record(ctx, tx)
			out.Duplicate = !fresh
			return err
		})
		if err != nil {
			return out, err
		}
		out.Wallet, err = s.WalletState(ctx, p.Payer)
		return out, err
	}
	res, err := s.walletWrite(ctx, models.EntryPromise, WalletWrite{TenantID: p.Payer, Key: p.ReceiptID, Amount: p.Value, Currency: p.Currency, At: at},
		promiseOp, func(ctx context.Context, tx pgx.Tx, _ *WalletEntry) error {
			fresh, err := record(ctx, tx)
			if err == nil && !fresh {
				return fmt.Errorf("usage receipt %s recorded without its promise", p.ReceiptID)
			}
			return err
		})
	if err != nil {
		return out, err
	}
	return UsageReceiptPaid{Duplicate: res.Duplicate, Wallet: res.Wallet}, nil
}

// UsageReceiptCount counts the paid receipts of a session (for tests and views).
func (s *Store) UsageReceiptCount(ctx context.Context, sessionID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM usage_receipts WHERE session_id = $1`, sessionID).Scan(&n)
	return n, err
}

// writeUsageStats adds stats under key once; it reports whether this call wrote.
func writeUsageStats(ctx context.Context, tx pgx.Tx, key, service string, payer models.TenantID, stats []UsageStats, at time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO usage_writes (write_key, at) VALUES ($1, $2) ON CONFLICT (write_key) DO NOTHING`, "stats/"+key, at)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	for _, u := range stats {
		if !validMode(u.Mode) {
			return false, &models.ValidationError{Field: "stats.mode", Reason: fmt.Sprintf("%q is not paid, free or grace", u.Mode)}
		}
		if u.Zero() {
			continue
		}
		_, err := tx.Exec(ctx, `INSERT INTO usage_stats (service_id, payer, mode, seconds, bytes_received, bytes_sent, units, value, sessions, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (service_id, payer, mode) DO UPDATE SET seconds = usage_stats.seconds + EXCLUDED.seconds,
				bytes_received = usage_stats.bytes_received + EXCLUDED.bytes_received, bytes_sent = usage_stats.bytes_sent + EXCLUDED.bytes_sent,
				units = usage_stats.units + EXCLUDED.units, value = usage_stats.value + EXCLUDED.value,
				sessions = usage_stats.sessions + EXCLUDED.sessions, updated_at = EXCLUDED.updated_at`,
			service, payer, u.Mode, u.Seconds, u.BytesReceived, u.BytesSent, u.Units, u.Value, u.Sessions, at)
		if err != nil {
			return false, fmt.Errorf("write usage stats %s: %w", key, err)
		}
	}
	return true, nil
}

// WriteUsageStats adds stats for (service, payer) once per key.
func (s *Store) WriteUsageStats(ctx context.Context, key, service string, payer models.TenantID, stats []UsageStats, at time.Time) (bool, error) {
	var wrote bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		wrote, err = writeUsageStats(ctx, tx, key, service, payer, stats, at)
		return err
	})
	return wrote, err
}

// UsageStatsOf lists the statistics of (service, payer), by mode; an empty
// service lists every service of the payer.
func (s *Store) UsageStatsOf(ctx context.Context, service string, payer models.TenantID) ([]UsageStatsRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT service_id, payer, mode, seconds, bytes_received, bytes_sent, units, value, sessions FROM usage_stats
		WHERE payer = $1 AND ($2 = '' OR service_id = $2) ORDER BY service_id, mode`, payer, service)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageStatsRow, error) {
		var u UsageStatsRow
		err := r.Scan(&u.ServiceID, &u.Payer, &u.Mode, &u.Seconds, &u.BytesReceived, &u.BytesSent, &u.Units, &u.Value, &u.Sessions)
		return u, err
	})
}

// UsageStatsRow is one row of statistics.
type UsageStatsRow struct {
	ServiceID string          `json:"service_id"`
	Payer     models.TenantID `json:"payer"`
	UsageStats
}

// UsageBan returns the expiry of the payer's active grace ban on the
// service at `at`, or nil.
func (s *Store) UsageBan(ctx context.Context, service string, payer models.TenantID, at time.Time) (*time.Time, error) {
	var until time.Time
	err := s.pool.QueryRow(ctx, `SELECT expires_at FROM usage_bans WHERE service_id = $1 AND payer = $2 AND expires_at > $3`,
		service, payer, at).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	until = until.UTC()
	return &until, nil
}

// BanUsagePayer bans the payer from grace on the service until `until`
// (a later ban extends, an earlier one does not shorten).
func (s *Store) BanUsagePayer(ctx context.Context, service string, payer models.TenantID, until time.Time, reason string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO usage_bans (service_id, payer, expires_at, reason, banned_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (service_id, payer) DO UPDATE SET expires_at = GREATEST(usage_bans.expires_at, EXCLUDED.expires_at),
			reason = EXCLUDED.reason, banned_at = EXCLUDED.banned_at`, service, payer, until, reason, at)
	return err
}

// LiftUsageBan removes the payer's grace ban on the service (an operator's
// action, or funds arriving); it reports whether there was one.
func (s *Store) LiftUsageBan(ctx context.Context, service string, payer models.TenantID) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM usage_bans WHERE service_id = $1 AND payer = $2`, service, payer)
	return tag.RowsAffected() > 0, err
}

// UsageRemain is the payer's remain service on (service, unit).
func (s *Store) UsageRemain(ctx context.Context, payer models.TenantID, service string, unit models.ServiceUnit) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT units FROM usage_remain WHERE payer = $1 AND service_id = $2 AND unit = $3`, payer, service, unit).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// TakeUsageRemain takes all of the payer's remain service on (service,
// unit) for a session, once per key: a retry answers what the first took.
func (s *Store) TakeUsageRemain(ctx context.Context, key string, payer models.TenantID, service string, unit models.ServiceUnit, at time.Time) (int64, error) {
	var took int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT units FROM usage_writes WHERE write_key = $1`, "take/"+key).Scan(&took)
		if err == nil {
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT units FROM usage_remain WHERE payer = $1 AND service_id = $2 AND unit = $3 FOR UPDATE`,
			payer, service, unit).Scan(&took)
		if errors.Is(err, pgx.ErrNoRows) {
			took = 0
		} else if err != nil {
			return err
		} else if _, err := tx.Exec(ctx, `UPDATE usage_remain SET units = 0, updated_at = $4 WHERE payer = $1 AND service_id = $2 AND unit = $3`,
			payer, service, unit, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO usage_writes (write_key, units, at) VALUES ($1, $2, $3)`, "take/"+key, took, at)
		return err
	})
	return took, err
}

// AddUsageRemain adds unused covered units to the payer's remain service
// on (service, unit), once per key.
func (s *Store) AddUsageRemain(ctx context.Context, key string, payer models.TenantID, service string, unit models.ServiceUnit, units int64, at time.Time) (bool, error) {
	var added bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO usage_writes (write_key, units, at) VALUES ($1, $2, $3) ON CONFLICT (write_key) DO NOTHING`, "remain/"+key, units, at)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		added = true
		_, err = tx.Exec(ctx, `INSERT INTO usage_remain (payer, service_id, unit, units, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (payer, service_id, unit) DO UPDATE SET units = usage_remain.units + EXCLUDED.units, updated_at = EXCLUDED.updated_at`,
			payer, service, unit, units, at)
		return err
	})
	return added, err
}

// WriteUsageEvent writes an outbound event for the payer (UNIQUE by type
// and subject, so a retry writes it once).
func (s *Store) WriteUsageEvent(ctx context.Context, payer models.TenantID, typ, subject string, payload any) error {
	return s.tx(ctx, func(tx pgx.Tx) error { return insertEvent(ctx, tx, payer, typ, subject, payload) })
}
