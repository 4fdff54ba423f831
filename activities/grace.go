package activities

import (
	"context"
	"time"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// GraceInput is one grace transition for a tenant at the workflow's instant.
type GraceInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	At       time.Time       `json:"at"`
	// Window is the grace window length (EnterGrace).
	Window time.Duration `json:"window,omitempty"`
	// BanFor is how long a failed grace bans the tenant from grace (ExpireGrace).
	BanFor time.Duration `json:"ban_for,omitempty"`
}

// GraceResult is the tenant's standing after a transition.
type GraceResult struct {
	Status         string       `json:"status"`
	GraceExpiresAt *time.Time   `json:"grace_expires_at,omitempty"`
	BannedUntil    *time.Time   `json:"banned_until,omitempty"`
	Unpaid         []InvoiceRef `json:"unpaid"`
	Changed        bool         `json:"changed"`
}

func graceResult(g store.GraceState) GraceResult {
	out := GraceResult{Status: g.Status, GraceExpiresAt: g.GraceExpiresAt, BannedUntil: g.BannedUntil, Changed: g.Changed}
	for _, inv := range g.Unpaid {
		out.Unpaid = append(out.Unpaid, invoiceRef(inv))
	}
	return out
}

// EnterGrace starts a grace window after a failed collection, or suspends a
// tenant banned from grace.
func (a *Activities) EnterGrace(ctx context.Context, in GraceInput) (GraceResult, error) {
	g, err := a.Store.EnterGrace(ctx, in.TenantID, in.At, in.Window)
	return a.graceOutcome(ctx, g, err)
}

// ExpireGrace suspends and bans a tenant whose grace window ran out unpaid.
func (a *Activities) ExpireGrace(ctx context.Context, in GraceInput) (GraceResult, error) {
	g, err := a.Store.ExpireGrace(ctx, in.TenantID, in.At, in.BanFor)
	return a.graceOutcome(ctx, g, err)
}

// RestoreIfSettled restores the tenant once nothing is unpaid.
func (a *Activities) RestoreIfSettled(ctx context.Context, in GraceInput) (GraceResult, error) {
	g, err := a.Store.RestoreIfSettled(ctx, in.TenantID, in.At)
	return a.graceOutcome(ctx, g, err)
}

func (a *Activities) graceOutcome(ctx context.Context, g store.GraceState, err error) (GraceResult, error) {
	if err != nil {
		return GraceResult{}, classify(err)
	}
	if g.Changed {
		a.nudge(ctx)
	}
	return graceResult(g), nil
}
