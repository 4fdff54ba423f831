package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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
		if verr := instantError(data, err); verr != nil {
			return PreviewInput{}, verr
		}
		return PreviewInput{}, &ValidationError{Field: "input", Reason: fmt.Sprintf("not a valid preview file: %v", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return PreviewInput{}, &ValidationError{Field: "input", Reason: "not a valid preview file: data after the JSON object"}
	}
	return in, nil
}

// instantError names the instant a preview file failed to decode on:
// encoding/json passes a time.Time's parse error through without saying which
// field or activity it came from. It returns nil when err is not such an error.
func instantError(data []byte, err error) *ValidationError {
	var raw struct {
		BillingAnchor json.RawMessage `json:"billing_anchor"`
		Activities    []struct {
			ID        any             `json:"id"`
			CreatedAt json.RawMessage `json:"created_at"`
		} `json:"activities"`
	}
	_ = json.Unmarshal(data, &raw) // best effort: whatever decodes is enough to locate it
	failed := func(b json.RawMessage) bool {
		var t time.Time
		e := json.Unmarshal(b, &t)
		return len(b) > 0 && e != nil && e.Error() == err.Error()
	}
	if failed(raw.BillingAnchor) {
		return invalid("billing_anchor", "is not an RFC 3339 instant: %v", err)
	}
	for i, a := range raw.Activities {
		if failed(a.CreatedAt) {
			field := fmt.Sprintf("activities[%d]", i)
			if id, ok := a.ID.(string); ok && strings.TrimSpace(id) != "" {
				field = "activity " + id
			}
			return invalid(field, "created_at is not an RFC 3339 instant: %v", err)
		}
	}
	return nil
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
	total, err := SumItems(items)
	if err != nil {
		return PreviewResult{}, err
	}
	out := PreviewResult{At: at, Currency: ledger.Currency, Items: make([]PreviewItem, 0, len(items)), Total: total}
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
