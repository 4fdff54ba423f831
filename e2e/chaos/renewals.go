package main

import (
	"sort"
	"time"
)

// renewalKey is one expected renewal: a resource at a boundary.
type renewalKey struct {
	Tenant, Resource string
	Boundary         time.Time
}

// expectedRenewals derives, from an activity log alone (the driver's, not
// the engine's code), the renewals the design promises: at each boundary
// S_k = A + k*period (k >= 1, A the tenant's first activity) up to and
// including until, one per resource active on a paid plan as of S_k,
// folding the activities with instant < S_k in instant order. prices maps
// plan ids to their price; a plan missing from it is taken as paid. A
// suspended tenant is not billed: no boundary at or after its suspension
// (suspended, by tenant) is renewed.
func expectedRenewals(log []activity, period time.Duration, until time.Time, prices map[string]int64, suspended map[string]time.Time) map[renewalKey]bool {
	byTenant := map[string][]activity{}
	for _, a := range log {
		byTenant[a.Tenant] = append(byTenant[a.Tenant], a)
	}
	out := map[renewalKey]bool{}
	for tenantID, acts := range byTenant {
		sort.SliceStable(acts, func(i, j int) bool { return acts[i].At.Before(acts[j].At) })
		anchor := acts[0].At
		plan, active := map[string]string{}, map[string]bool{}
		next := 0
		for k := 1; ; k++ {
			boundary := anchor.Add(time.Duration(k) * period)
			if boundary.After(until) {
				break
			}
			if at, ok := suspended[tenantID]; ok && !boundary.Before(at) {
				break
			}
			for ; next < len(acts) && acts[next].At.Before(boundary); next++ {
				a := acts[next]
				switch a.Type {
				case "resource_created":
					plan[a.Resource], active[a.Resource] = a.Plan, true
				case "resource_activated":
					active[a.Resource] = true
				case "resource_deactivated":
					active[a.Resource] = false
				case "resource_plan_changed":
					plan[a.Resource] = a.Plan
				}
			}
			for res, on := range active {
				if price, known := prices[plan[res]]; on && (!known || price > 0) {
					out[renewalKey{Tenant: tenantID, Resource: res, Boundary: boundary}] = true
				}
			}
		}
	}
	return out
}

func sortStrings(s []string) { sort.Strings(s) }
