package workflows

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/activities"
)

// versionMarkers lists the change ids a recorded history's version markers name.
func versionMarkers(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	var ids []string
	for _, ev := range h.GetEvents() {
		m := ev.GetMarkerRecordedEventAttributes()
		if m == nil || m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["change-id"], &id))
		ids = append(ids, id)
	}
	return ids
}

// A run on a consolidated change id records that id and no other: the
// older ids cost a marker and a search-attribute upsert each on a new run,
// which is what the consolidation removes. The older fixtures, recorded
// before it, still read the older ids (and replay: TestReplayRecordedHistories).
func TestConsolidatedChangeIDsAreTheOnlyVersionRead(t *testing.T) {
	for name, want := range map[string]string{
		"tenant_billing_v3.json":       changeTenantV2,
		"invoice_payment_card_v4.json": changeInvoiceV4,
		"invoice_payment_nwc_v4.json":  changeInvoiceV4,
	} {
		require.Equal(t, []string{want}, versionMarkers(t, name), name)
	}
	// On tenant-v3 and invoice-v5/v6 a continued tenant run and the invoice
	// it starts are given their path in their input: they read no id.
	for _, name := range []string{"tenant_billing_v4.json", "invoice_payment_card_v5.json", "invoice_payment_nwc_v5.json",
		"invoice_payment_card_v6.json", "invoice_payment_nwc_v6.json"} {
		require.Empty(t, versionMarkers(t, name), name)
	}
	old := versionMarkers(t, "invoice_payment_wallet_v3.json")
	require.NotContains(t, old, changeInvoiceV4)
	require.True(t, slices.Contains(old, changeInvoiceWalletFirst), "the v3 fixture read the older ids: %v", old)
}

// On invoice-v4 the short store steps (begin, wallet, settle) run as local
// activities and the rails (NWC here) as activities.
func TestInvoiceV4StoreStepsAreLocalActivities(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-local")
	pay := &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000}
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("paid", "paid from the tenant's wallet", pay), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("nwc"), nil).Once()
	var local, remote []string
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		local = append(local, info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		remote = append(remote, info.ActivityType.Name)
	})
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "paid", result(t, env).Status)
	require.Equal(t, []string{"BeginCollection", "PayFromWallet", "Settle"}, local)
	require.Equal(t, []string{"PayByNWC"}, remote)
}

// On tenant-v2 the load, renewal and claim run as local activities.
func TestTenantV2StoreStepsAreLocalActivities(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	boundary := ts("2026-02-01T00:00:00Z")
	renewed := anchor
	env, acts := newEnv(t, boundary.Add(-time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{Created: 1, RenewedThrough: &boundary}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()
	var local, remote []string
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		local = append(local, info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		remote = append(remote, info.ActivityType.Name)
	})
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	continuedAs(t, env)
	env.AssertExpectations(t)
	require.Equal(t, []string{"LoadTenant", "Renew", "Claim"}, local)
	require.Empty(t, remote)
}

// A local store step is retried until it succeeds, like the activity it
// replaces (durable: no schedule-to-close): a Postgres outage of minutes
// does not park the renewal (before the fix, the local activity stopped
// after its 30 s StartToClose and the tenant needed action).
func TestLocalStepRetriesPastItsStartToClose(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	boundary := ts("2026-02-01T00:00:00Z")
	renewed := anchor
	env, acts := newEnv(t, boundary.Add(-time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	// 1+2+4+...+128 s of backoff: over four minutes of failures.
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{}, errors.New("connection refused")).Times(9)
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{Created: 1, RenewedThrough: &boundary}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()
	env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(nil).Never()
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.Nil(t, next.NeedsAction, "the renewal waited the outage out")
}
