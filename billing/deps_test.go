package billing_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
)

// The worker hands billing's Client to the activities as their Notifier;
// this check lives in a test so billing itself never imports activities.
var _ activities.Notifier = (*billing.Client)(nil)

// TestDependenciesAreTemporalAndContractOnly holds package billing to what
// an application can import: the Temporal client and billflow's contract
// types. No payment rail (lnd, stripe-go), database driver (pgx) or Nostr
// library may be among its dependencies: lnd needs replace directives an
// importing module does not inherit, and the rest is weight an application
// should not carry.
func TestDependenciesAreTemporalAndContractOnly(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	all, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	t.Logf("package billing depends on %d packages, %d outside the standard library", len(strings.Fields(string(all))), len(deps))
	own := map[string]bool{
		"github.com/billflow/billflow/billing":  true,
		"github.com/billflow/billflow/contract": true,
		"github.com/billflow/billflow/models":   true,
	}
	for _, p := range deps {
		lower := strings.ToLower(p)
		for _, banned := range []string{"lnd", "stripe", "pgx", "nostr"} {
			if strings.Contains(lower, banned) {
				t.Errorf("billing depends on %s (matches %q)", p, banned)
			}
		}
		if strings.HasPrefix(p, "github.com/billflow/billflow/") && !own[p] {
			t.Errorf("billing depends on billflow package %s; only contract and models are allowed", p)
		}
	}
}
