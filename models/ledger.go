package models

import (
	"fmt"
	"slices"
	"time"
)

// ItemKind tells prorations from renewals.
type ItemKind string

// The item kinds.
const (
	KindProration ItemKind = "proration"
	KindRenewal   ItemKind = "renewal"
)

// Item is one invoice line item. Amount is signed: credits are negative.
type Item struct {
	Kind        ItemKind  `json:"kind"`
	ActivityID  string    `json:"activity_id"`
	ResourceID  string    `json:"resource_id"`
	PlanID      string    `json:"plan_id"`
	Amount      int64     `json:"amount"`
	Currency    Currency  `json:"currency"`
	CreatedAt   time.Time `json:"created_at"`
	PeriodStart time.Time `json:"period_start"`
	Description string    `json:"description"`
}

// Resource is a billable resource's state after folding its activities.
type Resource struct {
	PlanID string    `json:"plan_id"`
	Active bool      `json:"active"`
	LastAt time.Time `json:"last_at"`
}

// Ledger folds a tenant's activities into items. The zero Anchor means "not
// yet anchored": the first applied activity sets it.
type Ledger struct {
	Currency  Currency
	Schedule  Schedule
	Resources map[string]Resource
}

// NewLedger returns an empty ledger. anchor may be zero; fixed is the fixed
// period length or zero for calendar months.
func NewLedger(currency Currency, anchor time.Time, fixed time.Duration) *Ledger {
	if !anchor.IsZero() {
		anchor = BillingInstant(anchor)
	}
	return &Ledger{
		Currency:  currency,
		Schedule:  Schedule{Anchor: anchor, Fixed: fixed},
		Resources: map[string]Resource{},
	}
}

// Anchored reports whether the billing anchor is set.
func (l *Ledger) Anchored() bool { return !l.Schedule.Anchor.IsZero() }

// Apply folds one activity into the ledger and returns its item, or nil when
// the activity bills nothing (free plan, idempotent activation, inactive plan
// change). On error the ledger is unchanged.
func (l *Ledger) Apply(a Activity, catalog Catalog) (*Item, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	a.At = BillingInstant(a.At)
	field := "activity " + a.ID
	anchorSet := false
	if !l.Anchored() {
		l.Schedule.Anchor = a.At
		anchorSet = true
	}
	item, err := l.apply(a, field, catalog)
	if err != nil && anchorSet {
		l.Schedule.Anchor = time.Time{}
	}
	return item, err
}

