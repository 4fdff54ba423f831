package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// exitNotFound is the exit code of every command given a tenant that does
// not exist, whether the command reads the database or asks the tenant's
// workflow: scripts test for it (scripts/seed-demo.sh creates the tenant).
const exitNotFound = 3

// tenantNotFoundError is the one way every command reports a tenant that
// does not exist.
type tenantNotFoundError struct{ id string }

func (e *tenantNotFoundError) Error() string {
	return fmt.Sprintf("tenant %s not found (create it with: starter tenant create --tenant %s)", e.id, e.id)
}

// Unwrap makes it billing.ErrTenantNotFound to errors.Is.
func (e *tenantNotFoundError) Unwrap() error { return billing.ErrTenantNotFound }

// tenantNotFound names the tenant, normalised to hex when it parses.
func tenantNotFound(tenant string) error {
	if id, err := models.ParseTenantID(tenant); err == nil {
		tenant = string(id)
	}
	return &tenantNotFoundError{id: tenant}
}

// asTenantNotFound turns billing's "no workflow for this tenant" into the
// command's one not-found error; other errors pass through.
func asTenantNotFound(tenant string, err error) error {
	var nf *tenantNotFoundError
	if errors.Is(err, billing.ErrTenantNotFound) && !errors.As(err, &nf) {
		return tenantNotFound(tenant)
	}
	return err
}

// requireTenant checks the tenant has a row, for the commands that read or
// change the database directly: without it they would answer with an empty
// list, a bare "not found" or a validation error, each differently.
func requireTenant(ctx context.Context, st *store.Store, id models.TenantID) error {
	_, err := st.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return tenantNotFound(string(id))
	}
	return err
}
