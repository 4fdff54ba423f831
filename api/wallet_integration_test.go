//go:build integration

package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// walletHarness is an api in front of a fresh database and the invoice
// workflows on a task queue of the test's own, with one usd tenant.
type walletHarness struct {
	st     *store.Store
	bc     *billing.Client
	hs     *httptest.Server
	tenant models.TenantID
}

func newWalletHarness(t *testing.T) walletHarness {
	t.Helper()
	ctx := context.Background()
	st := testkit.NewStore(t)
	bc := startBillingWorker(t, st)
	h := walletHarness{st: st, bc: bc, tenant: testkit.NewTenantID(t)}
	// Every GET syncs first, so these tests read their own writes; the
	// expiring view itself is TestWalletAPIExpiringView's.
	h = h.withMaxAge(t, time.Nanosecond)
	_, _, err := st.EnsureTenant(ctx, h.tenant, "usd", 600)
	require.NoError(t, err)
	return h
}

// withMaxAge is the harness with an api of its own whose wallet GET
// answers a synced balance up to maxAge old without syncing.
func (h walletHarness) withMaxAge(t *testing.T, maxAge time.Duration) walletHarness {
	t.Helper()
	h.hs = httptest.NewServer((&api.Server{Billing: h.bc, Store: h.st, Token: "t", WalletMaxAge: maxAge}).Handler())
	t.Cleanup(h.hs.Close)
	return h
}

// call sends a request with the bearer token and decodes the JSON answer into out.
func (h walletHarness) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, h.hs.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	return resp.StatusCode
}

// errorAnswer is the api's error shape.
type errorAnswer struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (h walletHarness) base() string { return "/v1/tenants/" + string(h.tenant) + "/wallet" }

// requireRefused asserts status and that the error message names what was wrong.
func (h walletHarness) requireRefused(t *testing.T, method, path, body string, status int, mentions string) {
	t.Helper()
	var e errorAnswer
	got := h.call(t, method, path, body, &e)
	assert.Equal(t, status, got, "%s %s %s: %+v", method, path, body, e)
	assert.Contains(t, e.Message, mentions, "%s %s %s", method, path, body)
}

