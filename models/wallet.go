package models

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// A wallet is a tenant's prepaid balance in its currency, kept as an
// append-only ledger. This file is its arithmetic; the store keeps the same
// sums as running totals guarded by conditional updates and CHECKs.
//
// Definitions (all integer minor units):
//
//	funds     = deposits + grants - settled - withdrawn - expired
//	unsettled = promised - settled
//	spendable = funds - unsettled
//
// Consumption rules, so that expiring credit is used first:
//   - A settlement takes its amount from grants before deposits: from the
//     open grants in order of expiry (earliest first, grants that never
//     expire last, ties in the order they were granted), then from deposits.
//     A grant's used part is what settlements took from it.
//   - A withdrawal takes only deposits (grants are not money the tenant paid):
//     at most the deposit remainder (deposits - settled from deposits -
//     withdrawn) and at most spendable, so promised usage stays covered.
//   - At its expiry a grant loses its unused remainder, but never the part
//     that outstanding promises rely on. Unsettled promises count as
//     consuming credit in the same order as settlements would (grants by
//     expiry, then deposits); the unused remainder is what is left of the
//     grant after that: remainder - its share of unsettled. What is held back
//     stays on the grant and, as the grant expires first, is the first credit
//     the next settlements take. A grant expires once (one expire entry,
//     possibly of zero), and spendable never goes below zero by it.
//
// A promise is a reservation: it takes nothing from a grant or a deposit
// until it is settled.

// WalletEntryKind is the kind of a wallet ledger entry.
type WalletEntryKind string

// Wallet ledger entry kinds.
const (
	// EntryDeposit is a paid top-up (source key: the payment's money reference).
	EntryDeposit WalletEntryKind = "deposit"
	// EntryGrant is credit given by an operator or a promotion, with an
	// optional expiry (source key: the caller's key).
	EntryGrant WalletEntryKind = "grant"
	// EntryPromise is a usage receipt the payer signed (source key: receipt id).
	EntryPromise WalletEntryKind = "promise"
	// EntrySettle takes promises from the funds (source key: settlement id).
	EntrySettle WalletEntryKind = "settle"
	// EntryWithdraw is unspent deposits paid back (source key: request id).
	EntryWithdraw WalletEntryKind = "withdraw"
	// EntryWithdrawReturn gives back a withdrawal whose payout failed
	// (source key: the withdrawal's request id, so it returns once).
	EntryWithdrawReturn WalletEntryKind = "withdraw_return"
	// EntryExpire is the unused remainder of a grant at its expiry (source
	// key: the grant's key).
	EntryExpire WalletEntryKind = "expire"
)

// ParseWalletEntryKind checks a ledger entry kind.
func ParseWalletEntryKind(s string) (WalletEntryKind, error) {
	switch k := WalletEntryKind(s); k {
	case EntryDeposit, EntryGrant, EntryPromise, EntrySettle, EntryWithdraw, EntryWithdrawReturn, EntryExpire:
		return k, nil
	}
	return "", invalid("kind", "%q is not one of deposit, grant, promise, settle, withdraw, withdraw_return, expire", s)
}

// ErrNotEnough is matched (errors.Is) by every *NotEnoughError.
var ErrNotEnough = errors.New("not enough in the wallet")

// NotEnoughError refuses a promise, a wallet payment or a withdrawal that
// the wallet cannot cover: Wanted is above Available, which is the
// spendable amount (Of "spendable") or the withdrawable one (Of
// "withdrawable") when the write was refused.
type NotEnoughError struct {
	Of        string
	Wanted    int64
	Available int64
}

func (e *NotEnoughError) Error() string {
	return fmt.Sprintf("%d is above the %s %d", e.Wanted, e.Of, e.Available)
}

// Is makes errors.Is(err, ErrNotEnough) true.
func (e *NotEnoughError) Is(target error) bool { return target == ErrNotEnough }

// WalletInvariantError reports totals that break a wallet rule, e.g. a
// negative raw spendable. The wallet still shows zero spendable; this error
// is how the violation is reported instead of being hidden.
type WalletInvariantError struct {
	// Rule names the broken rule, e.g. "spendable >= 0".
	Rule string
	// Value is the offending raw value.
	Value int64
}

func (e *WalletInvariantError) Error() string {
	return fmt.Sprintf("wallet invariant %s broken: %d", e.Rule, e.Value)
}

