package config_test

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/config"
)

// notInDev are the settings the dev stack leaves at their defaults or off on
// purpose: the default ban from grace, NWC on because the node is
// configured. (Outbound events go to the sandbox metered client.)
var notInDev = map[string]bool{
	"BILLFLOW_BAN_FACTOR": true, "BILLFLOW_NWC_ENABLED": true,
}

// TestDevEnvFileExportsEverySetting runs the dev stack's env writer
// (scripts/stack.sh, shared by dev.sh and cluster.sh) with
// stand-in values and checks that .data/env exports every variable the
// worker and the api read (the Stripe webhook secret included), that it is a
// valid configuration for both, and that it names no secret: secrets are
// read from their files when it is sourced.
func TestDevEnvFileExportsEverySetting(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dev, err := filepath.Abs("../scripts/stack.sh")
	require.NoError(t, err)
	script, err := os.ReadFile(dev)
	require.NoError(t, err)
	// The worker and the api are started from the file, so what it exports
	// is what they run with.
	assert.Contains(t, string(script), "source \"$ENV_FILE\"\n    BILLFLOW_WORKER_HTTP_ADDR=127.0.0.1:$http_port exec setsid \"$BIN_DIR/worker\"")
	assert.Contains(t, string(script), `bash -c 'source "$1" && exec "$2"' api "$ENV_FILE" "$BIN_DIR/api"`)

	data := t.TempDir()
	secrets := map[string]string{
		"secret.key":         strings.Repeat("5e", 32),
		"stripe-api.key":     "stripeapisecret",
		"stripe-webhook.key": "webhooksecret",
		"robot.key":          strings.Repeat("7f", 32),
		"api.token":          "apitokensecret",
		"webhook.key":        "outboundhooksecret",
	}
	for name, v := range secrets {
		require.NoError(t, os.WriteFile(filepath.Join(data, name), []byte(v), 0o600))
	}
	for _, dir := range []string{"lnnode", "nwcwallet", "meterclient"} {
		require.NoError(t, os.MkdirAll(filepath.Join(data, dir), 0o700))
	}
	require.NoError(t, os.WriteFile(filepath.Join(data, "lnnode", "lnnode.env"), []byte("LNNODE_GRPC_ADDR=127.0.0.1:1\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(data, "nwcwallet", "nwcwallet.env"), []byte("NWC_WALLET_PUBKEY=ab\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(data, "meterclient", "meterclient.env"), []byte("METERCLIENT_PUBKEY=cd\n"), 0o600))
	out := filepath.Join(data, "env")

	harness := `set -euo pipefail
eval "$(sed -n '/^write_env() {$/,/^}$/p' "$1")"
declare -f write_env >/dev/null || { echo "no write_env in stack.sh" >&2; exit 1; }
declare -A LNNODE=([LNNODE_GRPC_ADDR]=127.0.0.1:10009 [LNNODE_TLS_CERT]=/d/tls.cert [LNNODE_MACAROON]=/d/invoice.macaroon
  [LNNODE_PAYOUT_MACAROON]=/d/payout.macaroon [LNNODE_NETWORK]=regtest [LNNODE_PUBKEY]=02` + strings.Repeat("ab", 32) + `)
DATA=$2 DATABASE_URL=postgres://billflow@127.0.0.1:5432/billflow TEMPORAL_ADDRESS=127.0.0.1:7233 TEMPORAL_NAMESPACE=default
TEMPORAL_UI_URL=http://127.0.0.1:8233 BILLFLOW_PLANS=/repo/config/plans.json BILLFLOW_SERVICES=/repo/config/services.json BILLFLOW_POOL=/repo/config/pool.json TASK_QUEUE=billflow
API_PORT=8090 WORKER_HTTP_PORT=9464 RELAY_PORT=7000 STRIPE_PORT=12111 METER_PORT=7480
BILLFLOW_RATES=usd=2000000 BILLFLOW_APP_URL=http://localhost:3000 BILLFLOW_GRACE_WINDOW=3m BILLFLOW_DUNNING=1m,2m,4m
BILLFLOW_RECONCILE=30s,1m,2m BILLFLOW_RECONCILE_EVERY=5m BILLFLOW_NWC_TIMEOUT=15s
write_env "$3"
env -i PATH="$PATH" bash -c 'source "$1" && env' sourced "$3"
`
	cmd := exec.Command("bash", "-c", harness, "harness", dev, data, out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, stderr.String())

	written, err := os.ReadFile(out)
	require.NoError(t, err)
	for name, v := range secrets {
		assert.NotContains(t, string(written), v, "the env file reads %s, it does not copy it", name)
	}
	info, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	environ := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	assert.Equal(t, "whsec_webhooksecret", vars["BILLFLOW_STRIPE_WEBHOOK_SECRET"])
	assert.Equal(t, "127.0.0.1:9464", vars["BILLFLOW_WORKER_HTTP_ADDR"])
	assert.Equal(t, "http://127.0.0.1:7480/", vars["BILLFLOW_WEBHOOK_URL"], "outbound events go to the sandbox metered client")
	assert.Equal(t, "outboundhooksecret", vars["BILLFLOW_WEBHOOK_SECRET"])

	w, err := config.LoadWorker(environ)
	require.NoError(t, err, "the dev env is a valid worker configuration")
	a, err := config.LoadAPI(environ)
	require.NoError(t, err, "the dev env is a valid api configuration")
	for _, attrs := range [][]string{names(config.Effective(w)), names(config.Effective(a))} {
		for _, name := range attrs {
			if notInDev[name] {
				continue
			}
			assert.NotEmpty(t, vars[name], "%s is exported by .data/env", name)
		}
	}
	assert.True(t, w.NWCOn() && w.LightningOn())
	assert.True(t, w.PayoutsOn(), "the dev worker pays out withdrawals over the sandbox node")
	assert.Equal(t, "/d/payout.macaroon", vars["BILLFLOW_LND_PAYOUT_MACAROON"])
}

func names(attrs []slog.Attr) []string {
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = a.Key
	}
	return out
}