// Grants: created (idempotent by key), listed by GET .../wallet and the
// ledger; refused when not positive, expiring in the past or in another
// currency; an unknown tenant is 404 on every wallet endpoint.
func TestWalletAPIGrantsAndState(t *testing.T) {
	h := newWalletHarness(t)
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	body := `{"amount": 700, "key": "promo-1", "expires_at": "` + expires + `"}`
	var res api.WalletWriteView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/grants", body, &res))
	assert.False(t, res.Duplicate)
	assert.Equal(t, int64(700), res.Wallet.Spendable)
	assert.Equal(t, models.EntryGrant, res.Entry.Kind)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/grants", body, &res))
	assert.True(t, res.Duplicate, "the same key again changes nothing")
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/grants", `{"amount": 300, "key": "promo-2"}`, &res))

	var v api.WalletView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.Equal(t, int64(1000), v.Spendable)
	assert.Equal(t, int64(1000), v.Funds)
	require.Len(t, v.Grants, 2)
	assert.Equal(t, "promo-1", v.Grants[0].Key, "the expiring grant is used first")
	assert.Equal(t, int64(700), v.Grants[0].Remaining)
	assert.False(t, v.AutoRecharge.On())
	assert.NotNil(t, v.OpenTopUps)

	var page store.LedgerPage
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base()+"/ledger?limit=1", "", &page))
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "promo-2", page.Entries[0].Key)
	require.NotZero(t, page.Next)
	var last store.LedgerPage
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base()+"/ledger?limit=1&before="+jsonInt(page.Next), "", &last))
	require.Len(t, last.Entries, 1)
	assert.Equal(t, "promo-1", last.Entries[0].Key)
	assert.Zero(t, last.Next, "the last page")
	h.requireRefused(t, http.MethodGet, h.base()+"/ledger?limit=x", "", http.StatusBadRequest, `"x" is not between 1 and 500`)

	h.requireRefused(t, http.MethodPost, h.base()+"/grants", `{"amount": 0, "key": "g0"}`, http.StatusBadRequest, "amount 0 is not positive")
	h.requireRefused(t, http.MethodPost, h.base()+"/grants", `{"amount": 5, "key": "g1", "expires_at": "2020-01-01T00:00:00Z"}`,
		http.StatusBadRequest, "expiry 2020-01-01T00:00:00Z is in the past")
	h.requireRefused(t, http.MethodPost, h.base()+"/grants", `{"amount": 5, "key": "g2", "currency": "eur"}`,
		http.StatusBadRequest, "eur does not match the wallet's currency usd")
	h.requireRefused(t, http.MethodPost, h.base()+"/grants", `{"amount": 5, "key": "g3", "colour": "red"}`,
		http.StatusBadRequest, `unknown field "colour"`)
	h.requireRefused(t, http.MethodPost, h.base()+"/grants", `{"amount": 5, "key": "g4", "pad": "`+strings.Repeat("x", 1<<20)+`"}`,
		http.StatusRequestEntityTooLarge, "larger than")

	nobody := "/v1/tenants/" + string(testkit.NewTenantID(t)) + "/wallet"
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "", ""}, {http.MethodGet, "/ledger", ""}, {http.MethodPost, "/grants", `{"amount": 5, "key": "k"}`},
		{http.MethodPost, "/top-ups", `{"amount": 5, "key": "k"}`}, {http.MethodPost, "/withdrawals", `{"amount": 5, "reference": "r"}`},
		{http.MethodPut, "/auto-recharge", `{}`},
	} {
		h.requireRefused(t, c.method, nobody+c.path, c.body, http.StatusNotFound, "tenant not found")
	}
	var e errorAnswer
	req, _ := http.NewRequest(http.MethodGet, h.hs.URL+h.base(), nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no bearer token")
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A top-up makes a top_up invoice and starts its InvoicePayment run; paid,
// it deposits, and withdrawals take unspent deposits up to the withdrawable.
func TestWalletAPITopUpAndWithdrawal(t *testing.T) {
	ctx := context.Background()
	h := newWalletHarness(t)
	var tu api.TopUpView
	require.Equal(t, http.StatusCreated, h.call(t, http.MethodPost, h.base()+"/top-ups", `{"amount": 2500, "key": "tu-1"}`, &tu))
	assert.Equal(t, int64(2500), tu.Invoice.Total)
	assert.Equal(t, models.Currency("usd"), tu.Invoice.Currency)
	desc, err := testkit.TemporalClient(t).DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(tu.Invoice.ID), "")
	require.NoError(t, err, "the top-up's collection was started")
	assert.Equal(t, contract.WorkflowInvoicePayment, desc.WorkflowExecutionInfo.Type.Name)
	var again api.TopUpView
	require.Equal(t, http.StatusCreated, h.call(t, http.MethodPost, h.base()+"/top-ups", `{"amount": 2500, "key": "tu-1"}`, &again))
	assert.Equal(t, tu.Invoice.ID, again.Invoice.ID, "the same key is the same invoice")
	var v api.WalletView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	require.Len(t, v.OpenTopUps, 1)
	assert.Equal(t, tu.Invoice.ID, v.OpenTopUps[0].InvoiceID)

	h.requireRefused(t, http.MethodPost, h.base()+"/top-ups", `{"amount": -1, "key": "tu-2"}`, http.StatusBadRequest, "amount -1 is not positive")
	h.requireRefused(t, http.MethodPost, h.base()+"/top-ups", `{"amount": 100, "key": "tu-3", "currency": "eur"}`, http.StatusBadRequest, "eur does not match")
	h.requireRefused(t, http.MethodPost, h.base()+"/withdrawals", `{"amount": 100, "reference": "p0"}`, http.StatusBadRequest,
		"withdrawal of 100 is above the withdrawable 0")

	var paid billing.Payment
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, "/v1/invoices/"+tu.Invoice.ID+"/payments", `{"rail": "manual", "reference": "wire-1"}`, &paid))
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.Equal(t, int64(2500), v.Totals.Deposits)
	assert.Equal(t, int64(2500), v.Withdrawable)
	assert.Empty(t, v.OpenTopUps)

	h.requireRefused(t, http.MethodPost, h.base()+"/withdrawals", `{"amount": 3000, "reference": "p1"}`, http.StatusBadRequest,
		"withdrawal of 3000 is above the withdrawable 2500")
	h.requireRefused(t, http.MethodPost, h.base()+"/withdrawals", `{"amount": 300}`, http.StatusBadRequest, "reference")
	var res api.WalletWriteView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/withdrawals", `{"amount": 1000, "reference": "p1"}`, &res))
	assert.Equal(t, models.EntryWithdraw, res.Entry.Kind)
	assert.Equal(t, "p1", res.Entry.Key)
	assert.Equal(t, int64(1500), res.Wallet.Spendable)
}

