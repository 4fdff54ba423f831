package models_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/billflow/billflow/models"
)

var walletNow = ts("2026-03-01T00:00:00Z")

func tp(t time.Time) *time.Time { return &t }

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func spendableOf(t testing.TB, w *models.Wallet) int64 {
	t.Helper()
	s, err := w.Totals.RawSpendable()
	mustNil(t, err)
	return s
}

func TestWalletBalanceArithmetic(t *testing.T) {
	var w models.Wallet
	mustNil(t, w.Deposit(1000))
	mustNil(t, w.Grant("promo", 300, nil, walletNow))
	mustNil(t, w.Promise(700))
	if _, _, err := w.Settle(500); err != nil {
		t.Fatal(err)
	}
	mustNil(t, w.Withdraw(100))
	// funds = 1000 + 300 - 500 - 100 - 0 = 700; unsettled = 700 - 500 = 200.
	f, _ := w.Totals.Funds()
	u, _ := w.Totals.Unsettled()
	if f != 700 || u != 200 || w.Totals.Spendable() != 500 {
		t.Fatalf("funds %d unsettled %d spendable %d, want 700 200 500", f, u, w.Totals.Spendable())
	}
	mustNil(t, w.Totals.Check())
	// The 500 settled took the 300 grant first, then 200 of deposits, so
	// 1000 - 200 - 100 = 700 of deposits remain, withdrawable up to spendable.
	if d, _ := w.Totals.DepositRemaining(); d != 700 {
		t.Fatalf("deposit remainder %d, want 700", d)
	}
	if w.Totals.Withdrawable() != 500 {
		t.Fatalf("withdrawable %d, want 500", w.Totals.Withdrawable())
	}
}

func TestWalletSpendableSaturatesAndReportsViolation(t *testing.T) {
	// Totals as a broken ledger might hold them: promised beyond funds.
	tot := models.WalletTotals{Deposits: 100, Promised: 250, Settled: 50}
	if raw, _ := tot.RawSpendable(); raw != -150 {
		t.Fatalf("raw spendable %d, want -150", raw)
	}
	if tot.Spendable() != 0 {
		t.Fatalf("spendable %d, want 0 (saturated)", tot.Spendable())
	}
	var ie *models.WalletInvariantError
	if err := tot.Check(); !errors.As(err, &ie) || ie.Rule != "spendable >= 0" || ie.Value != -150 {
		t.Fatalf("Check = %v, want spendable >= 0 violation of -150", err)
	}
	// Settled above promised is reported too.
	if err := (models.WalletTotals{Deposits: 10, Promised: 1, Settled: 2}).Check(); !errors.As(err, &ie) || ie.Rule != "settled <= promised" {
		t.Fatalf("Check = %v, want settled <= promised", err)
	}
	// Overflowing totals are an error, not a wrapped number.
	if _, err := (models.WalletTotals{Deposits: math.MaxInt64, Grants: 1}).Funds(); err == nil {
		t.Fatal("funds of MaxInt64 + 1 did not report overflow")
	}
	var w models.Wallet
	mustNil(t, w.Deposit(math.MaxInt64))
	var ve *models.ValidationError
	if err := w.Grant("g", 1, nil, walletNow); !errors.As(err, &ve) {
		t.Fatalf("grant overflowing funds: %v, want a ValidationError", err)
	}
}

