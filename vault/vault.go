// Package vault keeps tenants' payment secrets: an NWC connection URL is
// validated, sealed with AES-256-GCM bound to its tenant, and stored; only
// the activity that pays opens it. Nothing here logs or returns a secret.
package vault

import (
	"context"
	"errors"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
)

// ErrNoNWC means the tenant has no NWC connection.
var ErrNoNWC = errors.New("vault: tenant has no NWC connection")

// Vault seals and opens tenants' NWC connections.
type Vault struct {
	box   *secret.Box
	store *store.Store
}

// New returns a Vault using the given sealing box and store.
func New(box *secret.Box, st *store.Store) *Vault { return &Vault{box: box, store: st} }

// associated binds a sealed connection to its tenant and purpose.
func associated(id models.TenantID) []byte { return []byte("nwc/" + string(id)) }

// SetNWC validates an NWC connection URL and stores it sealed, returning the
// wallet's public key. A malformed URL is a *models.ValidationError whose
// text never includes the URL or its secret.
func (v *Vault) SetNWC(ctx context.Context, id models.TenantID, url string) (walletPubkey string, err error) {
	conn, err := nwc.ParseURL(url)
	if err != nil {
		return "", &models.ValidationError{Field: "nwc_url", Reason: err.Error()}
	}
	sealed, err := v.box.Seal([]byte(conn.SecretURL()), associated(id))
	if err != nil {
		return "", err
	}
	if err := v.store.SetNWCConnection(ctx, id, sealed, conn.WalletPubKey); err != nil {
		return "", err
	}
	return conn.WalletPubKey, nil
}

// ClearNWC removes the tenant's NWC connection.
func (v *Vault) ClearNWC(ctx context.Context, id models.TenantID) error {
	return v.store.SetNWCConnection(ctx, id, "", "")
}

// NWC opens the tenant's NWC connection, for the activity that pays.
func (v *Vault) NWC(ctx context.Context, id models.TenantID) (nwc.Connection, error) {
	pm, err := v.store.GetPaymentMethods(ctx, id)
	if err != nil {
		return nwc.Connection{}, err
	}
	if !pm.HasNWC() {
		return nwc.Connection{}, ErrNoNWC
	}
	plain, err := v.box.Open(pm.SealedNWC, associated(id))
	if err != nil {
		return nwc.Connection{}, err
	}
	return nwc.ParseURL(string(plain))
}