// WalletTotals are the running sums of a wallet's ledger by kind.
// SettledFromGrants is the part of Settled that grants covered.
type WalletTotals struct {
	Deposits          int64 `json:"deposits"`
	Grants            int64 `json:"grants"`
	Promised          int64 `json:"promised"`
	Settled           int64 `json:"settled"`
	SettledFromGrants int64 `json:"settled_from_grants"`
	Withdrawn         int64 `json:"withdrawn"`
	Expired           int64 `json:"expired"`
}

// sum adds and subtracts with overflow checks: a wallet never wraps around.
func sum(field string, plus []int64, minus []int64) (int64, error) {
	var s int64
	var err error
	for _, v := range plus {
		if s, err = AddAmount(field, s, v); err != nil {
			return 0, err
		}
	}
	for _, v := range minus {
		if s, err = SubAmount(field, s, v); err != nil {
			return 0, err
		}
	}
	return s, nil
}

// Funds is deposits + grants - settled - withdrawn - expired.
func (t WalletTotals) Funds() (int64, error) {
	return sum("funds", []int64{t.Deposits, t.Grants}, []int64{t.Settled, t.Withdrawn, t.Expired})
}

// Unsettled is promised - settled.
func (t WalletTotals) Unsettled() (int64, error) {
	return sum("unsettled", []int64{t.Promised}, []int64{t.Settled})
}

// RawSpendable is funds - unsettled, which may be negative when the totals
// are broken; Spendable is what is shown.
func (t WalletTotals) RawSpendable() (int64, error) {
	f, err := t.Funds()
	if err != nil {
		return 0, err
	}
	u, err := t.Unsettled()
	if err != nil {
		return 0, err
	}
	return SubAmount("spendable", f, u)
}

// Spendable is funds - unsettled, never shown below zero (a negative raw
// value is reported by Check, not hidden). Totals that overflow show zero.
func (t WalletTotals) Spendable() int64 {
	s, err := t.RawSpendable()
	if err != nil || s < 0 {
		return 0
	}
	return s
}

// DepositRemaining is what is left of deposits: deposits - settled from
// deposits - withdrawn.
func (t WalletTotals) DepositRemaining() (int64, error) {
	fromDeposits, err := SubAmount("settled_from_deposits", t.Settled, t.SettledFromGrants)
	if err != nil {
		return 0, err
	}
	return sum("deposit_remaining", []int64{t.Deposits}, []int64{fromDeposits, t.Withdrawn})
}

// GrantRemaining is what is left of grants: grants - settled from grants - expired.
func (t WalletTotals) GrantRemaining() (int64, error) {
	return sum("grant_remaining", []int64{t.Grants}, []int64{t.SettledFromGrants, t.Expired})
}

// Withdrawable is min(deposit remainder, spendable), never below zero.
func (t WalletTotals) Withdrawable() int64 {
	d, err := t.DepositRemaining()
	if err != nil || d < 0 {
		return 0
	}
	return min(d, t.Spendable())
}

// Check reports the first broken rule as a *WalletInvariantError: every
// total non-negative, settled <= promised, settled from grants <= settled,
// deposit and grant remainders non-negative, raw spendable non-negative.
// An overflow is reported as the ValidationError of the checked arithmetic.
func (t WalletTotals) Check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"deposits >= 0", t.Deposits}, {"grants >= 0", t.Grants}, {"promised >= 0", t.Promised}, {"settled >= 0", t.Settled},
		{"settled_from_grants >= 0", t.SettledFromGrants}, {"withdrawn >= 0", t.Withdrawn}, {"expired >= 0", t.Expired}} {
		if f.v < 0 {
			return &WalletInvariantError{Rule: f.name, Value: f.v}
		}
	}
	u, err := t.Unsettled()
	if err != nil {
		return err
	}
	if u < 0 {
		return &WalletInvariantError{Rule: "settled <= promised", Value: u}
	}
	if t.SettledFromGrants > t.Settled {
		return &WalletInvariantError{Rule: "settled_from_grants <= settled", Value: t.Settled - t.SettledFromGrants}
	}
	d, err := t.DepositRemaining()
	if err != nil {
		return err
	}
	if d < 0 {
		return &WalletInvariantError{Rule: "deposit remainder >= 0", Value: d}
	}
	g, err := t.GrantRemaining()
	if err != nil {
		return err
	}
	if g < 0 {
		return &WalletInvariantError{Rule: "grant remainder >= 0", Value: g}
	}
	s, err := t.RawSpendable()
	if err != nil {
		return err
	}
	if s < 0 {
		return &WalletInvariantError{Rule: "spendable >= 0", Value: s}
	}
	return nil
}

