//go:build integration

package vault_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/vault"
)

func testConnection(t *testing.T) (url, secretHex, walletPub string) {
	t.Helper()
	walletPub, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	secretHex = nostr.GeneratePrivateKey()
	conn, err := nwc.NewConnection(walletPub, []string{"wss://relay.example.com"}, secretHex, "")
	require.NoError(t, err)
	return conn.SecretURL(), secretHex, walletPub
}

func TestNWCSealedAtRestAndBoundToTenant(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	v := vault.New(box, st)
	a, b := testkit.NewTenantID(t), testkit.NewTenantID(t)
	for _, id := range []models.TenantID{a, b} {
		_, _, err := st.EnsureTenant(ctx, id, "usd", 0)
		require.NoError(t, err)
	}
	url, secretHex, walletPub := testConnection(t)

	got, err := v.SetNWC(ctx, a, url)
	require.NoError(t, err)
	require.Equal(t, walletPub, got)
	var raw string
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT nwc_connection_sealed FROM tenants WHERE id=$1`, a).Scan(&raw))
	require.NotContains(t, raw, secretHex, "the database holds only the sealed form")
	require.NotContains(t, raw, "walletconnect")

	conn, err := v.NWC(ctx, a)
	require.NoError(t, err)
	require.Equal(t, url, conn.SecretURL())
	require.NotContains(t, conn.String(), secretHex)

	// A sealed value copied onto another tenant's row does not open.
	_, err = st.Pool().Exec(ctx, `UPDATE tenants SET nwc_connection_sealed=$2, nwc_wallet_pubkey=$3 WHERE id=$1`, b, raw, walletPub)
	require.NoError(t, err)
	_, err = v.NWC(ctx, b)
	require.ErrorIs(t, err, secret.ErrOpen)
	// Nor under another key.
	other, _ := secret.NewBox(make([]byte, secret.KeySize))
	_, err = vault.New(other, st).NWC(ctx, a)
	require.ErrorIs(t, err, secret.ErrOpen)

	// A malformed URL is refused without echoing it, and nothing changes.
	bad := strings.Replace(url, "secret=", "secret=zz", 1)
	_, err = v.SetNWC(ctx, a, bad)
	var ve *models.ValidationError
	require.True(t, errors.As(err, &ve))
	require.NotContains(t, err.Error(), secretHex)
	still, err := v.NWC(ctx, a)
	require.NoError(t, err)
	require.Equal(t, url, still.SecretURL())

	// An unsealed value never reaches the table.
	require.Error(t, st.SetNWCConnection(ctx, a, url, walletPub))
	require.NoError(t, v.ClearNWC(ctx, a))
	_, err = v.NWC(ctx, a)
	require.ErrorIs(t, err, vault.ErrNoNWC)

	require.NoError(t, st.SetStripeCustomer(ctx, a, "cus_123"))
	require.Error(t, st.SetStripeCustomer(ctx, a, "pm_card_visa"))
	require.NoError(t, st.SetNWCError(ctx, a, "INSUFFICIENT_BALANCE: wallet is empty", time.Now()))
	pm, err := st.GetPaymentMethods(ctx, a)
	require.NoError(t, err)
	require.Equal(t, "cus_123", pm.StripeCustomerID)
	require.Equal(t, "INSUFFICIENT_BALANCE: wallet is empty", pm.NWCLastError)
}