func (l *Ledger) apply(a Activity, field string, catalog Catalog) (*Item, error) {
	if a.At.Before(l.Schedule.Anchor) {
		return nil, invalid(field, "created_at %s is before the billing anchor %s",
			a.At.Format(time.RFC3339), l.Schedule.Anchor.Format(time.RFC3339))
	}
	res, exists := l.Resources[a.ResourceID]
	if exists && a.At.Before(res.LastAt) {
		return nil, invalid(field, "created_at %s is older than the last activity %s recorded for resource %q",
			a.At.Format(time.RFC3339), res.LastAt.Format(time.RFC3339), a.ResourceID)
	}
	if !exists && a.Type != ResourceCreated {
		return nil, invalid(field, "resource %q is unknown: it must be created first", a.ResourceID)
	}
	period := l.Schedule.PeriodAt(a.At)
	item := func(plan Plan, amount int64, description string) *Item {
		if amount == 0 {
			return nil
		}
		return &Item{
			Kind: KindProration, ActivityID: a.ID, ResourceID: a.ResourceID, PlanID: plan.ID,
			Amount: amount, Currency: l.Currency, CreatedAt: a.At, PeriodStart: period.Start,
			Description: description,
		}
	}

	var out *Item
	switch a.Type {
	case ResourceCreated:
		if exists {
			return nil, invalid(field, "resource %q already exists", a.ResourceID)
		}
		plan, err := l.plan(field, a.PlanID, catalog)
		if err != nil {
			return nil, err
		}
		amount, err := prorate(field, plan, period, a.At)
		if err != nil {
			return nil, err
		}
		res = Resource{PlanID: plan.ID, Active: true}
		out = item(plan, amount,
			fmt.Sprintf("%s created on %s (prorated)", a.ResourceID, plan.Name))
	case ResourceActivated:
		if !res.Active {
			plan, err := l.plan(field, res.PlanID, catalog)
			if err != nil {
				return nil, err
			}
			amount, err := prorate(field, plan, period, a.At)
			if err != nil {
				return nil, err
			}
			res.Active = true
			out = item(plan, amount,
				fmt.Sprintf("%s reactivated on %s (prorated)", a.ResourceID, plan.Name))
		}
	case ResourceDeactivated:
		if res.Active {
			plan, err := l.plan(field, res.PlanID, catalog)
			if err != nil {
				return nil, err
			}
			amount, err := prorate(field, plan, period, a.At)
			if err != nil {
				return nil, err
			}
			res.Active = false
			out = item(plan, -amount,
				fmt.Sprintf("%s deactivated (prorated credit for %s)", a.ResourceID, plan.Name))
		}
	case ResourcePlanChanged:
		next, err := l.plan(field, a.PlanID, catalog)
		if err != nil {
			return nil, err
		}
		if res.Active && next.ID != res.PlanID {
			prev, err := l.plan(field, res.PlanID, catalog)
			if err != nil {
				return nil, err
			}
			up, err := prorate(field, next, period, a.At)
			if err != nil {
				return nil, err
			}
			down, err := prorate(field, prev, period, a.At)
			if err != nil {
				return nil, err
			}
			amount, err := SubAmount(field, up, down)
			if err != nil {
				return nil, err
			}
			out = item(next, amount,
				fmt.Sprintf("%s changed plan from %s to %s (prorated)", a.ResourceID, prev.Name, next.Name))
		}
		res.PlanID = next.ID
	}
	res.LastAt = a.At
	l.Resources[a.ResourceID] = res
	return out, nil
}

// prorate is ProrateAmount for an activity, with an overflow naming the
// activity and the plan.
func prorate(field string, plan Plan, period Period, t time.Time) (int64, error) {
	v, err := ProrateAmount(plan.Amount, period, t)
	if err != nil {
		return 0, invalid(field, "plan %q amount %d: %s", plan.ID, plan.Amount, err.(*ValidationError).Reason)
	}
	return v, nil
}

// plan looks a plan up and checks its currency against the tenant's. An
// unset ledger currency takes the first plan's (the offline preview has no
// tenant record to carry one).
func (l *Ledger) plan(field, id string, catalog Catalog) (Plan, error) {
	p, ok := catalog[id]
	if !ok {
		return Plan{}, invalid(field, "plan %q is not in the catalog", id)
	}
	if l.Currency == "" {
		l.Currency = p.Currency
	}
	if p.Currency != l.Currency {
		return Plan{}, invalid(field, "plan %q is priced in %s but the tenant is billed in %s", id, p.Currency, l.Currency)
	}
	return p, nil
}

// Renewals returns one full-price item per resource active on a paid plan in
// the ledger's current state, for the period starting at boundary. Items are
// ordered by resource id so callers see a stable order.
func (l *Ledger) Renewals(boundary time.Time, catalog Catalog) ([]Item, error) {
	ids := make([]string, 0, len(l.Resources))
	for id := range l.Resources {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var items []Item
	for _, id := range ids {
		res := l.Resources[id]
		if !res.Active {
			continue
		}
		plan, err := l.plan("resource "+id, res.PlanID, catalog)
		if err != nil {
			return nil, err
		}
		if plan.Amount == 0 {
			continue
		}
		items = append(items, Item{
			Kind: KindRenewal, ResourceID: id, PlanID: plan.ID, Amount: plan.Amount,
			Currency: l.Currency, CreatedAt: boundary, PeriodStart: boundary,
			Description: fmt.Sprintf("%s renewal on %s", id, plan.Name),
		})
	}
	return items, nil
}
