//go:build integration

package e2e

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/keyer"
	"github.com/nbd-wtf/go-nostr/nip59"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/sandbox/nwcwallet"
	"github.com/billflow/billflow/sandbox/relay"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/vault"
	"github.com/billflow/billflow/workflows"
)

// Keys the payment tests' worker runs with. The vault key is the one the
// starter CLI tests use; the others are test-only values.
const (
	vaultKeyHex   = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
	stripeAPIKey  = "sk_test_e2e_rails"
	stripeWhsec   = "whsec_e2e_rails"
	apiToken      = "e2e-rails-token"
	appURL        = "https://app.example"
	msatPerDollar = 2_000_000
)

// rails is a test's payment world: a Nostr relay, the engine's Lightning
// node, an NWC wallet service paying through it, a Stripe API delivering
// webhooks to billflow's api, and the robot key DMs come from.
type rails struct {
	relayURL string
	node     *lnnode.Node
	wallet   *nwcwallet.Wallet
	stripe   *stripesandbox.Server
	api      *httptest.Server
	robotSK  string
	vault    *vault.Vault
}

// railsOpts adjusts a test's rails and worker.
type railsOpts struct {
	// env is added to the worker's environment (schedules, timeouts).
	env []string
}

// startRails starts the sandboxes in this process and points the stack's
// worker at them. Call before startWorker.
func (s *stack) startRails(o railsOpts) *rails {
	t := s.t
	ctx := context.Background()
	r := &rails{robotSK: nostr.GeneratePrivateKey()}
	rl := relay.New(relay.Options{})
	url, err := rl.Start(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(rl.Close)
	r.relayURL = url
	r.node, err = lnnode.Start(ctx, lnnode.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.node.Close() })
	r.wallet, err = nwcwallet.Start(ctx, nwcwallet.Options{Relays: []string{url}, BalanceMsat: 1_000_000_000_000, Payer: r.node, Network: r.node.Network()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.wallet.Close() })

	srv := &api.Server{Billing: s.billing, Store: s.store, Token: apiToken, StripeWebhookSecret: stripeWhsec}
	r.api = httptest.NewServer(srv.Handler())
	t.Cleanup(r.api.Close)
	r.stripe, err = stripesandbox.Start(ctx, stripesandbox.Options{APIKey: stripeAPIKey, WebhookURL: r.api.URL + "/webhooks/stripe", WebhookSecret: stripeWhsec})
	require.NoError(t, err)
	t.Cleanup(r.stripe.Close)

	key, err := secret.ParseKey(vaultKeyHex)
	require.NoError(t, err)
	box, err := secret.NewBox(key)
	require.NoError(t, err)
	r.vault = vault.New(box, s.store)

	s.env = append(s.env,
		"BILLFLOW_SECRET_KEY="+vaultKeyHex,
		"BILLFLOW_LND_ADDR="+r.node.Addr(),
		"BILLFLOW_LND_TLS_CERT="+r.node.TLSCertPath(),
		"BILLFLOW_LND_MACAROON="+r.node.MacaroonPath(),
		"BILLFLOW_LND_PAYOUT_MACAROON="+r.node.PayoutMacaroonPath(),
		"BILLFLOW_LND_NETWORK="+r.node.Network().Name,
		"BILLFLOW_LND_PUBKEY="+r.node.PubKey(),
		"BILLFLOW_RATES=usd=2000000",
		"BILLFLOW_STRIPE_API_KEY="+stripeAPIKey,
		"BILLFLOW_STRIPE_API_URL="+r.stripe.URL(),
		"BILLFLOW_ROBOT_KEY="+r.robotSK,
		"BILLFLOW_NOSTR_RELAYS="+url,
		"BILLFLOW_APP_URL="+appURL,
		"BILLFLOW_NWC_TIMEOUT=10s",
	)
	s.env = append(s.env, o.env...)
	return r
}

// payer is how a test tenant pays: NWC wallet, card, both or neither.
type payer struct {
	nwc  bool
	card string // a sandbox test card (pm_...), or "" for none
}

