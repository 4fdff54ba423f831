package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/config"
)

// The hosted pages need a browsable base URL and the secret key their
// tokens derive from, in every program that mints or serves links.
func TestPublicURLNeedsSecretKeyAndAURL(t *testing.T) {
	key := "BILLFLOW_SECRET_KEY=" + "ab" + "cd0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
	base := []string{"DATABASE_URL=postgres://x/y", "BILLFLOW_API_TOKEN=t"}

	_, err := config.LoadAPI(append(base, "BILLFLOW_PUBLIC_URL=https://billing.example"))
	require.ErrorContains(t, err, "BILLFLOW_PUBLIC_URL is set but BILLFLOW_SECRET_KEY is not")
	_, err = config.LoadAPI(append(base, "BILLFLOW_PUBLIC_URL=billing.example", key))
	require.ErrorContains(t, err, `BILLFLOW_PUBLIC_URL="billing.example" is not an http(s) URL`)
	c, err := config.LoadAPI(append(base, "BILLFLOW_PUBLIC_URL=https://billing.example", key))
	require.NoError(t, err)
	require.Equal(t, "https://billing.example", c.PublicURL)

	_, err = config.LoadWorker([]string{"DATABASE_URL=postgres://x/y", "BILLFLOW_PUBLIC_URL=https://billing.example"})
	require.ErrorContains(t, err, "BILLFLOW_PUBLIC_URL is set but BILLFLOW_SECRET_KEY is not")
	_, err = config.LoadStarter([]string{"BILLFLOW_PUBLIC_URL=ftp://billing.example", key})
	require.ErrorContains(t, err, "BILLFLOW_PUBLIC_URL")
	_, err = config.LoadAPI(append(base, "BILLFLOW_STRIPE_API_URL=http://127.0.0.1:1"))
	require.ErrorContains(t, err, "BILLFLOW_STRIPE_API_URL is set but BILLFLOW_STRIPE_API_KEY is not")
}