// PUT .../auto-recharge stores the setting; both null turns it off; half a
// setting or an amount not positive is refused.
func TestWalletAPIAutoRecharge(t *testing.T) {
	h := newWalletHarness(t)
	var a store.AutoRecharge
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPut, h.base()+"/auto-recharge", `{"threshold": 500, "amount": 2000}`, &a))
	require.True(t, a.On())
	var v api.WalletView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	require.True(t, v.AutoRecharge.On())
	assert.Equal(t, int64(500), *v.AutoRecharge.Threshold)
	assert.Equal(t, int64(2000), *v.AutoRecharge.Amount)

	h.requireRefused(t, http.MethodPut, h.base()+"/auto-recharge", `{"threshold": 500}`, http.StatusBadRequest, "threshold and amount are set together")
	h.requireRefused(t, http.MethodPut, h.base()+"/auto-recharge", `{"threshold": 500, "amount": 0}`, http.StatusBadRequest, "amount 0 is not positive")
	h.requireRefused(t, http.MethodPut, h.base()+"/auto-recharge", `{"threshold": -1, "amount": 10}`, http.StatusBadRequest, "-1 is negative")

	require.Equal(t, http.StatusOK, h.call(t, http.MethodPut, h.base()+"/auto-recharge", `{"threshold": null, "amount": null}`, &a))
	assert.False(t, a.On())
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.False(t, v.AutoRecharge.On())
}

// PUT .../pay-invoices stores wallets.pay_invoices_from_wallet and GET
// .../wallet shows it (on by default); a body without enabled is refused.
func TestWalletAPIPayInvoices(t *testing.T) {
	h := newWalletHarness(t)
	var v api.WalletView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.True(t, v.PayInvoices, "on by default")

	var got api.PayInvoicesView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPut, h.base()+"/pay-invoices", `{"enabled": false}`, &got))
	require.NotNil(t, got.Enabled)
	assert.False(t, *got.Enabled)
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.False(t, v.PayInvoices)

	require.Equal(t, http.StatusOK, h.call(t, http.MethodPut, h.base()+"/pay-invoices", `{"enabled": true}`, &got))
	require.Equal(t, http.StatusOK, h.call(t, http.MethodGet, h.base(), "", &v))
	assert.True(t, v.PayInvoices)

	h.requireRefused(t, http.MethodPut, h.base()+"/pay-invoices", `{}`, http.StatusBadRequest, "enabled: is required")
}

// syncRuns counts the SyncWallet activities the tenant's BalanceSync
// workflow has scheduled: each is one read of the ledger.
func syncRuns(t *testing.T, tenant models.TenantID) int {
	t.Helper()
	iter := testkit.TemporalClient(t).GetWorkflowHistory(context.Background(), contract.BalanceWorkflowID(tenant), "", false, 0)
	n := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "SyncWallet" {
			n++
		}
	}
	return n
}