// tenantUser is a tenant with its Nostr key, to read the DMs it receives.
type tenantUser struct {
	id models.TenantID
	sk string
}

// newTenant creates a tenant with the given payment methods.
func (s *stack) newTenant(r *rails, p payer) tenantUser {
	t := s.t
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	u := tenantUser{id: models.TenantID(pk), sk: sk}
	_, err = s.billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: pk, Period: time.Hour})
	require.NoError(t, err)
	if p.nwc {
		url, err := r.wallet.ConnectionURL()
		require.NoError(t, err)
		_, err = r.vault.SetNWC(ctx, u.id, url)
		require.NoError(t, err)
	}
	if p.card != "" {
		cus := "cus_" + pk[:16]
		require.NoError(t, r.stripe.AddCustomer(stripesandbox.Customer{ID: cus,
			PaymentMethods: []stripesandbox.PaymentMethod{{ID: p.card}}, DefaultPaymentMethod: p.card}))
		require.NoError(t, s.store.SetStripeCustomer(ctx, u.id, cus))
	}
	return u
}

// bill gives the tenant a 20.00 USD invoice now and returns its id; its
// InvoicePayment workflow starts collecting at once.
func (s *stack) bill(u tenantUser, plan string) string {
	t := s.t
	ctx := context.Background()
	_, err := s.billing.RecordActivity(ctx, string(u.id), billing.Activity{ID: "a-" + string(u.id)[:8] + plan, Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: plan})
	require.NoError(t, err)
	renewed, err := s.billing.RenewNow(ctx, string(u.id))
	require.NoError(t, err)
	require.NotEmpty(t, renewed.InvoiceID)
	return renewed.InvoiceID
}

// outcome waits for an invoice's workflow to finish.
func (s *stack) outcome(invoiceID string, limit time.Duration) workflows.InvoicePaymentResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var res workflows.InvoicePaymentResult
	require.NoError(s.t, s.temporal.GetWorkflow(ctx, workflows.InvoiceWorkflowID(invoiceID), "").Get(ctx, &res), "invoice %s", invoiceID)
	return res
}

// invoiceStatus reads an invoice's status from the store.
func (s *stack) invoiceStatus(invoiceID string) string {
	inv, _, err := s.store.GetInvoice(context.Background(), invoiceID)
	require.NoError(s.t, err)
	return inv.Status
}

// dms returns the decrypted NIP-17 messages the tenant has received from the robot.
func (r *rails) dms(t *testing.T, u tenantUser) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, r.relayURL, nostr.WithNoticeHandler(func(string) {}))
	require.NoError(t, err)
	defer c.Close()
	wraps, err := c.Fetch(ctx, nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {string(u.id)}}})
	require.NoError(t, err)
	kr, err := keyer.NewPlainKeySigner(u.sk)
	require.NoError(t, err)
	robotPK, err := nostr.GetPublicKey(r.robotSK)
	require.NoError(t, err)
	var out []string
	for _, w := range wraps {
		rumor, err := nip59.GiftUnwrap(w, func(otherPub, ciphertext string) (string, error) {
			return kr.Decrypt(context.Background(), ciphertext, otherPub)
		})
		require.NoError(t, err)
		require.Equal(t, robotPK, rumor.PubKey, "DMs come from the robot key")
		out = append(out, rumor.Content)
	}
	return out
}

// waitDM waits until the tenant has a DM containing want and returns it.
func (s *stack) waitDM(r *rails, u tenantUser, want string) string {
	s.t.Helper()
	var got string
	s.waitFor("a DM containing "+want, 60*time.Second, func() (bool, error) {
		for _, m := range r.dms(s.t, u) {
			if strings.Contains(m, want) {
				got = m
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

// history returns every event of a workflow's runs, as JSON text.
func (s *stack) historyText(workflowID string) (string, int) {
	s.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	n := 0
	iter := s.temporal.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		// Decrypted: what an operator reading it through the codec sees
		// must hold no secret either.
		testkit.Decode(s.t, ev)
		b.WriteString(ev.String())
		b.WriteByte('\n')
		n++
	}
	return b.String(), n
}
