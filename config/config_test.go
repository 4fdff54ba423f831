package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/workflows"
)

const (
	secretKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	pubkey    = "02aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"
)

// lnd is a complete, consistent Lightning + NWC configuration.
var lnd = []string{
	"BILLFLOW_SECRET_KEY=" + secretKey,
	"BILLFLOW_LND_ADDR=127.0.0.1:10009", "BILLFLOW_LND_TLS_CERT=/tls.cert", "BILLFLOW_LND_MACAROON=/invoice.macaroon",
	"BILLFLOW_LND_NETWORK=regtest", "BILLFLOW_LND_PUBKEY=" + pubkey, "BILLFLOW_RATES=usd=2000000",
}

func with(base []string, extra ...string) []string {
	return append(append([]string{"DATABASE_URL=postgres://u:pw@db/billflow"}, base...), extra...)
}

// without drops the variables named from env.
func without(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func TestWorkerDefaultsMatchTheEngine(t *testing.T) {
	c, err := config.LoadWorker(with(nil))
	require.NoError(t, err)
	def := activities.DefaultPaymentPolicy()
	assert.Equal(t, def.Dunning, []time.Duration(c.Dunning))
	assert.Equal(t, def.Reconcile, []time.Duration(c.Reconcile))
	assert.Equal(t, def.ReconcileEvery, c.ReconcileEvery)
	assert.Equal(t, def.GraceWindow, c.GraceWindow)
	assert.Equal(t, def.BanFactor, c.BanFactor)
	assert.Equal(t, workflows.DefaultTaskQueue, c.TaskQueue)
	assert.Equal(t, config.DefaultTaskQueue, workflows.DefaultTaskQueue)
	assert.Equal(t, "config/plans.json", c.Plans)
	assert.Equal(t, "http://localhost:3000", c.AppURL)
	assert.Equal(t, 60*time.Second, c.NWCTimeout)
	assert.Empty(t, c.HTTPAddr, "metrics listener off unless configured")
	assert.False(t, c.NWCOn())
	assert.False(t, c.LightningOn())

	// Empty values keep the defaults, as before (docker compose passes "").
	c, err = config.LoadWorker(with(nil, "BILLFLOW_APP_URL=", "BILLFLOW_DUNNING=", "BILLFLOW_NWC_ENABLED=", "BILLFLOW_BAN_FACTOR=", "BILLFLOW_NWC_TIMEOUT="))
	require.NoError(t, err)
	assert.Nil(t, c.NWC)
	assert.Equal(t, 50, c.BanFactor)
	assert.Equal(t, 60*time.Second, c.NWCTimeout)
	assert.Equal(t, "http://localhost:3000", c.AppURL)
	assert.Equal(t, def.Dunning, []time.Duration(c.Dunning))
}

func TestWorkerParsesEverySetting(t *testing.T) {
	c, err := config.LoadWorker(with(lnd,
		"BILLFLOW_TASK_QUEUE=q1", "BILLFLOW_PLANS=/p.json", "BILLFLOW_WEBHOOK_URL=https://app/hook", "BILLFLOW_WEBHOOK_SECRET=s",
		"BILLFLOW_WORKER_HTTP_ADDR=127.0.0.1:9464", "BILLFLOW_STRIPE_API_KEY=sk_test_x", "BILLFLOW_STRIPE_API_URL=http://127.0.0.1:1",
		"BILLFLOW_ROBOT_KEY=abc", "BILLFLOW_NOSTR_RELAYS=ws://a, ws://b,", "BILLFLOW_NWC_TIMEOUT=15s",
		"BILLFLOW_DUNNING=1m,2m,4m", "BILLFLOW_RECONCILE=30s, 1m", "BILLFLOW_RECONCILE_EVERY=5m", "BILLFLOW_GRACE_WINDOW=3m", "BILLFLOW_BAN_FACTOR=2"))
	require.NoError(t, err)
	assert.Equal(t, "q1", c.TaskQueue)
	assert.Equal(t, config.List{"ws://a", "ws://b"}, c.NostrRelays)
	assert.Equal(t, config.Durations{time.Minute, 2 * time.Minute, 4 * time.Minute}, c.Dunning)
	assert.Equal(t, config.Durations{30 * time.Second, time.Minute}, c.Reconcile)
	assert.Equal(t, 3*time.Minute, c.GraceWindow)
	assert.Equal(t, 2, c.BanFactor)
	assert.Equal(t, 15*time.Second, c.NWCTimeout)
	assert.True(t, c.NWCOn())
	assert.True(t, c.LightningOn())
}

// TestWorkerValidationNamesTheVariables: every inconsistent or malformed
// setting stops the worker with a message naming the variables involved.
func TestWorkerValidationNamesTheVariables(t *testing.T) {
	cases := []struct {
		name    string
		env     []string
		mention []string
	}{
		{"no database", without(with(nil), "DATABASE_URL"), []string{"DATABASE_URL is not set"}},
		{"nwc without secret key", with(without(lnd, "BILLFLOW_SECRET_KEY")), []string{"NWC rail is on", "BILLFLOW_SECRET_KEY is not set", "BILLFLOW_NWC_ENABLED=false"}},
		{"nwc enabled without lnd", with(nil, "BILLFLOW_NWC_ENABLED=true", "BILLFLOW_SECRET_KEY="+secretKey), []string{"BILLFLOW_NWC_ENABLED=true but BILLFLOW_LND_ADDR is not set"}},
		{"lnd without network and pubkey", with(without(lnd, "BILLFLOW_LND_NETWORK", "BILLFLOW_LND_PUBKEY")), []string{"BILLFLOW_LND_ADDR is set but BILLFLOW_LND_NETWORK, BILLFLOW_LND_PUBKEY are not"}},
		{"lnd without rates", with(without(lnd, "BILLFLOW_RATES")), []string{"BILLFLOW_LND_ADDR is set but BILLFLOW_RATES is not"}},
		{"bad network", with(lnd, "BILLFLOW_LND_NETWORK=moon"), []string{`BILLFLOW_LND_NETWORK="moon" is not mainnet`}},
		{"bad pubkey", with(lnd, "BILLFLOW_LND_PUBKEY=zz"), []string{"BILLFLOW_LND_PUBKEY is not 66 hex digits"}},
		{"bad secret key", with(lnd, "BILLFLOW_SECRET_KEY=abc"), []string{"BILLFLOW_SECRET_KEY is not 64 hex digits"}},
		{"rates without lnd", with(nil, "BILLFLOW_RATES=usd=1"), []string{"BILLFLOW_RATES is set but BILLFLOW_LND_ADDR is not"}},
		{"stripe url without key", with(nil, "BILLFLOW_STRIPE_API_URL=http://x"), []string{"BILLFLOW_STRIPE_API_URL is set but BILLFLOW_STRIPE_API_KEY is not"}},
		{"relays without robot", with(nil, "BILLFLOW_NOSTR_RELAYS=ws://r"), []string{"BILLFLOW_NOSTR_RELAYS is set but BILLFLOW_ROBOT_KEY is not"}},
		{"webhook unsigned", with(nil, "BILLFLOW_WEBHOOK_URL=https://app"), []string{"BILLFLOW_WEBHOOK_SECRET is not"}},
		{"bad duration", with(nil, "BILLFLOW_GRACE_WINDOW=soon"), []string{`BILLFLOW_GRACE_WINDOW="soon"`, "invalid duration"}},
		{"negative duration", with(nil, "BILLFLOW_NWC_TIMEOUT=-5s"), []string{"BILLFLOW_NWC_TIMEOUT=-5s is not a positive duration"}},
		{"bad list item", with(nil, "BILLFLOW_DUNNING=1m,x"), []string{`BILLFLOW_DUNNING="1m,x"`, `"x" is not a positive duration`}},
		{"list not increasing", with(nil, "BILLFLOW_RECONCILE=5m,1m"), []string{`BILLFLOW_RECONCILE="5m,1m"`, "durations must increase"}},
		{"bad ban factor", with(nil, "BILLFLOW_BAN_FACTOR=many"), []string{`BILLFLOW_BAN_FACTOR="many"`}},
		{"zero ban factor", with(nil, "BILLFLOW_BAN_FACTOR=0"), []string{"BILLFLOW_BAN_FACTOR=0 is not a positive integer"}},
		{"bad bool", with(lnd, "BILLFLOW_NWC_ENABLED=perhaps"), []string{`BILLFLOW_NWC_ENABLED="perhaps"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadWorker(tc.env)
			require.Error(t, err)
			for _, m := range tc.mention {
				assert.Contains(t, err.Error(), m)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "configuration: "), err.Error())
			assert.NotContains(t, err.Error(), secretKey, "no secret in the message")
		})
	}

	// Lightning without NWC is allowed when said so.
	_, err := config.LoadWorker(with(without(lnd, "BILLFLOW_SECRET_KEY"), "BILLFLOW_NWC_ENABLED=false"))
	require.NoError(t, err)
	// Several problems are reported at once.
	_, err = config.LoadWorker(with(nil, "BILLFLOW_GRACE_WINDOW=soon", "BILLFLOW_BAN_FACTOR=many"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "BILLFLOW_GRACE_WINDOW")
	assert.Contains(t, err.Error(), "BILLFLOW_BAN_FACTOR")
	_, err = config.LoadWorker(with(nil, "BILLFLOW_STRIPE_API_URL=http://x", "BILLFLOW_RATES=usd=1"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "BILLFLOW_STRIPE_API_URL")
	assert.Contains(t, err.Error(), "BILLFLOW_RATES")
}

func TestAPIValidation(t *testing.T) {
	c, err := config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8090", c.Addr)

	_, err = config.LoadAPI(with(nil))
	require.ErrorContains(t, err, "BILLFLOW_API_TOKEN is not set")
	_, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_STRIPE_API_KEY=sk_test_x"))
	require.ErrorContains(t, err, "BILLFLOW_STRIPE_API_KEY is set (the card rail is on) but BILLFLOW_STRIPE_WEBHOOK_SECRET is not")
	_, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_STRIPE_API_KEY=sk_test_x", "BILLFLOW_STRIPE_WEBHOOK_SECRET=whsec_x"))
	require.NoError(t, err)
	_, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_STRIPE_WEBHOOK_SECRET=sk_live_oops"))
	require.ErrorContains(t, err, "BILLFLOW_STRIPE_WEBHOOK_SECRET does not start with whsec_")
	assert.NotContains(t, err.Error(), "sk_live_oops")

	// The payload codec endpoint: its token and the Web UI's origins.
	c, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_CODEC_TOKEN=0123456789abcdef",
		"BILLFLOW_CODEC_ORIGINS=http://localhost:8080, https://ui.example.com"))
	require.NoError(t, err)
	assert.Equal(t, []string{"http://localhost:8080", "https://ui.example.com"}, []string(c.CodecOrigins))
	_, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_CODEC_TOKEN=short"))
	require.ErrorContains(t, err, "BILLFLOW_CODEC_TOKEN is shorter than 16 characters")
	for _, bad := range []string{"localhost:8080", "http://ui.example.com/", "ftp://x", "http://u:p@x"} {
		_, err = config.LoadAPI(with(nil, "BILLFLOW_API_TOKEN=tok", "BILLFLOW_CODEC_ORIGINS="+bad))
		require.ErrorContains(t, err, "BILLFLOW_CODEC_ORIGINS: \""+bad+"\" is not an origin", bad)
	}
}

func TestStarterValidation(t *testing.T) {
	c, err := config.LoadStarter([]string{})
	require.NoError(t, err, "the starter needs nothing to start (offline preview)")
	assert.Equal(t, "billflow", c.TaskQueue)
	_, err = config.LoadStarter([]string{"BILLFLOW_SECRET_KEY=nothex"})
	require.ErrorContains(t, err, "BILLFLOW_SECRET_KEY is not 64 hex digits")
}

// TestEffectiveConfigurationRedactsSecrets logs every program's effective
// configuration with every secret set to a recognisable value, and finds
// none of them in the text.
func TestEffectiveConfigurationRedactsSecrets(t *testing.T) {
	secrets := map[string]string{
		"BILLFLOW_SECRET_KEY":            secretKey,
		"BILLFLOW_STRIPE_API_KEY":        "sk_test_SECRETSTRIPE",
		"BILLFLOW_ROBOT_KEY":             "robotSECRETkey",
		"BILLFLOW_WEBHOOK_SECRET":        "hookSECRET",
		"BILLFLOW_API_TOKEN":             "tokenSECRET",
		"BILLFLOW_STRIPE_WEBHOOK_SECRET": "whsec_SECRETwh",
		"BILLFLOW_CODEC_TOKEN":           "codecSECRETtoken0",
	}
	env := with(lnd, "DATABASE_URL=postgres://billflow:dbPASSWORD@db:5432/billflow?sslmode=disable&password=qsPASSWORD",
		"BILLFLOW_WEBHOOK_URL=https://user:urlPASSWORD@app.example/hook?token=qsTOKEN", "BILLFLOW_NOSTR_RELAYS=wss://relay.example")
	for k, v := range secrets {
		env = append(without(env, k), k+"="+v)
	}
	w, err := config.LoadWorker(env)
	require.NoError(t, err)
	a, err := config.LoadAPI(env)
	require.NoError(t, err)
	s, err := config.LoadStarter(env)
	require.NoError(t, err)

	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	logger.Info("configuration", "config", w)
	logger.Info("configuration", "config", a)
	logger.Info("configuration", "config", s)
	jbuf := &bytes.Buffer{}
	slog.New(slog.NewJSONHandler(jbuf, nil)).Info("configuration", "config", w)
	out := buf.String() + jbuf.String()
	for name, v := range secrets {
		assert.NotContains(t, out, v, "%s leaked", name)
		assert.Contains(t, out, name+"="+config.Redacted, "%s shown as set", name)
	}
	for _, leak := range []string{"dbPASSWORD", "qsPASSWORD", "urlPASSWORD", "qsTOKEN"} {
		assert.NotContains(t, out, leak)
	}
	// The rest is shown, so the log says what the program runs with.
	for _, shown := range []string{"config.DATABASE_URL=\"postgres://billflow:xxxxx@db:5432/billflow?password=xxxxx&sslmode=disable\"",
		"config.BILLFLOW_WEBHOOK_URL=\"https://user:xxxxx@app.example/hook?token=xxxxx\"", "config.BILLFLOW_LND_NETWORK=regtest",
		"config.BILLFLOW_DUNNING=24h0m0s,72h0m0s,120h0m0s", "config.BILLFLOW_NOSTR_RELAYS=wss://relay.example", "config.BILLFLOW_API_ADDR=127.0.0.1:8090",
		"config.BILLFLOW_NWC_ENABLED=unset", "config.BILLFLOW_LND_PUBKEY=" + pubkey} {
		assert.Contains(t, out, shown)
	}
}