// GET .../wallet is the expiring view: the balance comes from the tenant's
// BalanceSync workflow. A read within the max age answers from its query
// (no SyncWallet runs, synced_at unchanged, a grant written since is not in
// the balance yet, though the Postgres totals show it); a read with a
// shorter max age syncs first (one more SyncWallet, a later synced_at, the
// grant counted). An unknown tenant is 404 naming it, and no sync is
// started for it; a tenant without ledger entries reads as an empty wallet.
func TestWalletAPIExpiringView(t *testing.T) {
	ctx := context.Background()
	h := newWalletHarness(t)
	fresh := h.withMaxAge(t, time.Hour)
	stale := h.withMaxAge(t, time.Millisecond)

	var empty api.WalletView
	require.Equal(t, http.StatusOK, fresh.call(t, http.MethodGet, h.base(), "", &empty))
	assert.Zero(t, empty.Spendable, "no entries yet: an empty wallet")
	assert.Equal(t, models.Currency("usd"), empty.Currency)
	require.NotNil(t, empty.SyncedAt, "the first read starts the balance sync and syncs")
	assert.False(t, empty.SyncedAt.IsZero())

	var res api.WalletWriteView
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/grants", `{"amount": 700, "key": "g-1"}`, &res))
	var first api.WalletView
	require.Equal(t, http.StatusOK, stale.call(t, http.MethodGet, h.base(), "", &first))
	assert.Equal(t, int64(700), first.Spendable)
	assert.Equal(t, int64(700), first.Funds)
	require.NotNil(t, first.SyncedAt)
	assert.True(t, first.SyncedAt.After(*empty.SyncedAt), "a stale read synced first")
	runs := syncRuns(t, h.tenant)

	// A grant moves no balance event: the BalanceSync does not know of it.
	require.Equal(t, http.StatusOK, h.call(t, http.MethodPost, h.base()+"/grants", `{"amount": 300, "key": "g-2"}`, &res))
	var cached api.WalletView
	require.Equal(t, http.StatusOK, fresh.call(t, http.MethodGet, h.base(), "", &cached))
	require.NotNil(t, cached.SyncedAt)
	assert.True(t, cached.SyncedAt.Equal(*first.SyncedAt), "a fresh read answers the last sync")
	assert.Equal(t, int64(700), cached.Spendable, "the balance as synced, not read from Postgres")
	assert.Equal(t, int64(700), cached.Funds)
	assert.Equal(t, int64(1000), cached.Totals.Grants, "the ledger totals are Postgres's, at request time")
	require.Len(t, cached.Grants, 2)
	assert.Equal(t, runs, syncRuns(t, h.tenant), "a fresh read runs no sync")

	var synced api.WalletView
	require.Equal(t, http.StatusOK, stale.call(t, http.MethodGet, h.base(), "", &synced))
	require.NotNil(t, synced.SyncedAt)
	assert.True(t, synced.SyncedAt.After(*first.SyncedAt), "a read older than its max age syncs first")
	assert.Equal(t, int64(1000), synced.Spendable)
	assert.Equal(t, runs+1, syncRuns(t, h.tenant), "exactly one sync for the stale read")
	require.Equal(t, http.StatusOK, fresh.call(t, http.MethodGet, h.base(), "", &cached))
	assert.True(t, cached.SyncedAt.Equal(*synced.SyncedAt))
	assert.Equal(t, int64(1000), cached.Spendable)

	// The raw body carries synced_at.
	var raw map[string]any
	require.Equal(t, http.StatusOK, fresh.call(t, http.MethodGet, h.base(), "", &raw))
	assert.Contains(t, raw, "synced_at")

	nobody := testkit.NewTenantID(t)
	var e errorAnswer
	require.Equal(t, http.StatusNotFound, fresh.call(t, http.MethodGet, "/v1/tenants/"+string(nobody)+"/wallet", "", &e))
	assert.Contains(t, e.Message, "tenant not found: "+string(nobody))
	_, err := testkit.TemporalClient(t).DescribeWorkflowExecution(ctx, contract.BalanceWorkflowID(nobody), "")
	var nf *serviceerror.NotFound
	assert.ErrorAs(t, err, &nf, "no balance sync started for an unknown tenant")
	require.Equal(t, http.StatusBadRequest, fresh.call(t, http.MethodGet, "/v1/tenants/not-a-key/wallet", "", &e))
	assert.Contains(t, e.Message, "not-a-key")
}

// With Temporal unreachable, GET .../wallet is 503 saying so: the balance
// is never read from Postgres in its place.
func TestWalletAPIBalanceSyncUnreachable(t *testing.T) {
	h := newWalletHarness(t)
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	down := httptest.NewServer((&api.Server{Billing: billing.New(tc, "nowhere"), Store: h.st, Token: "t"}).Handler())
	t.Cleanup(down.Close)
	h.hs = down
	var e errorAnswer
	require.Equal(t, http.StatusServiceUnavailable, h.call(t, http.MethodGet, h.base(), "", &e))
	assert.Equal(t, "unavailable", e.Error)
	assert.Contains(t, e.Message, "balance sync (Temporal) is unreachable")
	assert.Contains(t, e.Message, string(h.tenant))
}
