package models

import (
	"strings"
	"time"
)

// ActivityType is one of the four billable things that can happen to a resource.
type ActivityType string

// The activity types.
const (
	ResourceCreated     ActivityType = "resource_created"
	ResourceActivated   ActivityType = "resource_activated"
	ResourceDeactivated ActivityType = "resource_deactivated"
	ResourcePlanChanged ActivityType = "resource_plan_changed"
)

// ActivityTypes lists the valid types in a stable order.
var ActivityTypes = []ActivityType{ResourceCreated, ResourceActivated, ResourceDeactivated, ResourcePlanChanged}

// Activity is one event in a tenant's activity log.
type Activity struct {
	ID         string       `json:"id"`
	Type       ActivityType `json:"type"`
	ResourceID string       `json:"resource_id"`
	// PlanID is required for resource_created and resource_plan_changed and
	// must be empty otherwise.
	PlanID string    `json:"plan_id,omitempty"`
	At     time.Time `json:"created_at"`
}

// maxIDLen bounds caller-chosen identifiers so they stay readable keys.
const maxIDLen = 128

// Validate checks the activity on its own, without any tenant state.
func (a Activity) Validate() error {
	field := "activity"
	if a.ID != "" {
		field = "activity " + a.ID
	}
	switch {
	case strings.TrimSpace(a.ID) == "":
		return invalid(field, "id must not be empty")
	case len(a.ID) > maxIDLen:
		return invalid(field, "id is longer than %d characters", maxIDLen)
	case strings.TrimSpace(a.ResourceID) == "":
		return invalid(field, "resource_id must not be empty")
	case len(a.ResourceID) > maxIDLen:
		return invalid(field, "resource_id is longer than %d characters", maxIDLen)
	case a.At.IsZero():
		return invalid(field, "created_at must be set")
	}
	switch a.Type {
	case ResourceCreated, ResourcePlanChanged:
		if strings.TrimSpace(a.PlanID) == "" {
			return invalid(field, "plan_id is required for %s", a.Type)
		}
	case ResourceActivated, ResourceDeactivated:
		if a.PlanID != "" {
			return invalid(field, "plan_id must be empty for %s", a.Type)
		}
	default:
		return invalid(field, "type %q is not one of resource_created, resource_activated, resource_deactivated, resource_plan_changed", a.Type)
	}
	return nil
}
