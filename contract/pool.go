package contract

import (
	"math/big"
	"time"

	"github.com/billflow/billflow/models"
)

// The free-tier generosity pool as usage sessions see it (issue 11). The
// pool's rules and store live in models/pool.go and store/pool.go; these
// are the values a session carries and shows.

// Free-tier decisions (what decide() answered for a receipt).
const (
	// PoolFree: the pool pays the whole receipt (debited at decision time).
	PoolFree = "free"
	// PoolPartial: the pool pays its part once the payer's part is promised.
	PoolPartial = "partial"
	// PoolGate: the payer's wallet pays the whole receipt.
	PoolGate = "gate"
)

// UsagePoolPaid is the free-tier part of one paid receipt.
type UsagePoolPaid struct {
	// Serve is the decision: PoolFree, PoolPartial or PoolGate.
	Serve string `json:"serve"`
	// Absorbed is what the pool paid of the receipt (reserved for it; what
	// the session does not use goes back when it ends); Charge is what the
	// payer's wallet promised.
	Absorbed int64 `json:"absorbed"`
	Charge   int64 `json:"charge"`
	// Balance is the pool's balance and AbsorbedToday what the payer's daily
	// budget has used, just after the decision.
	Balance       int64 `json:"balance"`
	AbsorbedToday int64 `json:"absorbed_today"`
	// Tier is the payer's trust tier when it was decided.
	Tier string `json:"tier,omitempty"`
}

// UsagePoolView is a subsidised session's free-tier state (current
// details): what the pool absorbed for this session, the pool's balance
// and the payer's absorbed amount today, as the last payment read them.
type UsagePoolView struct {
	Absorbed      int64  `json:"absorbed"`
	Released      int64  `json:"released,omitempty"`
	Balance       int64  `json:"balance"`
	AbsorbedToday int64  `json:"absorbed_today"`
	LastServe     string `json:"last_serve,omitempty"`
	Tier          string `json:"tier,omitempty"`
}

// UsagePoolGrant is a receipt the pool paid (part of), until its units are
// used or the session ends. Start is the receipt units before it (its
// first unit after the remain units the session started with).
type UsagePoolGrant struct {
	Key      string `json:"key"`
	Start    int64  `json:"start"`
	Units    int64  `json:"units"`
	Value    int64  `json:"value"`
	Absorbed int64  `json:"absorbed"`
}

// UsagePoolSettle records a grant: Actual of the Reserved amount was used;
// the rest goes back to the pool (once per grant key).
type UsagePoolSettle struct {
	Key      string `json:"key"`
	Actual   int64  `json:"actual"`
	Reserved int64  `json:"reserved"`
}

// PoolUnits is how many of a receipt's units the pool's part pays for,
// rounded up (the pool's part counts as the receipt's last units, so units
// left unused go back to the pool before they become the payer's remain
// service).
func (g UsagePoolGrant) PoolUnits() int64 {
	if g.Units <= 0 || g.Absorbed <= 0 {
		return 0
	}
	if g.Value <= 0 || g.Absorbed >= g.Value {
		return g.Units
	}
	n := new(big.Int).Mul(big.NewInt(g.Units), big.NewInt(g.Absorbed))
	d := big.NewInt(g.Value)
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return min(q.Int64(), g.Units)
}

// SettlePoolGrants values the session's pool grants against the units
// used: remainStart is the remain units the session started with (used
// first), used the units used so far. When final is false only the grants
// whose units are all used are settled (Actual = Reserved) and the others
// are kept; when final (the session ends) every grant is settled, its
// unused pool units priced pro rata (rounded down, in the pool's favour)
// and given back. poolUnused is the unused units the pool paid for (they
// are not the payer's remain service).
func SettlePoolGrants(grants []UsagePoolGrant, remainStart, used int64, final bool) (settled []UsagePoolSettle, kept []UsagePoolGrant, poolUnused int64) {
	for _, g := range grants {
		first := remainStart + g.Start
		end := first + g.Units
		unused := min(max(end-max(used, first), 0), g.Units)
		if unused > 0 && !final {
			kept = append(kept, g)
			continue
		}
		pu := g.PoolUnits()
		unusedPool := min(unused, pu)
		actual := g.Absorbed
		if unusedPool > 0 {
			n := new(big.Int).Mul(big.NewInt(g.Absorbed), big.NewInt(pu-unusedPool))
			actual = n.Quo(n, big.NewInt(pu)).Int64()
		}
		poolUnused += unusedPool
		settled = append(settled, UsagePoolSettle{Key: g.Key, Actual: actual, Reserved: g.Absorbed})
	}
	return settled, kept, poolUnused
}

// WorkflowPoolOperation is the type name of a pool operation: one short
// workflow (ID pool-op/<request id>) that runs one activity, so package
// billing reaches the pool through Temporal alone.
const WorkflowPoolOperation = "PoolOperation"