func TestWalletGrantsConsumedFirstByExpiry(t *testing.T) {
	var w models.Wallet
	mustNil(t, w.Deposit(1000))
	mustNil(t, w.Grant("forever", 100, nil, walletNow))
	mustNil(t, w.Grant("late", 100, tp(walletNow.Add(48*time.Hour)), walletNow))
	mustNil(t, w.Grant("early", 100, tp(walletNow.Add(24*time.Hour)), walletNow))
	mustNil(t, w.Promise(450))
	uses, fromDeposits, err := w.Settle(250)
	mustNil(t, err)
	want := []models.GrantUse{{Key: "early", Amount: 100}, {Key: "late", Amount: 100}, {Key: "forever", Amount: 50}}
	if len(uses) != len(want) || fromDeposits != 0 {
		t.Fatalf("uses %v from deposits %d, want %v and 0", uses, fromDeposits, want)
	}
	for i := range want {
		if uses[i] != want[i] {
			t.Fatalf("use %d = %v, want %v", i, uses[i], want[i])
		}
	}
	uses, fromDeposits, err = w.Settle(200)
	mustNil(t, err)
	if len(uses) != 1 || uses[0] != (models.GrantUse{Key: "forever", Amount: 50}) || fromDeposits != 150 {
		t.Fatalf("second settle: uses %v from deposits %d, want forever 50 and 150", uses, fromDeposits)
	}
	// Grants are not withdrawable: only the 850 left of deposits, all spendable.
	if w.Totals.Withdrawable() != 850 {
		t.Fatalf("withdrawable %d, want 850", w.Totals.Withdrawable())
	}
	var ne *models.NotEnoughError
	if err := w.Withdraw(851); !errors.As(err, &ne) || ne.Of != "withdrawable" || ne.Available != 850 || !errors.Is(err, models.ErrNotEnough) {
		t.Fatalf("withdraw 851: %v, want NotEnough of withdrawable 850", err)
	}
}

func TestWalletGrantExpiry(t *testing.T) {
	exp := walletNow.Add(time.Hour)
	t.Run("unused remainder expires once", func(t *testing.T) {
		var w models.Wallet
		mustNil(t, w.Deposit(100))
		mustNil(t, w.Grant("g", 300, &exp, walletNow))
		mustNil(t, w.Promise(120))
		_, _, err := w.Settle(120) // all from the grant
		mustNil(t, err)
		if _, err := w.Expire("g", walletNow); err == nil {
			t.Fatal("expired before its expiry")
		}
		n, err := w.Expire("g", exp)
		mustNil(t, err)
		if n != 180 || spendableOf(t, &w) != 100 {
			t.Fatalf("expired %d spendable %d, want 180 and 100", n, spendableOf(t, &w))
		}
		if _, err := w.Expire("g", exp); err == nil {
			t.Fatal("expired twice")
		}
	})
	t.Run("credit promised is held, not expired", func(t *testing.T) {
		var w models.Wallet
		mustNil(t, w.Deposit(100))
		mustNil(t, w.Grant("g", 300, &exp, walletNow))
		mustNil(t, w.Promise(350)) // unsettled 350: the grant's 300 then 50 of deposits
		n, err := w.Expire("g", exp)
		mustNil(t, err)
		if n != 0 || spendableOf(t, &w) != 50 {
			t.Fatalf("expired %d spendable %d, want 0 and 50", n, spendableOf(t, &w))
		}
		uses, fromDeposits, err := w.Settle(350)
		mustNil(t, err)
		if len(uses) != 1 || uses[0].Amount != 300 || fromDeposits != 50 {
			t.Fatalf("settle after expiry: %v + %d, want the held 300 then 50", uses, fromDeposits)
		}
		mustNil(t, w.Totals.Check())
	})
	t.Run("partly promised", func(t *testing.T) {
		var w models.Wallet
		mustNil(t, w.Grant("g", 300, &exp, walletNow))
		mustNil(t, w.Promise(100))
		n, err := w.Expire("g", exp)
		mustNil(t, err)
		if n != 200 || spendableOf(t, &w) != 0 {
			t.Fatalf("expired %d spendable %d, want 200 and 0", n, spendableOf(t, &w))
		}
	})
	t.Run("expiry in the past refused", func(t *testing.T) {
		var w models.Wallet
		var ve *models.ValidationError
		if err := w.Grant("g", 1, tp(walletNow), walletNow); !errors.As(err, &ve) {
			t.Fatalf("grant expiring now: %v, want ValidationError", err)
		}
	})
}

