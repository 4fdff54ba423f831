package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// PaymentMethods is how a tenant pays automatically. SealedNWC is opaque
// here: only the activity that pays opens it.
type PaymentMethods struct {
	TenantID         models.TenantID `json:"tenant_id"`
	SealedNWC        string          `json:"-"`
	NWCWalletPubkey  string          `json:"nwc_wallet_pubkey,omitempty"`
	NWCLastError     string          `json:"nwc_last_error,omitempty"`
	NWCErrorAt       *time.Time      `json:"nwc_error_at,omitempty"`
	StripeCustomerID string          `json:"stripe_customer_id,omitempty"`
}

// HasNWC reports whether an NWC connection is stored.
func (p PaymentMethods) HasNWC() bool { return p.SealedNWC != "" }

// GetPaymentMethods reads a tenant's payment methods.
func (s *Store) GetPaymentMethods(ctx context.Context, id models.TenantID) (PaymentMethods, error) {
	p := PaymentMethods{TenantID: id}
	var sealed, pub, lastErr, cus *string
	err := s.pool.QueryRow(ctx, `SELECT nwc_connection_sealed, nwc_wallet_pubkey, nwc_last_error, nwc_error_at, stripe_customer_id
		FROM tenants WHERE id = $1`, id).Scan(&sealed, &pub, &lastErr, &p.NWCErrorAt, &cus)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, err
	}
	p.SealedNWC, p.NWCWalletPubkey, p.NWCLastError, p.StripeCustomerID = deref(sealed), deref(pub), deref(lastErr), deref(cus)
	return p, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SetNWCConnection stores a sealed NWC connection (or clears it when sealed
// is empty) and forgets the last NWC error, since it was about the old one.
func (s *Store) SetNWCConnection(ctx context.Context, id models.TenantID, sealed, walletPubkey string) error {
	if (sealed == "") != (walletPubkey == "") {
		return &models.ValidationError{Field: "nwc", Reason: "a connection needs both its sealed form and the wallet's public key"}
	}
	if sealed != "" && !strings.HasPrefix(sealed, "v1:") {
		return &models.ValidationError{Field: "nwc", Reason: "refusing to store an NWC connection that is not sealed"}
	}
	return s.updateTenant(ctx, id, `UPDATE tenants SET nwc_connection_sealed = NULLIF($2, ''), nwc_wallet_pubkey = NULLIF($3, ''),
		nwc_last_error = NULL, nwc_error_at = NULL WHERE id = $1`, sealed, walletPubkey)
}

// SetNWCError records why the last NWC payment failed (empty clears it). The
// caller passes a summary that holds no secret.
func (s *Store) SetNWCError(ctx context.Context, id models.TenantID, summary string, at time.Time) error {
	if summary == "" {
		return s.updateTenant(ctx, id, `UPDATE tenants SET nwc_last_error = NULL, nwc_error_at = NULL WHERE id = $1`)
	}
	return s.updateTenant(ctx, id, `UPDATE tenants SET nwc_last_error = $2, nwc_error_at = $3 WHERE id = $1`, summary, at.UTC())
}

// SetStripeCustomer stores (or clears, when empty) the tenant's Stripe customer.
func (s *Store) SetStripeCustomer(ctx context.Context, id models.TenantID, customerID string) error {
	if customerID != "" && !strings.HasPrefix(customerID, "cus_") {
		return &models.ValidationError{Field: "stripe_customer", Reason: fmt.Sprintf("%q is not a Stripe customer id (cus_...)", customerID)}
	}
	return s.updateTenant(ctx, id, `UPDATE tenants SET stripe_customer_id = NULLIF($2, '') WHERE id = $1`, customerID)
}

func (s *Store) updateTenant(ctx context.Context, id models.TenantID, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, append([]any{id}, args...)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return &models.ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s does not exist", id)}
	}
	return nil
}
