package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// GraceWindowInput is what a client starts a GraceWindow workflow with. The
// workflow's own input (workflows.GraceWindowInput) is a superset; this
// decodes into it unchanged.
type GraceWindowInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	// Window defaults to the workflow's default; a failed grace bans the
	// tenant from grace for BanFactor windows.
	Window    time.Duration `json:"window,omitempty"`
	BanFactor int           `json:"ban_factor,omitempty"`
}

// CollectionFailed is the collection-failed signal's payload.
type CollectionFailed struct {
	InvoiceID string `json:"invoice_id"`
	Reason    string `json:"reason,omitempty"`
}

// CollectionFailedInput starts or feeds a tenant's grace window.
type CollectionFailedInput struct {
	TenantID    models.TenantID `json:"tenant_id"`
	InvoiceID   string          `json:"invoice_id"`
	Reason      string          `json:"reason,omitempty"`
	GraceWindow time.Duration   `json:"grace_window"`
	BanFactor   int             `json:"ban_factor"`
}