func TestWalletRefusals(t *testing.T) {
	var w models.Wallet
	mustNil(t, w.Deposit(100))
	var ve *models.ValidationError
	for name, err := range map[string]error{
		"deposit 0":    w.Deposit(0),
		"promise -1":   w.Promise(-1),
		"grant no key": w.Grant("", 5, nil, walletNow),
		"withdraw 0":   w.Withdraw(0),
	} {
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want ValidationError", name, err)
		}
	}
	var ne *models.NotEnoughError
	if err := w.Promise(101); !errors.As(err, &ne) || ne.Wanted != 101 || ne.Available != 100 || ne.Of != "spendable" {
		t.Fatalf("promise 101: %v, want NotEnough 101 of spendable 100", err)
	}
	mustNil(t, w.Promise(60))
	if _, _, err := w.Settle(61); !errors.As(err, &ve) {
		t.Fatalf("settle above unsettled: %v, want ValidationError", err)
	}
	// 60 promised: only 40 may leave.
	if err := w.Withdraw(41); !errors.As(err, &ne) || ne.Available != 40 {
		t.Fatalf("withdraw 41: %v, want NotEnough of 40", err)
	}
}

// TestWalletRandomSequences applies random entries and checks, after each,
// that funds stay >= 0, the totals keep every rule, and they match a
// straightforward recomputation from the accepted entries.
func TestWalletRandomSequences(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var w models.Wallet
		type entry struct {
			kind   models.WalletEntryKind
			amount int64
		}
		var ledger []entry
		now := walletNow
		grants := 0
		var open []int64 // withdrawals not returned
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "advance")) * time.Minute)
			amount := rapid.Int64Range(-2, 500).Draw(t, "amount")
			var err error
			var accepted int64
			kind := rapid.SampledFrom([]models.WalletEntryKind{models.EntryDeposit, models.EntryGrant, models.EntryPromise,
				models.EntrySettle, models.EntryWithdraw, models.EntryWithdrawReturn, models.EntryExpire}).Draw(t, "kind")
			before := w.Totals
			grantRemainder := func() int64 {
				var r int64
				for _, g := range w.Grants {
					r += g.Remaining()
				}
				return r
			}
			switch kind {
			case models.EntryDeposit:
				err, accepted = w.Deposit(amount), amount
			case models.EntryGrant:
				grants++
				var exp *time.Time
				if rapid.Bool().Draw(t, "expires") {
					exp = tp(now.Add(time.Duration(rapid.IntRange(-10, 600).Draw(t, "ttl")) * time.Minute))
				}
				err, accepted = w.Grant(string(rune('a'+grants%26))+time.Duration(grants).String(), amount, exp, now), amount
			case models.EntryPromise:
				err, accepted = w.Promise(amount), amount
			case models.EntrySettle:
				var uses []models.GrantUse
				var fromDeposits int64
				uses, fromDeposits, err = w.Settle(amount)
				accepted = amount
				if err == nil {
					var fromGrants int64
					for _, u := range uses {
						fromGrants += u.Amount
					}
					if fromGrants+fromDeposits != amount {
						t.Fatalf("settle %d split into %d + %d", amount, fromGrants, fromDeposits)
					}
					// Grant-first: deposits pay only once no grant has credit left.
					if fromDeposits > 0 && grantRemainder() != 0 {
						t.Fatalf("settle took %d from deposits with %d of grants left", fromDeposits, grantRemainder())
					}
				}
			case models.EntryWithdraw:
				err, accepted = w.Withdraw(amount), amount
				if err == nil {
					open = append(open, amount)
				}
			case models.EntryWithdrawReturn:
				// A failed payout gives back one earlier withdrawal, once.
				if len(open) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(open)-1).Draw(t, "payout")
				accepted = open[i]
				if err = w.ReturnWithdrawal(accepted); err == nil {
					open = append(open[:i], open[i+1:]...)
				}
			case models.EntryExpire:
				if len(w.Grants) == 0 {
					continue
				}
				g := w.Grants[rapid.IntRange(0, len(w.Grants)-1).Draw(t, "grant")]
				accepted, err = w.Expire(g.Key, now)
			}
			if err != nil {
				if w.Totals != before {
					t.Fatalf("refused %s %d (%v) changed the totals", kind, amount, err)
				}
				var ve *models.ValidationError
				if !errors.As(err, &ve) && !errors.Is(err, models.ErrNotEnough) {
					t.Fatalf("%s %d: unexpected error %T %v", kind, amount, err, err)
				}
				continue
			}
			ledger = append(ledger, entry{kind, accepted})

			// Straightforward recomputation from the accepted entries.
			var sums = map[models.WalletEntryKind]int64{}
			for _, e := range ledger {
				sums[e.kind] += e.amount
			}
			funds := sums[models.EntryDeposit] + sums[models.EntryGrant] - sums[models.EntrySettle] - sums[models.EntryWithdraw] + sums[models.EntryWithdrawReturn] - sums[models.EntryExpire]
			unsettled := sums[models.EntryPromise] - sums[models.EntrySettle]
			gotFunds, ferr := w.Totals.Funds()
			gotUnsettled, uerr := w.Totals.Unsettled()
			if ferr != nil || uerr != nil || gotFunds != funds || gotUnsettled != unsettled {
				t.Fatalf("funds %d unsettled %d, recomputed %d %d", gotFunds, gotUnsettled, funds, unsettled)
			}
			if funds < 0 || funds-unsettled < 0 {
				t.Fatalf("funds %d spendable %d went negative", funds, funds-unsettled)
			}
			if w.Totals.Spendable() != funds-unsettled {
				t.Fatalf("spendable %d, recomputed %d", w.Totals.Spendable(), funds-unsettled)
			}
			if err := w.Totals.Check(); err != nil {
				t.Fatal(err)
			}
			var grantSum, used, expired int64
			for _, g := range w.Grants {
				if g.Remaining() < 0 {
					t.Fatalf("grant %s remainder %d", g.Key, g.Remaining())
				}
				grantSum, used, expired = grantSum+g.Amount, used+g.Used, expired+g.Expired
			}
			if grantSum != w.Totals.Grants || used != w.Totals.SettledFromGrants || expired != w.Totals.Expired {
				t.Fatalf("grant rows %d/%d/%d disagree with totals %+v", grantSum, used, expired, w.Totals)
			}
		}
	})
}

