package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// method is how a tenant pays.
type method string

const (
	methodNWC        method = "nwc"
	methodCard       method = "card"
	methodDeclined   method = "declined"
	methodProcessing method = "processing"
	methodNone       method = "none"
)

// working says whether every invoice of a tenant paying so must end paid.
func (m method) working() bool {
	return m == methodNWC || m == methodCard || m == methodProcessing
}

// mix is the payment methods of the tenants, in turn.
var mix = []method{methodNWC, methodCard, methodProcessing, methodNWC, methodCard, methodDeclined, methodNone,
	methodNWC, methodCard, methodProcessing}

// tenant is one chaos tenant and what the driver did to it.
type tenant struct {
	id     string
	method method
	// resources: id -> plan and whether active, as the driver believes
	// after the activities it recorded.
	plans  map[string]string
	active map[string]bool
	next   int
}

// activity is one entry of the driver's own activity log.
type activity struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	Type     string    `json:"type"`
	Resource string    `json:"resource"`
	Plan     string    `json:"plan,omitempty"`
	At       time.Time `json:"at"`
	// Outcome is what the driver saw: recorded, rejected (a validation
	// error: not recorded), or unknown (never got an answer).
	Outcome string `json:"outcome"`
}

// starter runs the operator CLI with the cluster's environment.
type starter struct {
	bin string
}

// errRejected is the CLI's exit code 2: bad input, a validation error.
var errRejected = errors.New("rejected")