// PoolOperationWorkflowID is the ID of a pool operation's workflow.
func PoolOperationWorkflowID(requestID string) string { return "pool-op/" + requestID }

// Pool operations (PoolOpRequest.Op).
const (
	PoolOpShow   = "show"
	PoolOpCredit = "credit"
	PoolOpGrants = "grants"
	PoolOpDecide = "decide"
	PoolOpTier   = "tier"
	PoolOpPin    = "pin"
	PoolOpUnpin  = "unpin"
)

// PoolOpRequest is one pool operation: show; credit (Key, Amount, Note);
// grants (Payer, Outcome, Limit: filters); decide (Payer, Amount: a dry
// run); tier (Payer); pin (Payer, Tier, Reason); unpin (Payer).
type PoolOpRequest struct {
	Op      string          `json:"op"`
	Payer   models.TenantID `json:"payer,omitempty"`
	Amount  int64           `json:"amount,omitempty"`
	Key     string          `json:"key,omitempty"`
	Note    string          `json:"note,omitempty"`
	Tier    string          `json:"tier,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Outcome string          `json:"outcome,omitempty"`
	Limit   int             `json:"limit,omitempty"`
}

// PoolOpAnswer is a pool operation's answer: the part its Op fills, or
// Error (a refusal: bad input, an unknown payer, no pool configured).
type PoolOpAnswer struct {
	Status  *PoolStatusView  `json:"status,omitempty"`
	Credit  *PoolCreditView  `json:"credit,omitempty"`
	Grants  []PoolGrantView  `json:"grants,omitempty"`
	Verdict *PoolVerdictView `json:"verdict,omitempty"`
	Tier    *PayerTierView   `json:"tier,omitempty"`
	Error   *PoolOpError     `json:"error,omitempty"`
}

// PoolOpError is a refused pool operation: the field that was wrong and why.
type PoolOpError struct {
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// PoolStatusView is the pool at a glance (the JSON of GET /v1/pool).
type PoolStatusView struct {
	Currency      models.Currency `json:"currency"`
	Balance       int64           `json:"balance"`
	ShareBps      int64           `json:"credit_share_bps"`
	LowFloor      int64           `json:"low_balance_floor"`
	Low           bool            `json:"low"`
	AbsorbedToday int64           `json:"absorbed_today"`
	Reserved      int64           `json:"reserved"`
	Grants        int64           `json:"grants"`
	GrantsToday   int64           `json:"grants_today"`
	Credited      int64           `json:"credited"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

// PoolCreditView is a credit put into the pool.
type PoolCreditView struct {
	Key        string    `json:"key"`
	InvoiceID  string    `json:"invoice_id,omitempty"`
	Amount     int64     `json:"amount"`
	Note       string    `json:"note,omitempty"`
	CreditedAt time.Time `json:"credited_at"`
	Balance    int64     `json:"balance"`
	Replayed   bool      `json:"replayed,omitempty"`
}

// PoolGrantView is one row of the grant audit.
type PoolGrantView struct {
	RequestKey string           `json:"request_key"`
	Payer      models.TenantID  `json:"payer"`
	Tier       models.TrustTier `json:"tier"`
	Serve      models.Serve     `json:"serve"`
	Currency   models.Currency  `json:"currency"`
	Estimated  int64            `json:"estimated"`
	Reserved   int64            `json:"reserved"`
	Absorbed   int64            `json:"absorbed"`
	Released   int64            `json:"released"`
	Outcome    string           `json:"outcome"`
	Reason     string           `json:"reason,omitempty"`
	ReservedAt time.Time        `json:"reserved_at"`
	SettledAt  *time.Time       `json:"settled_at,omitempty"`
}

// PoolVerdictView is a (dry-run) decision with what it was made from.
type PoolVerdictView struct {
	models.PoolDecision
	Tier           models.TrustTier `json:"tier"`
	DailyBudget    int64            `json:"daily_budget"`
	DailyRemaining int64            `json:"daily_remaining"`
	PoolBalance    int64            `json:"pool_balance"`
	Reason         string           `json:"reason,omitempty"`
}

// PayerTierView is a payer's standing with the pool.
type PayerTierView struct {
	Payer          models.TenantID    `json:"payer"`
	Tier           models.TrustTier   `json:"tier"`
	Derived        models.TrustTier   `json:"derived"`
	Pinned         bool               `json:"pinned"`
	History        models.PaidHistory `json:"history"`
	PinReason      string             `json:"pin_reason,omitempty"`
	DailyBudget    int64              `json:"daily_budget"`
	AbsorbedToday  int64              `json:"absorbed_today"`
	DailyRemaining int64              `json:"daily_remaining"`
	WindowStart    time.Time          `json:"window_start,omitzero"`
}