func TestParseWalletEntryKind(t *testing.T) {
	for _, k := range []string{"deposit", "grant", "promise", "settle", "withdraw", "expire"} {
		if got, err := models.ParseWalletEntryKind(k); err != nil || string(got) != k {
			t.Errorf("%s: %v %v", k, got, err)
		}
	}
	var ve *models.ValidationError
	if _, err := models.ParseWalletEntryKind("refund"); !errors.As(err, &ve) {
		t.Fatalf("refund: %v, want ValidationError", err)
	}
}

func TestReturnWithdrawal(t *testing.T) {
	var w models.Wallet
	mustNil(t, w.Deposit(1000))
	mustNil(t, w.Withdraw(400))
	if got := w.Totals.Spendable(); got != 600 {
		t.Fatalf("spendable after withdrawing 400 of 1000 = %d, want 600", got)
	}
	var ve *models.ValidationError
	if err := w.ReturnWithdrawal(401); !errors.As(err, &ve) {
		t.Fatalf("returning 401 of 400 withdrawn: %v, want a validation error", err)
	}
	if err := w.ReturnWithdrawal(0); !errors.As(err, &ve) {
		t.Fatalf("returning 0: %v, want a validation error", err)
	}
	mustNil(t, w.ReturnWithdrawal(400))
	if got, wd := w.Totals.Spendable(), w.Totals.Withdrawable(); got != 1000 || wd != 1000 {
		t.Fatalf("after the return: spendable %d withdrawable %d, want 1000 1000", got, wd)
	}
}
