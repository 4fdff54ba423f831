//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/store"
)

var (
	starterOnce sync.Once
	starterBin  string
	starterErr  error
	starterOut  []byte
)

// starter runs the real CLI binary against the test's stack.
func (s *stack) starter(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	starterOnce.Do(func() {
		starterBin = filepath.Join(filepath.Dir(workerBinary(s.t)), "starter")
		cmd := exec.Command("go", "build", "-o", starterBin, "./starter")
		cmd.Dir = repoRoot()
		starterOut, starterErr = cmd.CombinedOutput()
	})
	require.NoError(s.t, starterErr, string(starterOut))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, starterBin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.dbURL, "BILLFLOW_TASK_QUEUE="+s.taskQueue,
		"BILLFLOW_SECRET_KEY="+strings.Repeat("5e", 32))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else {
		require.NoError(s.t, err)
	}
	return out.String(), errb.String(), code
}

// The operator CLI against the real stack: tenants created and listed,
// activity recorded, renew --all over every tenant with its progress bar,
// invoices listed and shown, bad input refused with exit code 2.
func TestStarterAgainstStack(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	a, b := testkit.NewTenantID(t), testkit.NewTenantID(t)

	out, errOut, code := s.starter("tenant", "create", "--tenant", string(a), "--json")
	require.Zero(t, code, errOut)
	var created billing.TenantState
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Equal(t, a, created.TenantID)
	require.Equal(t, models.Currency("usd"), created.Currency)
	_, errOut, code = s.starter("tenant", "create", "--tenant", string(b), "--period", "1h", "--currency", "EUR")
	require.Zero(t, code, errOut)

	// A month-old activity: the tenant's first period is already over, so the
	// workflow catches its boundary up at once.
	past := time.Now().UTC().AddDate(0, -1, -2).Truncate(time.Second).Format(time.RFC3339)
	out, errOut, code = s.starter("activity", "record", "--tenant", string(a), "--type", "resource_created",
		"--resource", "relay-1", "--plan", "basic", "--at", past, "--id", "cli-a-1", "--json")
	require.Zero(t, code, errOut)
	var rec billing.RecordResult
	require.NoError(t, json.Unmarshal([]byte(out), &rec))
	require.Equal(t, int64(500), rec.Item.Amount)

	_, errOut, code = s.starter("activity", "record", "--tenant", string(a), "--type", "resource_exploded", "--resource", "r")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "resource_exploded")
	_, errOut, code = s.starter("activity", "record", "--tenant", "npub1nonsense", "--type", "resource_created", "--resource", "r", "--plan", "basic")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "npub")

	out, errOut, code = s.starter("tenant", "list", "--json")
	require.Zero(t, code, errOut)
	var tenants []store.Tenant
	require.NoError(t, json.Unmarshal([]byte(out), &tenants))
	require.Len(t, tenants, 2)

	// Wait until the catch-up renewal of tenant a has been invoiced.
	s.waitFor("catch-up invoice", time.Minute, func() (bool, error) {
		return s.count(`SELECT count(*) FROM invoices WHERE tenant_id=$1`, a) >= 1, nil
	})
	out, errOut, code = s.starter("renew", "--all", "--json")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "renewing", "the progress bar is drawn on stderr")
	var outcomes []struct {
		Tenant      string `json:"tenant"`
		NothingOwed bool   `json:"nothing_owed"`
		Renewed     int    `json:"renewed"`
		Error       string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &outcomes))
	require.Len(t, outcomes, 2)
	for _, o := range outcomes {
		require.Empty(t, o.Error)
		require.True(t, o.NothingOwed, "%s: already renewed and claimed", o.Tenant)
		require.Zero(t, o.Renewed)
	}

	out, errOut, code = s.starter("invoice", "list", "--tenant", string(a), "--json")
	require.Zero(t, code, errOut)
	var invoices []store.Invoice
	require.NoError(t, json.Unmarshal([]byte(out), &invoices))
	require.NotEmpty(t, invoices)
	out, errOut, code = s.starter("invoice", "show", "--invoice", invoices[0].ID)
	require.Zero(t, code, errOut)
	require.Contains(t, out, "relay-1")
	require.True(t, strings.Contains(out, "renewal") || strings.Contains(out, "proration"))

	out, errOut, code = s.starter("renew", "--tenant", string(a))
	require.Zero(t, code, errOut)
	require.Contains(t, out, "nothing owed")
	missing := string(testkit.NewTenantID(t))
	_, errOut, code = s.starter("renew", "--tenant", missing)
	require.Equal(t, 3, code, "exit code 3: tenant not found")
	require.Contains(t, errOut, "tenant "+missing+" not found")

	// Payment methods: the NWC URL goes in through a file, is stored sealed,
	// and no output shows its secret.
	walletPub, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	secretHex := nostr.GeneratePrivateKey()
	conn, err := nwc.NewConnection(walletPub, []string{"wss://relay.example.com"}, secretHex, "")
	require.NoError(t, err)
	urlFile := filepath.Join(t.TempDir(), "nwc.url")
	require.NoError(t, os.WriteFile(urlFile, []byte(conn.SecretURL()+"\n"), 0o600))
	out, errOut, code = s.starter("tenant", "set-nwc", "--tenant", string(a), "--url-file", urlFile)
	require.Zero(t, code, errOut)
	require.Contains(t, out, walletPub)
	_, errOut, code = s.starter("tenant", "set-stripe-customer", "--tenant", string(a), "--customer", "cus_e2e")
	require.Zero(t, code, errOut)
	out, errOut, code = s.starter("tenant", "payment-methods", "--tenant", string(a), "--json")
	require.Zero(t, code, errOut)
	require.Contains(t, out, walletPub)
	require.Contains(t, out, "cus_e2e")
	require.NotContains(t, out+errOut, secretHex)
	require.Equal(t, 0, s.count(`SELECT count(*) FROM tenants WHERE nwc_connection_sealed LIKE '%'||$1||'%'`, secretHex))
	require.NoError(t, os.WriteFile(urlFile, []byte("nostr+walletconnect://nonsense?secret="+secretHex), 0o600))
	_, errOut, code = s.starter("tenant", "set-nwc", "--tenant", string(a), "--url-file", urlFile)
	require.Equal(t, 2, code)
	require.NotContains(t, errOut, secretHex)
}
