package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays histories recorded from the real dev
// server (by the e2e test with BILLFLOW_RECORD_HISTORIES=1). A change to
// workflow code that would break running workflows fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "expected recorded tenant, invoice, grace and outbox histories in testdata/")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(TenantBilling)
			r.RegisterWorkflow(InvoicePayment)
			r.RegisterWorkflow(GraceWindow)
			r.RegisterWorkflow(EventOutbox)
			r.RegisterWorkflow(LightningSettlements)
			r.RegisterWorkflow(BalanceSync)
			r.RegisterWorkflow(WithdrawalPayout)
			r.RegisterWorkflow(UsageSession)
			r.RegisterWorkflow(PoolOperation)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
