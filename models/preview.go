package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// PreviewInput is the offline preview's input file.
type PreviewInput struct {
	BillingAnchor *time.Time        `json:"billing_anchor,omitempty"`
	Plans         []Plan            `json:"plans"`
	Activities    []PreviewActivity `json:"activities"`
}

// PreviewActivity is an activity as written in a preview file.
type PreviewActivity struct {
	ID         string       `json:"id"`
	Type       ActivityType `json:"type"`
	ResourceID string       `json:"resource_id"`
	PlanID     string       `json:"plan_id,omitempty"`
	CreatedAt  time.Time    `json:"created_at"`
}

// PreviewItem is one item in the preview output.
type PreviewItem struct {
	Kind        ItemKind  `json:"kind"`
	ActivityID  string    `json:"activity_id"`
	ResourceID  string    `json:"resource_id"`
	PlanID      string    `json:"plan_id"`
	Amount      int64     `json:"amount"`
	CreatedAt   time.Time `json:"created_at"`
	PeriodStart time.Time `json:"period_start"`
	Description string    `json:"description"`
}

// PreviewResult is the offline preview's output.
type PreviewResult struct {
	BillingAnchor *time.Time    `json:"billing_anchor"`
	At            time.Time     `json:"at"`
	PeriodStart   *time.Time    `json:"period_start"`
	PeriodEnd     *time.Time    `json:"period_end"`
	Currency      Currency      `json:"currency,omitempty"`
	Items         []PreviewItem `json:"items"`
	Total         int64         `json:"total"`
}

// ParsePreviewInput decodes a preview file strictly: unknown fields are errors,
// so a misspelt key is reported rather than silently ignored.
func ParsePreviewInput(data []byte) (PreviewInput, error) {
	var in PreviewInput
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return PreviewInput{}, &ValidationError{Field: "input", Reason: fmt.Sprintf("not a valid preview file: %v", err)}
	}
	return in, nil
}

// Preview returns the items the engine would bill for the input's activity
// log up to instant at, with calendar-month periods. It runs the same fold
// the workflows run.
func Preview(in PreviewInput, at time.Time) (PreviewResult, error) {
	at = BillingInstant(at)
	catalog, err := NewCatalog(in.Plans)
	if err != nil {
		return PreviewResult{}, err
	}
	var anchor time.Time
	if in.BillingAnchor != nil {
		anchor = *in.BillingAnchor
	}
	ledger := NewLedger("", anchor, 0)
	acts := make([]Activity, len(in.Activities))
	seen := make(map[string]bool, len(in.Activities))
	for i, a := range in.Activities {
		if seen[a.ID] && a.ID != "" {
			return PreviewResult{}, invalid("activity "+a.ID, "id appears more than once")
		}
		seen[a.ID] = true
		acts[i] = Activity{ID: a.ID, Type: a.Type, ResourceID: a.ResourceID, PlanID: a.PlanID, At: a.CreatedAt}
		if err := acts[i].Validate(); err != nil {
			return PreviewResult{}, err
		}
	}
	items, err := Timeline(ledger, acts, catalog, at)
	if err != nil {
		return PreviewResult{}, err
	}
	out := PreviewResult{At: at, Currency: ledger.Currency, Items: make([]PreviewItem, 0, len(items)), Total: Total(items)}
	if ledger.Anchored() {
		a := ledger.Schedule.Anchor
		out.BillingAnchor = &a
		if !at.Before(a) {
			p := ledger.Schedule.PeriodAt(at)
			out.PeriodStart, out.PeriodEnd = &p.Start, &p.End
		}
	}
	for _, it := range items {
		out.Items = append(out.Items, PreviewItem{
			Kind: it.Kind, ActivityID: it.ActivityID, ResourceID: it.ResourceID, PlanID: it.PlanID,
			Amount: it.Amount, CreatedAt: it.CreatedAt, PeriodStart: it.PeriodStart, Description: it.Description,
		})
	}
	return out, nil
}
