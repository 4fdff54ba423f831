//go:build integration

// Package e2e runs billflow as a user would: the real worker binary against
// the Temporal dev server and Postgres that scripts/test.sh starts, driven
// through the billing package.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

var (
	buildOnce   sync.Once
	workerBin   string
	buildErr    error
	buildOutput []byte
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// workerBinary builds ./worker once per test binary.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "billflow-e2e")
		if err != nil {
			buildErr = err
			return
		}
		workerBin = filepath.Join(dir, "worker")
		cmd := exec.Command("go", "build", "-o", workerBin, "./worker")
		cmd.Dir = repoRoot()
		buildOutput, buildErr = cmd.CombinedOutput()
	})
	require.NoError(t, buildErr, string(buildOutput))
	return workerBin
}

// stack is one test's billflow: its own database and task queue, a worker
// process, and a billing client.
type stack struct {
	t         *testing.T
	dbURL     string
	taskQueue string
	store     *store.Store
	temporal  client.Client
	billing   *billing.Client
	worker    *exec.Cmd
	logs      *syncBuffer
	webhook   *receiver
	// env is added to the worker's environment (payment rails, schedules).
	env []string
}

// syncBuffer collects a worker's output while tests read it.
type syncBuffer = testkit.SyncBuffer

// webhookSecret signs the outbound events the test stacks deliver.
const webhookSecret = "e2e-webhook-secret"

// receiver is the application's webhook endpoint: it verifies each
// delivery's signature and keeps what it accepted.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []receivedEvent
	bad    int
}