// WalletGrant is one grant as settlements and its expiry consume it.
type WalletGrant struct {
	Key       string     `json:"key"`
	Amount    int64      `json:"amount"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Used is what settlements took from the grant.
	Used int64 `json:"used"`
	// Expired is what its expiry removed; ExpiredDone says the expiry
	// happened (Expired may be zero).
	Expired     int64 `json:"expired"`
	ExpiredDone bool  `json:"expired_done"`
	// Seq orders grants given at once: the order they were granted.
	Seq int64 `json:"seq"`
}

// Remaining is amount - used - expired.
func (g WalletGrant) Remaining() int64 { return g.Amount - g.Used - g.Expired }

// GrantUse is the part of a settlement one grant covered.
type GrantUse struct {
	Key    string `json:"key"`
	Amount int64  `json:"amount"`
}

// SortGrantsForUse orders grants the way settlements consume them: earliest
// expiry first, never-expiring grants last, then by Seq.
func SortGrantsForUse(grants []WalletGrant) {
	sort.SliceStable(grants, func(i, j int) bool {
		a, b := grants[i], grants[j]
		switch {
		case a.ExpiresAt != nil && b.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt):
			return a.ExpiresAt.Before(*b.ExpiresAt)
		case (a.ExpiresAt == nil) != (b.ExpiresAt == nil):
			return a.ExpiresAt != nil
		}
		return a.Seq < b.Seq
	})
}

// AllocateSettlement splits a settlement of amount over grants (in the
// order given: see SortGrantsForUse) then deposits: the uses of grants with
// a remainder, and what deposits cover.
func AllocateSettlement(grants []WalletGrant, amount int64) (uses []GrantUse, fromDeposits int64) {
	left := amount
	for _, g := range grants {
		if left == 0 {
			break
		}
		if r := g.Remaining(); r > 0 {
			take := min(r, left)
			uses = append(uses, GrantUse{Key: g.Key, Amount: take})
			left -= take
		}
	}
	return uses, left
}

// Wallet is a wallet's totals and grants, with the rules that change them.
// The store applies the same rules to its rows; this type is the reference
// the tests check the rules against.
type Wallet struct {
	Totals WalletTotals
	Grants []WalletGrant
}

func positive(field string, amount int64) error {
	if amount <= 0 {
		return invalid(field, "amount %d is not positive", amount)
	}
	return nil
}

// Deposit adds a paid top-up.
func (w *Wallet) Deposit(amount int64) error {
	if err := positive("deposit", amount); err != nil {
		return err
	}
	d, err := AddAmount("deposits", w.Totals.Deposits, amount)
	if err != nil {
		return err
	}
	if _, err := (WalletTotals{Deposits: d, Grants: w.Totals.Grants}).Funds(); err != nil {
		return err
	}
	w.Totals.Deposits = d
	return nil
}

// Grant adds credit under key, expiring at expiresAt (nil: never). An
// expiry not after now is refused.
func (w *Wallet) Grant(key string, amount int64, expiresAt *time.Time, now time.Time) error {
	if err := positive("grant "+key, amount); err != nil {
		return err
	}
	if key == "" {
		return invalid("grant", "key must not be empty")
	}
	if expiresAt != nil && !expiresAt.After(now) {
		return invalid("grant "+key, "expiry %s is not in the future", expiresAt.UTC().Format(time.RFC3339))
	}
	for _, g := range w.Grants {
		if g.Key == key {
			return invalid("grant "+key, "key already used")
		}
	}
	gs, err := AddAmount("grants", w.Totals.Grants, amount)
	if err != nil {
		return err
	}
	if _, err := (WalletTotals{Deposits: w.Totals.Deposits, Grants: gs}).Funds(); err != nil {
		return err
	}
	w.Totals.Grants = gs
	w.Grants = append(w.Grants, WalletGrant{Key: key, Amount: amount, ExpiresAt: expiresAt, Seq: int64(len(w.Grants) + 1)})
	return nil
}

// Promise reserves amount of spendable; more than spendable is a *NotEnoughError.
func (w *Wallet) Promise(amount int64) error {
	if err := positive("promise", amount); err != nil {
		return err
	}
	s := w.Totals.Spendable()
	if amount > s {
		return &NotEnoughError{Of: "spendable", Wanted: amount, Available: s}
	}
	w.Totals.Promised += amount // amount <= spendable <= funds: no overflow
	return nil
}

// Settle takes amount of the unsettled promises from the funds, grants
// first; it returns how the amount was covered.
func (w *Wallet) Settle(amount int64) (uses []GrantUse, fromDeposits int64, err error) {
	if err := positive("settle", amount); err != nil {
		return nil, 0, err
	}
	u, err := w.Totals.Unsettled()
	if err != nil {
		return nil, 0, err
	}
	if amount > u {
		return nil, 0, invalid("settle", "amount %d is above the unsettled %d", amount, u)
	}
	order := append([]WalletGrant(nil), w.Grants...)
	SortGrantsForUse(order)
	uses, fromDeposits = AllocateSettlement(order, amount)
	if dr, err := w.Totals.DepositRemaining(); err != nil {
		return nil, 0, err
	} else if fromDeposits > dr {
		// Only reachable with broken totals: spendable >= 0 means funds cover unsettled.
		return nil, 0, &WalletInvariantError{Rule: "funds >= unsettled", Value: dr - fromDeposits}
	}
	for _, use := range uses {
		for i := range w.Grants {
			if w.Grants[i].Key == use.Key {
				w.Grants[i].Used += use.Amount
			}
		}
		w.Totals.SettledFromGrants += use.Amount
	}
	w.Totals.Settled += amount
	return uses, fromDeposits, nil
}

// Withdraw pays back amount of unspent deposits; more than withdrawable is
// a *NotEnoughError of "withdrawable".
func (w *Wallet) Withdraw(amount int64) error {
	if err := positive("withdraw", amount); err != nil {
		return err
	}
	if a := w.Totals.Withdrawable(); amount > a {
		return &NotEnoughError{Of: "withdrawable", Wanted: amount, Available: a}
	}
	w.Totals.Withdrawn += amount
	return nil
}

// ReturnWithdrawal gives back amount of a withdrawal whose payout failed:
// it is unspent deposits again. More than was withdrawn is an error.
func (w *Wallet) ReturnWithdrawal(amount int64) error {
	if err := positive("withdraw_return", amount); err != nil {
		return err
	}
	if amount > w.Totals.Withdrawn {
		return invalid("withdraw_return", "amount %d is above the %d withdrawn", amount, w.Totals.Withdrawn)
	}
	w.Totals.Withdrawn -= amount
	return nil
}

// Expire ends the grant under key: it removes min(remainder, spendable) and
// returns that amount. A grant expires once; a second call is an error, as
// is a grant whose expiry is after now or which never expires.
func (w *Wallet) Expire(key string, now time.Time) (int64, error) {
	for i := range w.Grants {
		g := &w.Grants[i]
		if g.Key != key {
			continue
		}
		switch {
		case g.ExpiresAt == nil:
			return 0, invalid("grant "+key, "never expires")
		case g.ExpiresAt.After(now):
			return 0, invalid("grant "+key, "expires at %s, not yet", g.ExpiresAt.UTC().Format(time.RFC3339))
		case g.ExpiredDone:
			return 0, invalid("grant "+key, "already expired")
		}
		u, err := w.Totals.Unsettled()
		if err != nil {
			return 0, err
		}
		amount := ExpireAmount(w.Grants, key, u)
		g.Expired, g.ExpiredDone = amount, true
		w.Totals.Expired += amount
		return amount, nil
	}
	return 0, invalid("grant "+key, "no such grant")
}

// ExpireAmount is what the expiry of the grant under key removes: its
// remainder less its share of the unsettled promises when those are
// allocated over all grants (remainders, in SortGrantsForUse order) before
// deposits. grants is not modified.
func ExpireAmount(grants []WalletGrant, key string, unsettled int64) int64 {
	order := append([]WalletGrant(nil), grants...)
	SortGrantsForUse(order)
	uses, _ := AllocateSettlement(order, max(0, unsettled))
	for _, g := range order {
		if g.Key != key {
			continue
		}
		held := int64(0)
		for _, u := range uses {
			if u.Key == key {
				held = u.Amount
			}
		}
		return max(0, g.Remaining()-held)
	}
	return 0
}