func (s starter) run(ctx context.Context, stdin string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, s.bin, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return out.String(), fmt.Errorf("%w: %s", errRejected, strings.TrimSpace(out.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("starter %s: %w: %s", args[0], err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// retry runs the CLI until it succeeds, is rejected, or ctx ends: the
// cluster is being broken meanwhile, and every call is idempotent.
func (s starter) retry(ctx context.Context, stdin string, args ...string) (string, error) {
	var last error
	for attempt := 0; ; attempt++ {
		out, err := s.run(ctx, stdin, args...)
		if err == nil || errors.Is(err, errRejected) {
			return out, err
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(time.Duration(min(attempt+1, 10)) * 500 * time.Millisecond):
		}
	}
}

// newTenantID is a fresh Nostr public key.
func newTenantID() string {
	pk, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	if err != nil {
		panic(err)
	}
	return pk
}

// stripeAdmin is the Stripe sandbox's test API.
type stripeAdmin struct {
	url, key string
	hc       *http.Client
}

func (s stripeAdmin) do(ctx context.Context, method, path string, body any, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("stripe sandbox %s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(buf.String()))
	}
	if out != nil {
		return json.Unmarshal(buf.Bytes(), out)
	}
	return nil
}

// cardFor is the sandbox test card of a method.
var cardFor = map[method]string{
	methodCard:       "pm_card_visa",
	methodDeclined:   "pm_card_visa_chargeDeclinedInsufficientFunds",
	methodProcessing: "pm_sandbox_processing",
}

// setUp creates the tenant and its payment method.
func (d *driver) setUp(ctx context.Context, t *tenant, n int) error {
	if _, err := d.starter.retry(ctx, "", "tenant", "create", "--tenant", t.id, "--period", d.cfg.period.String()); err != nil {
		return err
	}
	switch t.method {
	case methodNWC:
		if _, err := d.starter.retry(ctx, d.nwcURL(), "tenant", "set-nwc", "--tenant", t.id, "--url-file", "-"); err != nil {
			return err
		}
	case methodCard, methodDeclined, methodProcessing:
		cus := fmt.Sprintf("cus_chaos_%s_%d", d.runID, n)
		pm := fmt.Sprintf("pm_chaos_%s_%d", d.runID, n)
		err := d.stripe.do(ctx, http.MethodPost, "/_sandbox/customers", map[string]any{"id": cus, "default_payment_method": pm,
			"payment_methods": []map[string]string{{"id": pm, "card": cardFor[t.method]}}}, nil)
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
		if _, err := d.starter.retry(ctx, "", "tenant", "set-stripe-customer", "--tenant", t.id, "--customer", cus); err != nil {
			return err
		}
	}
	return nil
}

// nwcURL is a connection URL to the sandbox wallet with the secret it
// authorised, on the relay it listens on (piped to the CLI, never logged).
func (d *driver) nwcURL() string {
	return fmt.Sprintf("nostr+walletconnect://%s?relay=%s&secret=%s\n", d.env["NWC_WALLET_PUBKEY"],
		strings.ReplaceAll(strings.ReplaceAll(d.env["NWC_RELAYS"], ":", "%3A"), "/", "%2F"), d.secrets.nwc)
}

// paidPlans and plans are the catalog's plans the driver uses.
var usePlans = []string{"basic", "pro", "free"}

// nextActivity picks the tenant's next activity: a new resource, a
// deactivation, an activation or a plan change.
func (t *tenant) nextActivity(rng *rand.Rand) (typ, res, plan string) {
	var ids []string
	for id := range t.plans {
		ids = append(ids, id)
	}
	sortStrings(ids)
	if len(ids) == 0 || (len(ids) < 3 && rng.IntN(4) == 0) {
		t.next++
		return "resource_created", fmt.Sprintf("res-%d", t.next), usePlans[rng.IntN(2)]
	}
	res = ids[rng.IntN(len(ids))]
	switch {
	case !t.active[res]:
		if rng.IntN(3) == 0 {
			return "resource_plan_changed", res, otherPlan(rng, t.plans[res])
		}
		return "resource_activated", res, ""
	case rng.IntN(3) == 0:
		return "resource_deactivated", res, ""
	default:
		return "resource_plan_changed", res, otherPlan(rng, t.plans[res])
	}
}

func otherPlan(rng *rand.Rand, cur string) string {
	for {
		if p := usePlans[rng.IntN(len(usePlans))]; p != cur {
			return p
		}
	}
}

// apply folds a recorded activity into the driver's belief.
func (t *tenant) apply(typ, res, plan string) {
	switch typ {
	case "resource_created":
		t.plans[res], t.active[res] = plan, true
	case "resource_activated":
		t.active[res] = true
	case "resource_deactivated":
		t.active[res] = false
	case "resource_plan_changed":
		t.plans[res] = plan
	}
}

// record records one activity at the driver's clock, retrying through the
// chaos, and logs it.
func (d *driver) record(ctx context.Context, t *tenant, typ, res, plan string) {
	a := activity{ID: fmt.Sprintf("chaos-%s-%s-%d", d.runID, t.id[:12], d.seq()), Tenant: t.id, Type: typ, Resource: res,
		Plan: plan, At: time.Now().UTC().Truncate(time.Second)}
	args := []string{"activity", "record", "--tenant", t.id, "--type", typ, "--resource", res, "--at", a.At.Format(time.RFC3339), "--id", a.ID}
	if plan != "" {
		args = append(args, "--plan", plan)
	}
	_, err := d.starter.retry(ctx, "", args...)
	switch {
	case err == nil:
		a.Outcome = "recorded"
		t.apply(typ, res, plan)
	case errors.Is(err, errRejected):
		a.Outcome = "rejected"
		d.logf("activity %s rejected: %v", a.ID, err)
	default:
		a.Outcome = "unknown"
		d.logf("activity %s: no answer: %v", a.ID, err)
	}
	d.mu.Lock()
	d.activities = append(d.activities, a)
	d.mu.Unlock()
}

// activityLoop records the tenant's first resource at once, then an
// activity every few periods' worth of seconds until ctx ends.
func (d *driver) activityLoop(ctx context.Context, t *tenant, rng *rand.Rand, wg *sync.WaitGroup) {
	defer wg.Done()
	d.record(ctx, t, "resource_created", "res-0", usePlans[rng.IntN(2)])
	t.next = 0
	for {
		wait := d.cfg.period/2 + time.Duration(rng.Int64N(int64(d.cfg.period)*2))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		typ, res, plan := t.nextActivity(rng)
		d.record(ctx, t, typ, res, plan)
	}
}