type receivedEvent struct {
	ID, Type string
	Body     []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := outbound.Verify([]byte(webhookSecret), req.Header.Get(outbound.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.events = append(r.events, receivedEvent{ID: req.Header.Get(outbound.HeaderEventID), Type: req.Header.Get(outbound.HeaderEventType), Body: body})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// received returns the ids of accepted events of a type, de-duplicated as
// an application would.
func (r *receiver) received(typ string) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, e := range r.events {
		if e.Type == typ {
			out[e.ID] = true
		}
	}
	return out
}

func newStack(t *testing.T) *stack {
	s := &stack{t: t, dbURL: testkit.NewDatabase(t), taskQueue: testkit.TaskQueue(t), logs: &syncBuffer{}, webhook: newReceiver(t)}
	var err error
	s.store, err = store.Open(context.Background(), s.dbURL)
	require.NoError(t, err)
	t.Cleanup(s.store.Close)
	s.temporal = testkit.TemporalClient(t)
	s.billing = billing.New(s.temporal, s.taskQueue)
	t.Cleanup(func() {
		s.stopWorker(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("worker logs:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *stack) startWorker() {
	s.t.Helper()
	cmd := exec.Command(workerBinary(s.t))
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+s.dbURL,
		"BILLFLOW_TASK_QUEUE="+s.taskQueue,
		"BILLFLOW_PLANS="+filepath.Join(repoRoot(), "config", "plans.json"),
		"BILLFLOW_WEBHOOK_URL="+s.webhook.srv.URL,
		"BILLFLOW_WEBHOOK_SECRET="+webhookSecret,
	)
	cmd.Env = append(cmd.Env, s.env...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	require.NoError(s.t, cmd.Start())
	s.worker = cmd
}

func (s *stack) stopWorker(sig syscall.Signal) {
	if s.worker == nil {
		return
	}
	_ = s.worker.Process.Signal(sig)
	_, _ = s.worker.Process.Wait()
	s.worker = nil
}

// waitFor polls cond until it holds or the deadline passes. It waits for
// durable timers on the real server; it asserts nothing about speed.
func (s *stack) waitFor(what string, limit time.Duration, cond func() (bool, error)) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		require.NoError(s.t, err, what)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("gave up waiting for %s after %s", what, limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	var n int
	require.NoError(s.t, s.store.Pool().QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// checkLedger asserts the money invariants over the whole database.
func (s *stack) checkLedger(tenant models.TenantID) {
	s.t.Helper()
	require.Zero(s.t, s.count(`SELECT count(*) FROM invoices i WHERE total <> (SELECT coalesce(sum(amount),0) FROM invoice_items WHERE invoice_id = i.id)`),
		"every invoice total equals the sum of its items")
	require.Zero(s.t, s.count(`SELECT count(*) FROM (SELECT resource_id, period_start FROM invoice_items WHERE kind='renewal' AND tenant_id=$1
		GROUP BY 1,2 HAVING count(*) > 1) d`, tenant), "no resource renewed twice for a period")
	require.Zero(s.t, s.count(`SELECT count(*) FROM (SELECT activity_id FROM invoice_items WHERE activity_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d`),
		"every activity billed once")
}

func TestEndToEndTenantAcrossPeriods(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	s.startWorker()
	tenant := testkit.NewTenantID(t)
	const period = 15 * time.Second

	st, err := s.billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Period: period})
	require.NoError(t, err)
	require.Nil(t, st.Anchor)

	// Bad input comes back typed, and nothing is written.
	_, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "bad-1", Type: models.ResourceCreated, ResourceID: "relay-x", PlanID: "platinum"})
	var ve *billing.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Contains(t, ve.Error(), `plan "platinum" is not in the catalog`)
	_, err = s.billing.RecordActivity(ctx, "not-a-key", billing.Activity{ID: "bad-2", Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro"})
	require.ErrorAs(t, err, &ve)
	require.Zero(t, s.count(`SELECT count(*) FROM activities`))

	anchor := time.Now().UTC().Truncate(time.Second)
	res, err := s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: "pro", CreatedAt: anchor})
	require.NoError(t, err)
	require.NotNil(t, res.Item)
	require.Equal(t, int64(2000), res.Item.Amount, "created at the anchor: full price")
	res, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "a2", Type: models.ResourceCreated, ResourceID: "relay-2", PlanID: "basic", CreatedAt: anchor})
	require.NoError(t, err)
	require.Equal(t, int64(500), res.Item.Amount)
	// Replaying an activity returns the first outcome and bills nothing new.
	again, err := s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "a2", Type: models.ResourceCreated, ResourceID: "relay-2", PlanID: "basic", CreatedAt: anchor})
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	require.Equal(t, res.Item.ID, again.Item.ID)

	state, err := s.billing.Tenant(ctx, string(tenant))
	require.NoError(t, err)
	require.True(t, state.Anchor.Equal(anchor))
	require.Equal(t, int64(2500), state.Outstanding)

	sched := models.Schedule{Anchor: anchor, Fixed: period}
	s2 := sched.Boundary(2)
	s.waitFor("two boundaries renewed", 3*period+30*time.Second, func() (bool, error) {
		t, err := s.store.GetTenant(ctx, tenant)
		return err == nil && t.RenewedThrough != nil && !t.RenewedThrough.Before(s2), err
	})
	// Each boundary renewed both resources exactly once, at full price.
	for k := 1; k <= 2; k++ {
		require.Equal(t, 2, s.count(`SELECT count(*) FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2`, tenant, sched.Boundary(k)), "renewals at S_%d", k)
		require.Equal(t, 2500, s.count(`SELECT coalesce(sum(amount),0)::int FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2`, tenant, sched.Boundary(k)))
	}
	// Every boundary claim made an invoice; wait until the S_2 one exists.
	s.waitFor("invoice for S_2", 30*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2 AND invoice_id IS NOT NULL`, tenant, s2) == 2, nil
	})
	invoices, err := s.store.ListInvoices(ctx, tenant)
	require.NoError(t, err)
	// The claim debounce outlasts these short periods, so the prorations are
	// claimed at S_1 together with its renewals: one invoice per boundary.
	require.Len(t, invoices, 2)
	require.Equal(t, int64(2500+2500), invoices[1].Total, "S_1: prorations and renewals")
	require.Equal(t, int64(2500), invoices[0].Total, "S_2: renewals")
	s.checkLedger(tenant)

	// renew-now never renews a period twice.
	r1, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	r2, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.Zero(t, r2.Renewed, "second renew-now in a period renews nothing")
	require.True(t, r2.NothingOwed)
	require.True(t, r1.Renewed == 0 || r1.InvoiceID != "", "a renewal that wrote items also invoiced them")
	s.checkLedger(tenant)

	// Settle the oldest invoice through the billing API; the first payment wins.
	oldest := invoices[len(invoices)-1]
	pay, err := s.billing.MarkInvoicePaid(ctx, oldest.ID, "manual", "wire-1")
	require.NoError(t, err)
	require.Equal(t, "paid", pay.Status)
	require.False(t, pay.AlreadyPaid)
	pay2, err := s.billing.MarkInvoicePaid(ctx, oldest.ID, "stripe", "pi_x")
	require.NoError(t, err)
	require.True(t, pay2.AlreadyPaid)
	require.Equal(t, "manual", pay2.Rail)
	inv, _, err := s.store.GetInvoice(ctx, oldest.ID)
	require.NoError(t, err)
	require.Equal(t, store.InvoicePaid, inv.Status)
	require.Equal(t, "manual", inv.PaidRail)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE type='invoice.paid' AND subject_id=$1`, oldest.ID))
	require.Equal(t, len(invoices), s.count(`SELECT count(*) FROM events WHERE type='invoice.created' AND tenant_id=$1`, tenant))

	_, err = s.billing.RenewNow(ctx, string(testkit.NewTenantID(t)))
	require.ErrorIs(t, err, billing.ErrTenantNotFound)

	// Every event reached the application's webhook, signed, and is marked delivered.
	s.waitFor("events delivered", 30*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM events WHERE delivered_at IS NULL`) == 0 &&
			len(s.webhook.received("invoice.paid")) == 1 &&
			len(s.webhook.received("invoice.created")) == len(invoices), nil
	})
	require.Zero(t, s.webhook.bad, "no delivery with a bad signature")

	// Search attributes are visible to operators.
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.TenantWorkflowID(tenant), "")
	require.NoError(t, err)
	require.Contains(t, desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields(), "BillingTenant")
	require.Contains(t, desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields(), "PeriodStart")

	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		first, err := firstRunID(ctx, s.temporal, workflows.TenantWorkflowID(tenant))
		require.NoError(t, err)
		recordHistory(t, s.temporal, workflows.TenantWorkflowID(tenant), first, "tenant_billing_v2.json")
		recordHistory(t, s.temporal, workflows.InvoiceWorkflowID(oldest.ID), "", "invoice_payment_v2.json")
		recordHistory(t, s.temporal, workflows.OutboxWorkflowID(s.taskQueue), "", "event_outbox_v2.json")
	}
}

// The worker dies mid-period and comes back after the boundary: the durable
// timer still fires, the period is renewed once, and nothing is billed twice.
func TestWorkerKilledMidPeriod(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	s.startWorker()
	tenant := testkit.NewTenantID(t)
	const period = 20 * time.Second
	_, err := s.billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Period: period})
	require.NoError(t, err)
	anchor := time.Now().UTC().Truncate(time.Second)
	_, err = s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "k1", Type: models.ResourceCreated, ResourceID: "seat-1", PlanID: "pro", CreatedAt: anchor})
	require.NoError(t, err)

	s.stopWorker(syscall.SIGKILL)
	s1 := models.Schedule{Anchor: anchor, Fixed: period}.Boundary(1)
	time.Sleep(time.Until(s1.Add(3 * time.Second)))
	require.Zero(t, s.count(`SELECT count(*) FROM invoice_items WHERE kind='renewal'`), "no worker, no renewal yet")

	s.startWorker()
	s.waitFor("renewal at S_1 after restart", 60*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2 AND invoice_id IS NOT NULL`, tenant, s1) == 1, nil
	})
	// Kill it again right away and restart: replays must not bill anything twice.
	s.stopWorker(syscall.SIGKILL)
	s.startWorker()
	_, err = s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2`, tenant, s1))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoice_items WHERE activity_id='k1'`))
	require.Equal(t, 4000, s.count(`SELECT coalesce(sum(total),0)::int FROM invoices WHERE tenant_id=$1 AND period_start < $2`, tenant, s1.Add(period)),
		"the proration and one renewal, each invoiced once")
	s.checkLedger(tenant)
}

// firstRunID returns the first run of a workflow chain: the run that
// recorded the anchor, the claims and the continue-as-new.
func firstRunID(ctx context.Context, c client.Client, workflowID string) (string, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return "", err
	}
	return desc.GetWorkflowExecutionInfo().GetFirstRunId(), nil
}

// recordHistory writes a workflow run's history as JSON for the replay tests.
func recordHistory(t *testing.T, c client.Client, workflowID, runID, name string) {
	t.Helper()
	ctx := context.Background()
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	var events []json.RawMessage
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		b, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
		require.NoError(t, err)
		events = append(events, b)
	}
	out, err := json.MarshalIndent(map[string]any{"events": events}, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(repoRoot(), "workflows", "testdata", name)
	// Committed fixtures are append-only (docs/versioning.md): a new
	// recording gets a new name, never replaces one that replays today.
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists: recorded histories are append-only; record under a new name", path)
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, out, 0o644))
	t.Logf("recorded %d history events of %s into %s", len(events), workflowID, path)
}
